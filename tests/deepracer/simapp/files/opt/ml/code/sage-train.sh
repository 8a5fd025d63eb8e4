#!/usr/bin/env bash
# Stand-in of docker/files/ml-code/sage-train.sh: the training worker (no Redis: the
# worker serves the rollouts' experience itself). exec: it is PID 1 and gets SIGTERM.
echo "Starting sage-train.sh"
set -e
cd /opt/ml/code
export PYTHONUNBUFFERED=1
exec python3 -m standin.trainer "$@"
