#!/usr/bin/env bash
# Stand-in of docker/files/robomaker/run.sh (deepracer-simapp): the same worker numbering
# (ROLLOUT_IDX; "multi" with DOCKER_REPLICA_SLOT or the /mnt/comms/workers election file;
# MULTI_CONFIG picks S3_YAML_NAME and WORLD_NAME), then the launch file's worker. No ROS,
# Gazebo, X or RTF: those variables are accepted and ignored.
set -e
export PYTHONUNBUFFERED=1
export DEEPRACER_JOB_TYPE_ENV="LOCAL"

if [ -z "$ROLLOUT_IDX" ]; then
	export ROLLOUT_IDX=0
fi

if [ "$1" == "multi" ]; then
	if [ -n "$DOCKER_REPLICA_SLOT" ]; then
		WORKER_NUM=$DOCKER_REPLICA_SLOT
	else
		COMMS_FILE=/mnt/comms/workers
		echo "$HOSTNAME" >> "$COMMS_FILE"
		WORKER_NUM=$(cat -n "$COMMS_FILE" | grep "$HOSTNAME" | cut -f1)
	fi
	ROLLOUT_IDX=$((WORKER_NUM - 1))
	export ROLLOUT_IDX
	if [ -n "$MULTI_CONFIG" ]; then
		S3_YAML_NAME=$(echo "$MULTI_CONFIG" | jq --arg worker "$ROLLOUT_IDX" -r '.multi_config[$worker | tonumber ].config_file')
		WORLD_NAME=$(echo "$MULTI_CONFIG" | jq --arg worker "$ROLLOUT_IDX" -r '.multi_config[$worker | tonumber ].world_name')
		export S3_YAML_NAME WORLD_NAME
	fi
	echo "Starting as worker $ROLLOUT_IDX, using world $WORLD_NAME and configuration $S3_YAML_NAME."
fi

export ROS_DOMAIN_ID=$ROLLOUT_IDX
if [ -z "${2+x}" ]; then
	LAUNCH_FILE="distributed_training.launch.py"
else
	LAUNCH_FILE="$2"
fi
echo "IP: $(hostname -I) ($(hostname))"
cd /opt/ml/code
exec python3 -m standin.robomaker "$LAUNCH_FILE"
