"""``--inference onnxruntime`` against PyTorch, side by side in one run: forward passes, LIME,
KernelSHAP, RISE and SAG on real-size models.

Three tables (CPU seconds of this process per image; ``--threads`` 1 on a shared machine):

1. Forward passes per image at batch 4, 16 and 64: eager PyTorch (no autograd), the whole batch in
   one pass (contiguous and channels-last), and channels-last in passes as the perturbation methods feed it
   (``forward_in_passes``: on a CPU at most four 224 px images a pass), and the ONNX Runtime twin
   (eight images a run); the twin's export + check time; the largest logit difference.
2. LIME, KernelSHAP (``samples`` at the defaults: ten per superpixel) and RISE (4000 masks): the
   path before this work (captum builds each perturbed sample on its own, ``batch_size`` samples a
   forward pass, the whole batch in one pass), today's batched path with whole batches, the same in
   passes of at most four 224 px images (now), and the same path on the twin. On 224 px models
   ``--fraction`` of the samples run and the seconds are scaled to the defaults (cost is linear).
   "max |map diff|" compares the twin's maps with PyTorch's.
3. SAG (reference variant, beam width 5, 7x7 grid, black baseline), the I-GOS ranking map made
   once per image (its cost printed apart) and given to both runs: forward passes per image,
   CPU s per image, and whether the roots, drawn roots and graph are the same.

Models: ``demo`` (the shipped CNN, 64 px parts-world images), ``resnet50`` (torchvision) and timm
names (random weights, seed 0; ImageNet normalisation and 224 px random images for table 2, the raw
network on parts-world images resized to 224 px for SAG, as ``bench_sag_speed.py`` runs it).

    python benchmarks/bench_onnx_inference.py [--models demo,efficientnet_lite0,resnet50]
        [--sag-models efficientnet_lite0] [--threads 1] [--fraction 0.25] [--skip forward,methods,sag]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F
from bench_speed_baselines import big_setup, old_surrogate
from common import demo_setup, timed

from netreveal.attribution.captum_baselines import default_samples, default_segments, kernel_shap, lime
from netreveal.attribution.rise import rise
from netreveal.data.partsworld_truth import partsworld_inputs
from netreveal.model import passes
from netreveal.model.adapter import load_model
from netreveal.model.counting import CountingModel
from netreveal.model.onnx_runtime import scoring_model
from netreveal.model.passes import forward_in_passes
from netreveal.sag import structured_attention_graph

RISE_MASKS = 4000


def setup(name: str, n: int):
    if name == "demo":
        return demo_setup(n, "demo CNN", "DemoCNN (random)")
    return big_setup(name, n)


def forward_table(names: list[str]) -> None:
    print("\n| model | size | batch | eager, one pass s/img | eager channels-last, one pass | eager channels-last, "
          "in passes | onnxruntime | best eager / onnxruntime "
          "| export + check s | max logit diff |\n|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        label, model, _ = setup(name, 1)
        size = 64 if name == "demo" else 224
        x = torch.rand(64, 3, size, size, generator=torch.Generator().manual_seed(0))
        _, export_cpu, twin = timed(scoring_model, model, x[:1], "onnxruntime")
        with torch.inference_mode():
            model(x[:4]), twin(x[:4])  # first calls
            for batch in (4, 16, 64):
                xb = x[:batch]
                eager = timed(model, xb)[1] / batch
                with whole_batches():
                    cl_whole = timed(forward_in_passes, model, xb, torch.channels_last)[1] / batch
                eager_cl = timed(forward_in_passes, model, xb, torch.channels_last)[1] / batch
                _, ort_cpu, got = timed(twin, xb)
                diff = float((got - model(xb)).abs().max())
                ort = ort_cpu / batch
                print(f"| {label} | {size} px | {batch} | {eager:.4f} | {cl_whole:.4f} | {eager_cl:.4f} | {ort:.4f} | "
                      f"{min(eager, cl_whole, eager_cl) / ort:.2f}x | {export_cpu:.1f} | {diff:.1e} |", flush=True)


def method_cases(images: torch.Tensor, targets: torch.Tensor, samples: int, run: int, masks: int,
                 batch_size: int) -> list:
    """(method, samples run, seconds scale, one-at-a-time path or None, batched path) per method."""
    return [
        (f"LIME {samples}", run, samples / run, lambda m: old_surrogate("lime", m, images, targets, run, batch_size),
         lambda m: lime(m, images, targets, n_samples=run, batch_size=batch_size, progress=False)),
        (f"KernelSHAP {samples}", run, samples / run,
         lambda m: old_surrogate("kernelshap", m, images, targets, run, batch_size),
         lambda m: kernel_shap(m, images, targets, n_samples=run, batch_size=batch_size, progress=False)),
        (f"RISE {RISE_MASKS}", masks, RISE_MASKS / masks, None,
         lambda m: rise(m, images, targets, n_masks=masks, batch_size=batch_size, progress=False)),
    ]


@contextlib.contextmanager
def whole_batches():
    """Forward passes as before ``forward_in_passes``: the whole batch in one pass."""
    saved = passes.CPU_PIXELS_PER_PASS
    passes.CPU_PIXELS_PER_PASS = 1 << 62
    try:
        yield
    finally:
        passes.CPU_PIXELS_PER_PASS = saved


def method_table(names: list[str], n: int, fraction: float, batch_size: int) -> None:
    print("\n| method | model | size | samples/img | before: captum path, whole batches s/img | batched, whole batches "
          "| batched torch, in passes (now) | onnxruntime | before / torch now | before / onnxruntime "
          "| max abs map diff |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        label, model, images = setup(name, n)
        frac = 1.0 if name == "demo" else fraction
        with torch.inference_mode():
            targets = model(images).argmax(dim=1)
        twin = scoring_model(model, images[:1], "onnxruntime")
        segments = default_segments(*images.shape[-2:])
        samples = default_samples(segments)
        run = max(2, round(samples * frac))
        masks = max(1, round(RISE_MASKS * frac))
        cases = method_cases(images, targets, samples, run, masks, batch_size)
        for method, count, scale, old, new in cases:
            with whole_batches():
                old_cpu = timed(old, model)[1] if old else float("nan")
                whole_cpu = timed(new, model)[1]
            _, torch_cpu, plain = timed(new, model)
            _, ort_cpu, fast = timed(new, twin)
            per = scale / len(images)
            diff = float((plain.maps - fast.maps).abs().max())
            before = old_cpu if old else whole_cpu  # RISE had no captum path: its whole-batch run is "before"
            print(f"| {method} | {label} | {images.shape[-1]} px | {count} of {round(count * scale)} | "
                  f"{(old_cpu * per):.2f} | {whole_cpu * per:.2f} | {torch_cpu * per:.2f} | {ort_cpu * per:.2f} | "
                  f"{before / torch_cpu:.2f}x | {before / ort_cpu:.2f}x | {diff:.1e} |".replace("| nan |", "| - |"),
                  flush=True)


def sag_parts(r) -> tuple:
    return (r.roots, r.shown, [n.patches for n in r.nodes], [(e.parent, e.child) for e in r.edges])


def sag_table(names: list[str], n: int) -> None:
    print("\n| model | size | image | passes/img torch | onnxruntime | CPU s torch | onnxruntime | torch / onnxruntime "
          "| same roots and graph | I-GOS map CPU s |\n|---|---|---|---|---|---|---|---|---|---|")
    settings = {"variant": "reference", "grid": 7, "beam_width": 5, "baseline": "black"}
    for name in names:
        label, model, _ = setup(name, 1)
        # the raw network on [0, 1] images, as bench_sag_speed.py runs it: with ImageNet normalisation a
        # random-weight model often predicts the same class on the black baseline, and the search stops at once
        model = getattr(model, "netreveal_inner", model)
        inputs = partsworld_inputs(load_model("demo"), n)
        size = 64 if name == "demo" else 224
        images = inputs.images if size == 64 else F.interpolate(inputs.images, size=size, mode="bilinear",
                                                                 align_corners=False)
        counted = CountingModel(model)
        scoring_model(model, images[:1], "onnxruntime")  # the export, once per run (table 1 times it)
        for i, image in enumerate(images):
            _, map_cpu, first = timed(structured_attention_graph, model, image, **settings, max_patches=1)
            saliency = first.saliency
            counted.reset()
            _, torch_cpu, plain = timed(structured_attention_graph, counted, image, saliency=saliency, **settings)
            _, ort_cpu, fast = timed(structured_attention_graph, model, image, saliency=saliency,
                                     inference="onnxruntime", **settings)
            same = sag_parts(plain) == sag_parts(fast)
            print(f"| {label} | {size} px | {i} | {plain.forward_passes} | {fast.forward_passes} | {torch_cpu:.1f} | "
                  f"{ort_cpu:.1f} | {torch_cpu / ort_cpu:.2f}x | {'yes' if same else 'NO'} | {map_cpu:.1f} |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,efficientnet_lite0,resnet50", help="tables 1 and 2")
    parser.add_argument("--sag-models", default="demo,efficientnet_lite0", help="table 3")
    parser.add_argument("--images", type=int, default=1, help="images per model (tables 2 and 3)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fraction", type=float, default=0.25, help="share of samples run on 224 px models")
    parser.add_argument("--batch-size", type=int, default=64, help="perturbed images per forward pass")
    parser.add_argument("--skip", default="", help="comma list of tables to skip: forward, methods, sag")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    skip = set(args.skip.split(","))
    models = [m for m in args.models.split(",") if m]
    started = time.time()
    print(f"threads {args.threads}; torch {torch.__version__}")
    if "forward" not in skip:
        forward_table(models)
    if "methods" not in skip:
        method_table(models, args.images, args.fraction, args.batch_size)
    if "sag" not in skip:
        sag_table([m for m in args.sag_models.split(",") if m], args.images)
    print(f"\n{time.time() - started:.0f} s wall")


if __name__ == "__main__":
    main()
