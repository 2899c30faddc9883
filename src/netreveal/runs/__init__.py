"""Runs over image sets of any size: shards of N images worked on by an engine, written to a run
folder with a manifest as they finish, resumable after a kill (:mod:`netreveal.runs.runner`).

Names resolve lazily, so that the command line can read :data:`DEFAULT_SHARD_SIZE` without
loading torch.
"""

from importlib import import_module

DEFAULT_SHARD_SIZE = 64  # images per shard unless --shard-size says otherwise

_HOMES = {"MethodSpec": "plan", "RunPlan": "plan", "ShardSpec": "plan", "shard_seed": "plan",
          "evaluate_run": "runner", "explain_run": "runner", "run_shards": "runner"}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(f"netreveal.runs.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'netreveal.runs' has no attribute {name!r}")


__all__ = ["DEFAULT_SHARD_SIZE", "MethodSpec", "RunPlan", "ShardSpec", "evaluate_run", "explain_run", "run_shards",
           "shard_seed"]
