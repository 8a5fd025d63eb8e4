"""Training-host runtime of the rlops.fleet collection."""

__version__ = "0.1.0"
