"""A stand-in for the DeepRacer simulation application (deepracer-simapp), for tests.

It reads what the real image reads (environment, params YAML, custom files in S3) and
writes what it writes (checkpoints, deepracer_checkpoints.json, metrics, simtrace, MP4
on evaluation), with no physics, no neural network and no ROS: a car follows the real
track's centre line with a lateral error that shrinks as the "policy" improves, and the
user's reward_function is called with the documented params at every step.
"""
