"""S3 client, logging and SIGTERM handling shared by the stand-in's processes."""

import json
import os
import signal
import sys
import time

import boto3
import botocore

# The keys of bundle/markov/boto/s3/constants.py (deepracer-simapp).
HYPERPARAMETER_S3_POSTFIX = "ip/hyperparameters.json"
MODEL_METADATA_S3_POSTFIX = "model/model_metadata.json"
IP_ADDRESS_POSTFIX = "ip/ip.json"
IP_DONE_POSTFIX = "ip/done"
COACH_CHECKPOINT_POSTFIX = "model/.coach_checkpoint"
DEEPRACER_CHECKPOINT_KEY_POSTFIX = "model/deepracer_checkpoints.json"
FINISHED_FILE_KEY_POSTFIX = "model/.finished"
TRAINER_READY_KEY_POSTFIX = "model/.ready"
SIMTRACE_TRAINING_S3_POSTFIX = "training-simtrace/{}-iteration.csv"
SIMTRACE_EVAL_S3_POSTFIX = "evaluation-simtrace/{}-iteration.csv"
CAMERA_MP4_S3_POSTFIXES = ("camera-pip/{}-video.mp4", "camera-45degree/{}-video.mp4",
                           "camera-topview/{}-video.mp4")
TRAINING_MANDATORY_YAML_KEY = ["SAGEMAKER_SHARED_S3_BUCKET", "SAGEMAKER_SHARED_S3_PREFIX",
                               "METRICS_S3_BUCKET", "METRICS_S3_OBJECT_KEY",
                               "MODEL_METADATA_FILE_S3_KEY", "BODY_SHELL_TYPE", "CAR_COLOR"]
EVAL_MANDATORY_YAML_KEY = ["MODEL_S3_BUCKET", "MODEL_S3_PREFIX", "METRICS_S3_BUCKET",
                           "METRICS_S3_OBJECT_KEY", "MODEL_METADATA_FILE_S3_KEY",
                           "BODY_SHELL_TYPE", "CAR_COLOR"]
BEST_CHECKPOINT = "best_checkpoint"
LAST_CHECKPOINT = "last_checkpoint"
METRICS_VERSION = 2.0
# The port of the trainer's experience server (the real trainer runs Redis there).
MEMORY_PORT = int(os.environ.get("STANDIN_MEMORY_PORT", "6379"))


def log(component, msg):
    print(f"[standin {component}] {msg}", flush=True)


def str2bool(value):
    return str(value).lower() in ("yes", "true", "t", "1")


def s3_key(prefix, postfix):
    return os.path.normpath(os.path.join(prefix, postfix))


def s3_client(region=None):
    """boto3 S3 client as the simapp makes it: S3_ENDPOINT_URL when set and not empty."""
    region = region or os.environ.get("AWS_REGION") or os.environ.get("APP_REGION") or "us-east-1"
    endpoint = os.environ.get("S3_ENDPOINT_URL") or None
    return boto3.session.Session(region_name=region).client("s3", endpoint_url=endpoint)


class S3:
    """The few S3 calls the simapp makes, with its retry-until-there waits."""

    def __init__(self, bucket, region=None):
        self.bucket = bucket
        self.client = s3_client(region)

    def get(self, key, bucket=None):
        return self.client.get_object(Bucket=bucket or self.bucket, Key=key)["Body"].read()

    def get_or_none(self, key, bucket=None):
        try:
            return self.get(key, bucket)
        except botocore.exceptions.ClientError as err:
            if err.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise

    def put(self, key, body, bucket=None):
        if isinstance(body, str):
            body = body.encode()
        self.client.put_object(Bucket=bucket or self.bucket, Key=key, Body=body)

    def put_json(self, key, doc, bucket=None):
        self.put(key, json.dumps(doc), bucket)

    def exists(self, key, bucket=None):
        resp = self.client.list_objects_v2(Bucket=bucket or self.bucket, Prefix=key)
        return any(obj["Key"] == key for obj in resp.get("Contents", []))

    def list(self, prefix, bucket=None):
        keys, token = [], None
        while True:
            kwargs = {"Bucket": bucket or self.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            resp = self.client.list_objects_v2(**kwargs)
            keys += [obj["Key"] for obj in resp.get("Contents", [])]
            token = resp.get("NextContinuationToken")
            if not token:
                return keys

    def delete(self, key, bucket=None):
        self.client.delete_object(Bucket=bucket or self.bucket, Key=key)

    def wait_for(self, key, stopper, timeout, bucket=None, what=None):
        """Body of key once it exists; None when stopped; exits 1 after timeout seconds."""
        deadline = time.monotonic() + timeout
        while not stopper.stop:
            body = self.get_or_none(key, bucket)
            if body is not None:
                return body
            if time.monotonic() > deadline:
                where = f" ({what})" if what else ""
                print(f"Timed out after {timeout}s waiting for"
                      f" s3://{bucket or self.bucket}/{key}{where}", file=sys.stderr, flush=True)
                sys.exit(1)
            time.sleep(0.5)
        return None


class Stopper:
    """SIGTERM/SIGINT set .stop; the loops check it between steps."""

    def __init__(self, component):
        self.stop = False
        self.component = component
        signal.signal(signal.SIGTERM, self._handler)
        signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum, _frame):
        log(self.component, f"received signal {signum}, stopping")
        self.stop = True
