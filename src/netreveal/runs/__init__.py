"""Runs over image sets of any size: shards of N images worked on by an engine, written to a run
folder with a manifest as they finish, resumable after a kill (:mod:`netreveal.runs.runner`)."""

from netreveal.runs.plan import DEFAULT_SHARD_SIZE, MethodSpec, RunPlan, ShardSpec, shard_seed
from netreveal.runs.runner import evaluate_run, explain_run, run_shards

__all__ = ["DEFAULT_SHARD_SIZE", "MethodSpec", "RunPlan", "ShardSpec", "evaluate_run", "explain_run", "run_shards",
           "shard_seed"]
