"""The Ray engine: items spread over Ray actors, each building its state once (``pip install 'netreveal[ray]'``).

It connects to the cluster at ``address`` or, without one, to the Ray already running in this
process, else starts a local Ray (no dashboard, quiet logs) and shuts it down when done. Each of
``workers`` actors runs ``setup()`` once and then the items it is sent, at most two at a time, so
the caller never queues more than it can use. An actor that holds a GPU puts models on it:
:func:`netreveal.engines.base.assigned_device` returns ``"cuda"`` there, and
:meth:`~netreveal.engines.base.ModelSpec.load` follows it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from netreveal.engines.base import Item, Outcome, State, assign_device
from netreveal.errors import NetrevealError

IN_FLIGHT_PER_WORKER = 2  # one item running, one waiting, so an actor never idles between items


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise NetrevealError("the ray engine needs the ray extra: pip install 'netreveal[ray]'") from None
    return ray


class _Worker:
    """One actor: ``setup()`` once (an error in it is raised by every item), then ``work`` per item."""

    def __init__(self, setup: Callable[[], Any], work: Callable[[Any, Any], Any]) -> None:
        import ray

        assign_device("cuda" if ray.get_gpu_ids() else None)  # Ray shows the actor only its own GPUs
        self.work, self.state, self.error = work, None, None
        try:
            self.state = setup()
        except Exception as error:  # raised again with the first item, where the caller sees it
            self.error = error

    def run(self, index: int, item: Any) -> tuple[int, Any]:
        if self.error is not None:
            raise self.error
        return index, self.work(self.state, item)


class RayEngine:
    """Runs items on Ray actors, one state per actor (see :class:`netreveal.engines.base.Engine`).

    ``workers`` defaults to the cluster's GPUs when it has some, else its CPUs; ``gpus_per_worker``
    defaults to 1 on a cluster with GPUs and 0 without (a share of one when there are more workers
    than GPUs). Use it as a context manager to keep a local Ray up across several :meth:`map` calls.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None,
                 gpus_per_worker: float | None = None) -> None:
        self._ray = _import_ray()
        if workers is not None and workers < 1:
            raise NetrevealError(f"--workers must be at least 1, not {workers}")
        if gpus_per_worker is not None and gpus_per_worker < 0:
            raise NetrevealError(f"gpus per worker must not be negative, not {gpus_per_worker}")
        self.address = address
        self.requested_workers = workers
        self.gpus_per_worker = gpus_per_worker
        self._started = False  # this engine started the Ray it uses (and shuts it down)
        self._sessions = 0

    @property
    def workers(self) -> int:
        """How many actors :meth:`map` starts (asks the cluster when not given)."""
        if self.requested_workers is not None:
            return self.requested_workers
        if self.address is None and not self._ray.is_initialized():
            cpus, gpus = _local_resources()
            return gpus or cpus
        with self:
            return self._plan()[0]

    def __enter__(self) -> RayEngine:
        ray = self._ray
        if self._sessions == 0 and not ray.is_initialized():
            self._connect()
        self._sessions += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._sessions -= 1
        if self._sessions == 0 and self._started:
            self._ray.shutdown()
            self._started = False

    def _connect(self) -> None:
        options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                                   "log_to_driver": False}
        if self.address is None:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local Ray reports nowhere
            options["num_cpus"], options["num_gpus"] = _local_resources()
        try:
            self._ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            detail = " ".join(str(error).split())
            raise NetrevealError(f"cannot start or reach {where}: {detail}") from None
        self._started = True

    def _plan(self) -> tuple[int, float, float]:
        """Workers, CPUs and GPUs per worker on the connected cluster (every worker fits at once)."""
        resources = self._ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 1)), float(resources.get("GPU", 0))
        workers = self.requested_workers or max(1, int(gpus or cpus))
        gpus_each = self.gpus_per_worker if self.gpus_per_worker is not None else (1.0 if gpus else 0.0)
        if gpus_each and not gpus:
            raise NetrevealError("the Ray cluster has no GPU for the workers to hold")
        if gpus_each:
            gpus_each = min(gpus_each, gpus / workers)
        cpus_each = min(1.0, cpus / workers)
        return workers, cpus_each, gpus_each

    def map(self, setup: Callable[[], State], work: Callable[[State, Item], Outcome], items: Sequence[Item],
            on_result: Callable[[int, Outcome], None]) -> None:
        """See :class:`netreveal.engines.base.Engine`. An error in an item stops every worker and
        is raised here with the worker's message (a :class:`NetrevealError` as one line)."""
        if not items:
            return
        ray = self._ray
        with self:
            workers, cpus_each, gpus_each = self._plan()
            actor_class = ray.remote(_Worker).options(num_cpus=cpus_each, num_gpus=gpus_each, max_restarts=0)
            actors = [actor_class.remote(setup, work) for _ in range(min(workers, len(items)))]
            try:
                self._dispatch(actors, items, on_result)
            finally:
                for actor in actors:
                    ray.kill(actor)

    def _dispatch(self, actors: list[Any], items: Sequence[Item], on_result: Callable[[int, Outcome], None]) -> None:
        """Keep each actor fed with up to :data:`IN_FLIGHT_PER_WORKER` items; report each as it finishes."""
        ray = self._ray
        pending = iter(enumerate(items))
        in_flight: dict[Any, Any] = {}  # task -> the actor running it

        def send(actor: Any) -> None:
            step = next(pending, None)
            if step is not None:
                in_flight[actor.run.remote(*step)] = actor

        for _ in range(IN_FLIGHT_PER_WORKER):
            for actor in actors:
                send(actor)
        while in_flight:
            (done,), _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(done)
            index, outcome = _result(ray, done)
            send(actor)
            on_result(index, outcome)


def _local_resources() -> tuple[int, int]:
    """CPUs this process may use and GPUs torch sees: what a local Ray is given."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cpus, torch.cuda.device_count()


def _result(ray: ModuleType, task: Any) -> tuple[int, Any]:
    """The task's value, or its worker's error raised here (NetrevealError on one line)."""
    try:
        return ray.get(task)
    except ray.exceptions.RayTaskError as failed:
        cause = failed.cause
        if isinstance(cause, NetrevealError):
            raise NetrevealError(_one_line(str(cause))) from None
        if isinstance(cause, Exception):
            raise cause from failed
        raise RuntimeError(f"a ray worker failed: {failed}") from None
    except ray.exceptions.RayActorError as died:
        raise RuntimeError(f"a ray worker died: {_one_line(str(died))}") from None


def _one_line(text: str) -> str:
    """``text`` on one line, without the terminal colours Ray puts in its messages."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())


__all__ = ["RayEngine"]
