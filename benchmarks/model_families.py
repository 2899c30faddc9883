"""Which method runs on which model family: every registered method and TCAV on small random
models (demo CNN, BN-ResNet, ViT, Swin), with seconds per image or why it fails.

The models are the small configurations of ``tests/small_models.py`` (random weights; 32 px,
ResNet-18 at 64 px) with the small method settings used there (few steps, samples and masks), so
the seconds compare families, not real workloads. XNN and InfoDisent use heads trained for one
short epoch on random images. Each cell also names the layer a layer-reading method tapped.

    python benchmarks/model_families.py [--images 2] [--threads 1] [--families demo-cnn,resnet18,...]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import torch

from netreveal.concepts.tcav import tcav
from netreveal.methods import METHODS

TESTS = Path(__file__).resolve().parent.parent / "tests"


def _small_models():
    spec = importlib.util.spec_from_file_location("small_models", TESTS / "small_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_method(name, ad, images, targets, settings) -> tuple[str, str]:
    """(cell, tapped layers) for one method on one model."""
    method = METHODS[name]
    options = method.options(settings)
    start = time.perf_counter()
    try:
        method.check(ad, images[:1], options)
        result = method.run(ad, images, targets, options)
    except Exception as exc:  # the table reports every failure, whatever its type
        return f"fails: {type(exc).__name__}: {str(exc).splitlines()[0][:60]}", ""
    seconds = (time.perf_counter() - start) / images.shape[0]
    maps = method.heatmaps(result) if method.heatmaps is not None else None
    if maps is not None and not bool(torch.isfinite(maps).all()):
        return "fails: non-finite map", ""
    if result.targets.tolist() != targets.tolist():
        return "fails: targets not honoured", ""
    layers = result.params.get("layers") or ([result.params["layer"]] if hasattr(options, "layer") else [])
    return f"runs {seconds:.3f}s", ",".join(layers)


def run_tcav(ad, images) -> tuple[str, str]:
    size = ad.input_size
    gen = torch.Generator().manual_seed(5)
    concept, randoms = torch.rand(4, 3, size, size, generator=gen), torch.rand(8, 3, size, size, generator=gen)
    start = time.perf_counter()
    try:
        result = tcav(ad.model, concept, randoms, images, [0] * images.shape[0], "auto:1", n_runs=2, set_size=4)
    except Exception as exc:  # reported in the table
        return f"fails: {type(exc).__name__}: {str(exc).splitlines()[0][:60]}", ""
    return f"runs {(time.perf_counter() - start) / images.shape[0]:.3f}s", ",".join(result.layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--families", default="demo-cnn,resnet18,vit-torchvision,vit-timm,swin-timm")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    small = _small_models()
    families = args.families.split(",")
    table: dict[str, dict[str, str]] = {}
    taps: dict[str, dict[str, str]] = {}
    for family in families:
        ad = small.adapter(family)
        size = ad.input_size
        images = torch.rand(args.images, 3, size, size, generator=torch.Generator().manual_seed(3))
        targets = torch.arange(args.images) % len(ad.class_names)
        heads = small.concept_heads(ad, Path(tempfile.mkdtemp()))
        settings = {**small.SMALL, **heads, "batch_size": args.images}
        for name in sorted(METHODS):
            table.setdefault(name, {})[family], taps.setdefault(name, {})[family] = run_method(
                name, ad, images, targets, settings)
        table.setdefault("tcav", {})[family], taps.setdefault("tcav", {})[family] = run_tcav(ad, images)
    width = max(len(cell) for row in table.values() for cell in row.values())
    print("| method | " + " | ".join(families) + " |")
    print("|---" * (len(families) + 1) + "|")
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(row[f].ljust(min(width, 16)) for f in families) + " |")
    print("\nlayers tapped (auto:1 for the CAM methods and TCAV, auto:2 for INV):")
    for name, row in taps.items():
        if any(row.values()):
            print(f"  {name}: " + "; ".join(f"{f}: {row[f]}" for f in families))


if __name__ == "__main__":
    main()
