"""sagemaker-training's `train` entry point (/usr/local/bin/train), as far as the simapp
uses it: the hyperparameters of /opt/ml/input/config/hyperparameters.json (JSON-encoded
values) become --name value arguments of $SAGEMAKER_PROGRAM, run from /opt/ml/code;
SM_TRAINING_ENV holds them too."""

import json
import os

CONFIG = "/opt/ml/input/config/hyperparameters.json"


def arguments(raw):
    """The decoded hyperparameters and the program's arguments."""
    hyper = {}
    for key, value in raw.items():
        try:
            hyper[key] = json.loads(value)
        except (TypeError, ValueError):
            hyper[key] = value
    args = []
    for key, value in hyper.items():
        args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return hyper, args


def main():
    with open(CONFIG) as handle:
        hyper, args = arguments(json.load(handle))
    os.environ["SM_TRAINING_ENV"] = json.dumps({"hyperparameters": hyper})
    os.environ.setdefault("SM_MODEL_DIR", "/opt/ml/model")
    program = os.path.join("/opt/ml/code", os.environ.get("SAGEMAKER_PROGRAM", "sage-train.sh"))
    os.chdir("/opt/ml/code")
    os.execv("/bin/bash", ["bash", program, *args])


if __name__ == "__main__":
    main()
