"""The "sagemaker" training container: markov/training_worker.py's S3 side.

Arguments are the SageMaker hyperparameters (--s3_bucket, --s3_prefix, --aws_region,
--model_metadata_s3_key, --pretrained_*, and hyperparameters.json's keys), as
sagemaker-training passes them to sage-train.sh. Rollout workers find the trainer through
ip/ip.json and send their episodes to its experience server (the real one runs Redis).
"""

import argparse
import http.server
import json
import os
import socket
import sys
import threading
import time
from urllib.parse import urlparse

from standin import common, sim

NUM_MODELS_TO_KEEP = 4
C = "sagemaker"


class Experience:
    """Episodes the rollout workers sent, by the checkpoint number they played."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_checkpoint = {}

    def add(self, number, episodes):
        with self.lock:
            self.by_checkpoint.setdefault(number, []).extend(episodes)

    def take(self, number, count):
        with self.lock:
            got = self.by_checkpoint.get(number, [])
            if len(got) < count:
                return None
            return self.by_checkpoint.pop(number)


def serve(experience):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            experience.add(int(body["checkpoint"]), body["episodes"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", common.MEMORY_PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def parse_args(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--s3_bucket", default=os.environ.get("SAGEMAKER_SHARED_S3_BUCKET",
                                                              "sagemaker-s3"))
    parser.add_argument("--s3_prefix", default="sagemaker")
    parser.add_argument("--aws_region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument("--model_metadata_s3_key")
    parser.add_argument("--pretrained_s3_bucket")
    parser.add_argument("--pretrained_s3_prefix", default="sagemaker")
    parser.add_argument("--pretrained_checkpoint", default="best")
    parser.add_argument("--num_episodes_between_training", type=int, default=20)
    parser.add_argument("--term_cond_max_episodes", type=int, default=100000)
    parser.add_argument("--term_cond_avg_score", type=float, default=100000.0)
    parser.add_argument("--lr", type=float, default=0.0003)
    args, _unknown = parser.parse_known_args(argv)
    return args


def split_s3_uri(uri, default_bucket):
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        return parsed.netloc, parsed.path.lstrip("/")
    return default_bucket, uri


class Trainer:
    def __init__(self, args, stopper):
        self.args, self.stopper = args, stopper
        self.s3 = common.S3(args.s3_bucket, args.aws_region)
        self.prefix = args.s3_prefix

    def key(self, postfix):
        return common.s3_key(self.prefix, postfix)

    def save(self, state):
        name = sim.checkpoint_name(state["iteration"], state["steps"])
        for fname, body in sim.checkpoint_bodies(name, state).items():
            self.s3.put(self.key("model/" + fname), body)
        self.s3.put(self.key(common.COACH_CHECKPOINT_POSTFIX), name)
        common.log(C, "saved checkpoint {} (skill {:.3f})".format(name, state["skill"]))
        self.prune()
        return name

    def prune(self):
        keys = self.s3.list(self.key("model/"))
        names = {os.path.basename(k)[:-len(".index")] for k in keys if k.endswith(".ckpt.index")}
        doc = self.s3.get_or_none(self.key(common.DEEPRACER_CHECKPOINT_KEY_POSTFIX))
        best = json.loads(doc).get("best_checkpoint", {}).get("name") if doc else None
        for name in sim.models_to_delete(names, NUM_MODELS_TO_KEEP, best):
            for fname in sim.checkpoint_files(name):
                self.s3.delete(self.key("model/" + fname))

    def pretrained_state(self):
        args = self.args
        if not args.pretrained_s3_bucket:
            return None, None
        pre = common.s3_key(args.pretrained_s3_prefix, common.DEEPRACER_CHECKPOINT_KEY_POSTFIX)
        doc = self.s3.get_or_none(pre, args.pretrained_s3_bucket)
        if doc is None:
            sys.exit(f"Pretrained model s3://{args.pretrained_s3_bucket}/"
                     f"{args.pretrained_s3_prefix} has no "
                     f"{common.DEEPRACER_CHECKPOINT_KEY_POSTFIX}: nothing to start from")
        name = sim.pick_checkpoint(json.loads(doc), args.pretrained_checkpoint)
        data = self.s3.get(common.s3_key(args.pretrained_s3_prefix,
                                         f"model/{name}.data-00000-of-00001"),
                           args.pretrained_s3_bucket)
        source = f"s3://{args.pretrained_s3_bucket}/{args.pretrained_s3_prefix}/model/{name}"
        common.log(C, f"starting from pretrained {source}")
        return json.loads(data), source

    def run(self):
        args = self.args
        bucket, key = split_s3_uri(args.model_metadata_s3_key or "", args.s3_bucket)
        metadata = self.s3.get(key, bucket)
        json.loads(metadata)
        self.s3.put(self.key(common.MODEL_METADATA_S3_POSTFIX), metadata)
        hyper = {k: v for k, v in vars(args).items() if not k.startswith(("s3_", "pretrained_",
                                                                          "model_metadata"))}
        self.s3.put_json(self.key(common.HYPERPARAMETER_S3_POSTFIX), hyper)
        experience = Experience()
        serve(experience)
        ip = socket.gethostbyname(socket.gethostname())
        self.s3.put_json(self.key(common.IP_ADDRESS_POSTFIX), {"IP": ip})
        self.s3.put(self.key(common.IP_DONE_POSTFIX), "done")
        pretrained, source = self.pretrained_state()
        state = sim.initial_state(pretrained, source)
        self.save(state)
        self.s3.put(self.key(common.TRAINER_READY_KEY_POSTFIX), "")
        common.log(C, f"ready at {ip}:{common.MEMORY_PORT}")
        try:
            while not self.stopper.stop:
                episodes = experience.take(state["iteration"], args.num_episodes_between_training)
                if episodes is None:
                    time.sleep(0.2)
                    continue
                state = sim.train(state, episodes, args.lr)
                self.save(state)
                mean_reward = sum(e["reward"] for e in episodes) / len(episodes)
                if (state["episodes"] >= args.term_cond_max_episodes
                        or mean_reward >= args.term_cond_avg_score):
                    common.log(C, "termination condition reached after"
                               f" {state['episodes']} episodes")
                    break
        finally:
            # As training_worker.py: the .finished file tells rollout workers to stop.
            self.s3.put(self.key(common.FINISHED_FILE_KEY_POSTFIX), "")
            common.log(C, "finished")


def main(argv=None):
    stopper = common.Stopper(C)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    common.log(C, f"training worker args: {vars(args)}")
    Trainer(args, stopper).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
