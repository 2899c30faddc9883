"""Grad-CAM cost as a multiple of one plain forward pass of the same batch.

Rows: torchvision ResNet-50 (random init, 224 px, batch 8, layer ``layer4``) and the demo CNN
(64 px, batch 8, last conv). Columns: a plain forward pass under ``torch.no_grad`` (the unit),
``netreveal.attribution.gradcam``, and a straightforward Grad-CAM that leaves the parameters
trainable, runs ``.backward()`` through the whole network and reads the layer through module
hooks. All three are timed in interleaved rounds in one run (median of the repeats, after warm-up).

    python benchmarks/bench_gradcam.py [--repeats 7] [--warmup 2] [--threads 2]
        [--models resnet50,demo] [--clock wall|cpu]

On a busy machine, small models at 2 threads time the scheduler more than the network: every op
opens a parallel region whose barrier waits for a descheduled thread, so an op costs about the
same however small it is. ``--threads 1 --models demo --clock cpu`` is the control for that.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from netreveal.attribution.gradcam import gradcam
from netreveal.errors import NetrevealError
from netreveal.imaging import minmax
from netreveal.model.layers import get_module, resolve_layers


def plain_forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(images)


def full_backward_gradcam(model: nn.Module, images: torch.Tensor, layer: str) -> torch.Tensor:
    """Grad-CAM the straightforward way: trainable params, backward through all, module hooks."""
    module = get_module(model, layer)
    store: dict[str, torch.Tensor] = {}

    def keep_output(mod, args, out):
        store["act"] = out
        out.register_hook(lambda grad: store.__setitem__("grad", grad))

    for p in model.parameters():
        p.requires_grad_(True)
    handle = module.register_forward_hook(keep_output)
    try:
        model.zero_grad(set_to_none=True)
        logits = model(images)
        picked = logits.gather(1, logits.argmax(dim=1, keepdim=True)).sum()
        picked.backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    act, grad = store["act"].detach(), store["grad"]
    cam = (grad.mean(dim=(2, 3), keepdim=True) * act).sum(dim=1).clamp_min(0)
    cam = F.interpolate(cam[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)
    return minmax(cam[:, 0])


def interleaved(
    fns: dict[str, Callable[[], object]],
    warmup: int,
    repeats: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median seconds of each function, timed round-robin so drift hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(warmup + repeats):
        for name, fn in fns.items():
            start = clock()
            fn()
            elapsed = clock() - start
            if round_ >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(ts) for name, ts in times.items()}


def resnet50_case():
    from torchvision.models import resnet50

    torch.manual_seed(0)
    return (
        "ResNet-50 224px b8 layer4",
        resnet50().eval(),
        torch.rand(8, 3, 224, 224),
        "layer4",
        "layer4",
    )


def demo_case():
    """The demo CNN with its shipped weights, else its architecture with random weights."""
    try:
        from netreveal.model.demo import DemoCNN, load_demo_model
    except ImportError as exc:
        print(f"[skip] demo model not importable: {exc}")
        return None
    try:
        model, _ = load_demo_model()
        label = "demo CNN 64px b8"
    except NetrevealError as exc:
        print(f"[note] {exc}; timing the demo architecture with random weights")
        torch.manual_seed(0)
        model, label = DemoCNN().eval(), "demo CNN (random w) 64px b8"
    images = torch.rand(8, 3, 64, 64)
    ((conv, _),) = resolve_layers(model, "last:1", example=images)
    # The naive version reads the in-place ReLU after that conv (a tensor hook on the conv output
    # would see it overwritten); the cost is the same.
    relu = conv.replace("conv", "relu")
    return f"{label} {conv}", model, images, conv, relu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="resnet50,demo", help="comma list: resnet50, demo")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="wall time or process CPU time"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    makers = {"resnet50": resnet50_case, "demo": demo_case}
    cases = [makers[name.strip()]() for name in args.models.split(",") if name.strip()]
    rows = []
    for case in cases:
        if case is None:
            continue
        label, model, images, layer, naive_layer = case
        fns = {
            "forward": lambda m=model, x=images: plain_forward(m, x),
            "gradcam": lambda m=model, x=images, lay=layer: gradcam(m, x, lay),
            "full_backward": lambda m=model, x=images, lay=naive_layer: full_backward_gradcam(
                m, x, lay
            ),
        }
        repeats = args.repeats
        if label.startswith("demo"):
            fns["gradcam last:1"] = lambda m=model, x=images: gradcam(m, x, "last:1")
            repeats *= 5  # a cheap case: more rounds for a stable median
        clock = time.perf_counter if args.clock == "wall" else time.process_time
        t = interleaved(fns, args.warmup, repeats, clock)
        for name in fns:
            if name != "forward":
                rows.append((label, name, repeats, t["forward"], t[name], t[name] / t["forward"]))

    print(
        f"\nGrad-CAM vs one plain forward pass (torch {torch.__version__}, {args.threads} threads, "
        f"{args.clock} clock, median of the rounds after {args.warmup} warm-up rounds; "
        f"load average "
        f"{os.getloadavg()[0]:.1f} at the end)"
    )
    header = (
        f"{'model':30s} {'layer':22s} {'method':15s} {'rounds':>6s} {'forward ms':>10s} "
        f"{'method ms':>10s} {'x forward':>9s}"
    )
    print(header)
    print("-" * len(header))
    for label, name, n, fwd, t, ratio in rows:
        model_name, layer = label.rsplit(" ", 1)
        print(
            f"{model_name:30s} {layer:22s} {name:15s} {n:6d} {fwd * 1e3:10.1f} {t * 1e3:10.1f} "
            f"{ratio:9.2f}"
        )
    print("target: gradcam <= 1.30 x forward")


if __name__ == "__main__":
    main()
