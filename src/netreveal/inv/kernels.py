"""The per-iteration step of the batched exact t-SNE, and where its compiled form comes from.

One step moves every point of every set: Student-t similarities of all pairs, the attractive and
repulsive sums, then scikit-learn's gains-and-momentum update. The fused form does it in one pass
over the pairs (five running sums per point). Implementations of the same step:

- ``aot``: the fused step compiled ahead of time with AOTInductor (``torch.export``, then
  ``torch._inductor.aoti_compile_and_package``) once per machine, torch version and step source,
  cached on disk (``$NETREVEAL_CACHE``, else ``$XDG_CACHE_HOME/netreveal`` or
  ``~/.cache/netreveal``) and loaded by later processes with ``aoti_load_package`` (about 0.2 s of
  CPU once torchvision is imported). The first build costs about 33 s of CPU, 24 s of it in the
  C++ compiler (about 2 minutes of wall-clock time on a busy 2-core machine).
- ``compiled``: the same fused step compiled by ``torch.compile`` in every process (about 3 s of
  CPU with torch's own compile cache warm, 23 s cold).
- ``eager``: batched matrix products; no compiler needed, several passes over the pairs (INV's
  t-SNE stage takes 3.5-4.6x as long as with a fused step, ``benchmarks/bench_inv.py``).

``auto`` takes the first of aot, compiled, eager that works on the CPU (eager on other devices),
with a warning when it has to fall back.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import os
import platform
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from netreveal.errors import NetrevealError

KERNELS = ("auto", "aot", "compiled", "eager")
CACHE_ENV = "NETREVEAL_CACHE"
log = logging.getLogger(__name__)
Step = Callable[..., tuple]
StepResult = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # Y, update, gains, gradient norm


def step_fused(P, Y, update, gains, nmask, exag, momentum, lr, active, min_gain) -> StepResult:
    """One gradient-descent iteration of every set, written for kernel fusion: one pass over the
    pairs, vectorised along j, with five running sums per point.

    P (B, M, M) joint probabilities (0 on padding); Y / update / gains (B, 2, M) (each coordinate
    contiguous); nmask (B, M) 1 for real points; exag / momentum / lr / min_gain (B,); active (B,)
    bool. Returns Y, update, gains and the norm (B,) of the gains-scaled gradient.
    """
    yx, yy = Y[:, 0], Y[:, 1]
    dx = yx[:, :, None] - yx[:, None, :]  # y_i - y_j
    dy = yy[:, :, None] - yy[:, None, :]
    w = nmask[:, None, :] / (1.0 + dx * dx + dy * dy)  # Student-t kernel, exact 0 for padding
    pw = P * w
    ww = w * w
    z = w.sum(dim=-1)  # includes w_ii = 1, removed below
    ax, ay = (pw * dx).sum(dim=-1), (pw * dy).sum(dim=-1)
    rx, ry = (ww * dx).sum(dim=-1), (ww * dy).sum(dim=-1)
    total = ((z - 1.0) * nmask).sum(dim=-1, keepdim=True)  # sum over pairs i != j
    e = exag[:, None]
    grad = 4.0 * torch.stack([e * ax - rx / total, e * ay - ry / total], dim=1) * nmask[:, None, :]
    return _descend(Y, update, gains, grad, momentum, lr, active, min_gain)


def step_eager(P, Y, update, gains, nmask, exag, momentum, lr, active, min_gain) -> StepResult:
    """The same iteration with batched matrix products (few passes over the pairs, no compiler)."""
    yt = Y.transpose(1, 2)  # (B, M, 2)
    sq = (yt * yt).sum(dim=-1, keepdim=True)
    ones = torch.ones_like(sq)
    a = torch.cat([yt, sq, ones], dim=-1)
    b = torch.cat([-2.0 * yt, ones, 1.0 + sq], dim=-1)
    w = torch.bmm(a, b.transpose(1, 2)).clamp_min_(1.0).reciprocal_()
    w.mul_(nmask[:, None, :])
    w.diagonal(dim1=1, dim2=2).zero_()
    total = (w.sum(dim=-1) * nmask).sum(dim=-1)
    y1 = torch.cat([yt, ones], dim=-1)
    attract = torch.bmm(P * w, y1)
    w.square_()
    repulse = torch.bmm(w, y1)
    ga = attract[..., 2:] * yt - attract[..., :2]
    gr = repulse[..., 2:] * yt - repulse[..., :2]
    grad = 4.0 * (exag[:, None, None] * ga - gr / total[:, None, None]) * nmask[..., None]
    return _descend(Y, update, gains, grad.transpose(1, 2), momentum, lr, active, min_gain)


def _descend(Y, update, gains, grad, momentum, lr, active, min_gain) -> StepResult:
    """Gains, momentum and step as in scikit-learn's ``_gradient_descent``; inactive sets frozen."""
    inc = (update * grad) < 0
    new_gains = torch.maximum(torch.where(inc, gains + 0.2, gains * 0.8), min_gain[:, None, None])
    grad = grad * new_gains
    new_update = momentum[:, None, None] * update - lr[:, None, None] * grad
    act = active[:, None, None]
    norm = grad.square().sum(dim=(1, 2)).sqrt()
    return (
        torch.where(act, Y + new_update, Y),
        torch.where(act, new_update, update),
        torch.where(act, new_gains, gains),
        norm,
    )


def example_inputs(b: int = 3, m: int = 16) -> tuple[torch.Tensor, ...]:
    """A small valid input of the step. The batch is 3, not 2: a 2 would be unified with the size of
    the coordinate axis and specialised by the compilers."""
    P = torch.full((b, m, m), 1.0 / (m * m), dtype=torch.float32)
    Y = torch.randn(b, 2, m, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    # distinct tensors: one tensor passed thrice would be compiled with a guard on that aliasing
    exag, momentum, lr, min_gain = (
        torch.full((b,), v, dtype=torch.float32) for v in (12.0, 0.5, 50.0, 0.01)
    )
    nmask = torch.ones(b, m)
    active = torch.ones(b, dtype=torch.bool)
    update, gains = torch.zeros_like(Y), torch.ones_like(Y)
    return (P, Y, update, gains, nmask, exag, momentum, lr, active, min_gain)


# --- ahead of time --------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$NETREVEAL_CACHE``, else the user cache directory."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "kernels"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "netreveal" / "kernels"


def kernel_key() -> str:
    """What a compiled step depends on: its source, torch, Python, the machine's CPU."""
    parts = [
        inspect.getsource(step_fused),
        inspect.getsource(_descend),
        torch.__version__,
        f"{sys.version_info.major}.{sys.version_info.minor}",
        platform.machine(),
        torch.backends.cpu.get_cpu_capability(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


class _StepModule(torch.nn.Module):
    def forward(self, P, Y, update, gains, nmask, exag, momentum, lr, active, min_gain):
        return step_fused(P, Y, update, gains, nmask, exag, momentum, lr, active, min_gain)


def build_aot(path: Path) -> Path:
    """Export the fused step with a symbolic batch and set size, compile it with AOTInductor and
    write the package to ``path`` (atomically: concurrent builders cannot leave a torn file)."""
    from torch._inductor import aoti_compile_and_package
    from torch.export import Dim, export

    sets, points = Dim("sets", min=2), Dim("points", min=2)
    pair, coord, vec = {0: sets, 1: points, 2: points}, {0: sets, 2: points}, {0: sets}
    shapes = (pair, coord, coord, coord, {0: sets, 1: points}, vec, vec, vec, vec, vec)
    program = export(_StepModule(), example_inputs(), dynamic_shapes=shapes)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.pt2")
    try:
        aoti_compile_and_package(program, package_path=str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def _quiet_cuda_home_notice() -> Iterator[None]:
    """Hide torch's "No CUDA runtime is found, using CUDA_HOME=..." notice, which the CUDA build of
    torch logs when the loader's C++-extension support is first imported on a machine without a GPU;
    the CPU kernel needs no CUDA runtime."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def load_aot(path: Path) -> Step:
    """Load a compiled step package with AOTInductor's documented loader."""
    with _quiet_cuda_home_notice():
        from torch._inductor import aoti_load_package

        compiled = aoti_load_package(str(path))
    return lambda *args: tuple(compiled(*args))


def aot_path() -> Path:
    """Where the compiled step package of this machine and torch version is kept."""
    return cache_dir() / f"tsne-step-{kernel_key()}.pt2"


def _aot_step() -> Step:
    path = aot_path()
    if not path.is_file():
        log.warning("building the compiled t-SNE kernel once for this machine (%s)", path)
        build_aot(path)
    return load_aot(path)


def _jit_step() -> Step:
    return torch.compile(step_fused, dynamic=True, fullgraph=True)


_LOADED: dict[str, Step] = {}
_FAILED: dict[str, str] = {}
_BUILDERS = {"aot": _aot_step, "compiled": _jit_step}


def _ready(kind: str) -> Step:
    """The step of ``kind``, built and checked on a small input once per process."""
    if kind not in _LOADED:
        step = _BUILDERS[kind]()
        step(*example_inputs())  # compiles (jit), checks the package loads and runs (aot)
        _LOADED[kind] = step
    return _LOADED[kind]


def kernel_name(step: Step) -> str:
    """Which implementation a step from :func:`step_kernel` is: aot, compiled or eager."""
    for name, loaded in _LOADED.items():
        if loaded is step:
            return name
    return "eager"


def step_kernel(kind: str = "auto", device: torch.device | str = "cpu") -> Step:
    """The per-iteration step for ``kind``; ``auto`` falls back from aot to compiled to eager."""
    if kind not in KERNELS:
        raise NetrevealError(f"unknown t-SNE kernel {kind!r}; choose one of {', '.join(KERNELS)}")
    device = torch.device(device)
    if kind == "eager" or (kind == "auto" and device.type != "cpu"):
        return step_eager
    if kind == "aot" and device.type != "cpu":
        raise NetrevealError("the aot t-SNE kernel is built for the CPU; use 'auto' or 'compiled'")
    if kind != "auto":
        return _ready(kind)
    for candidate in ("aot", "compiled"):
        if candidate in _FAILED:
            continue
        try:
            return _ready(candidate)
        except Exception as exc:  # noqa: BLE001 - any toolchain failure: try the next kernel
            _FAILED[candidate] = f"{type(exc).__name__}: {str(exc)[:200]}"
            warnings.warn(
                f"t-SNE kernel {candidate!r} unavailable ({_FAILED[candidate]}); falling back",
                RuntimeWarning,
                stacklevel=2,
            )
    return step_eager
