"""How far four methods are from their reference code, before and after matching it: numbers for
docs/methods/{gradcam,inv,tcav,lime}.md. Demo model, parts-world test images.

- Grad-CAM: Pearson correlation of our maps with captum's ``LayerGradCam(relu_attributions=True)``
  + ``LayerAttribution.interpolate(..., "bilinear")`` (min-max scaled), per image, with the ReLU
  after upsampling (before) and at the layer's resolution (now, the default).
- INV t-SNE: seconds per image of the exact batched t-SNE (default) and of the reference setting
  (scikit-learn's Barnes-Hut, one set at a time), whether each repeats bit for bit, and how well
  their clusterings agree (adjusted Rand index of the Ward labels per image and layer).
- TCAV: concept sets are the parts-world parts (training images kept on the part's ground-truth
  mask, blurred elsewhere) against random regions (as the tests and ``netreveal labels analyse``
  build them); how many (concept, layer, class) verdicts flip between hinge-loss SGD CAVs (default)
  and logistic regression CAVs.
- LIME: deletion / insertion AUC (blurred baseline, as ``netreveal evaluate``) with switched-off
  superpixels in their mean colour (default) and in the blurred baseline.

    python benchmarks/fidelity_small.py [--images 20] [--only gradcam,inv,tcav,lime] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from netreveal.data.partsworld import PartsWorld
from netreveal.data.partsworld_truth import partsworld_inputs
from netreveal.model.adapter import load_model


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per map (NaN where a map is constant)."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1))


def gradcam_section(adapter, inputs) -> None:
    from captum.attr import LayerAttribution, LayerGradCam

    from netreveal.attribution.gradcam import gradcam
    from netreveal.imaging import minmax
    from netreveal.model.layers import resolve_layers

    model, images = adapter.model, inputs.images
    ((name, module),) = resolve_layers(model, "last:1", example=images[:1])
    now = gradcam(model, images, name)
    before = gradcam(model, images, name, relu_at="upsampled")
    attr = LayerGradCam(model, module).attribute(images, target=now.targets, relu_attributions=True)
    ref = minmax(LayerAttribution.interpolate(attr, tuple(images.shape[-2:]), "bilinear")[:, 0].detach())
    print(f"\n== Grad-CAM at {name} ({now.raw.shape[-1]}x{now.raw.shape[-2]} -> {images.shape[-1]} px) vs captum "
          f"LayerGradCam + interpolate(bilinear), {len(images)} images")
    for label, result in (("ReLU after upsampling (before)", before), ("ReLU at layer resolution (now)", now)):
        r = correlation(result.maps, ref)
        ok = r[~r.isnan()]
        print(f"{label:32s} correlation min {float(ok.min()):.6f}  mean {float(ok.mean()):.6f}  "
              f"max |diff| {float((result.maps - ref).abs().max()):.2e}"
              + (f"  ({int(r.isnan().sum())} constant maps)" if bool(r.isnan().any()) else ""))


def inv_section(adapter, inputs, n: int) -> None:
    from netreveal.inv import InvConfig, TsneConfig, explain_inv

    images = inputs.images[:n]
    print(f"\n== INV t-SNE on {n} images, layers last:9 of the demo model, {torch.get_num_threads()} thread(s)")
    runs = {}
    for method in ("exact", "reference"):
        config = InvConfig(tsne=TsneConfig(method=method))
        explain_inv(adapter.model, images[:1], "last:9", config=config)  # warm-up: kernel load, imports
        wall, cpu = time.perf_counter(), time.process_time()
        first = explain_inv(adapter.model, images, "last:9", config=config)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        again = explain_inv(adapter.model, images, "last:9", config=config)
        same = all(torch.equal(a.embedding, b.embedding) for x, y in zip(first.images, again.images)
                   for a, b in zip(x.layers, y.layers))
        runs[method] = first
        print(f"{method:9s} t-SNE {first.stats['tsne'] / n:6.3f} s/image (stage clock), whole INV "
              f"{wall / n:6.3f} s/image wall, {cpu / n:6.3f} s/image CPU; repeat bit-identical: {same}")
    aris = [adjusted_rand_score(a.labels.numpy(), b.labels.numpy())
            for x, y in zip(runs["exact"].images, runs["reference"].images)
            for a, b in zip(x.layers, y.layers) if a.n_kept > 3]
    sizes = [layer.n_kept for img in runs["exact"].images for layer in img.layers]
    print(f"clusterings exact vs reference: mean ARI {np.mean(aris):.3f} over {len(aris)} (image, layer) sets; "
          f"kept maps per set {min(sizes)}..{max(sizes)} (<= 30 in {sum(s <= 30 for s in sizes)} sets)")
    # thread-count invariance of the reference on the same point sets
    from netreveal.inv.tsne_reference import reference_tsne

    gen = torch.Generator().manual_seed(0)
    sets = [torch.randn(k, 50, generator=gen) for k in (150, 60, 20)]
    out = {}
    for threads in (1, 2):
        with threadpool_limits(threads):
            out[threads] = reference_tsne(sets, [1, 2, 3])
    same = all(torch.equal(a, b) for a, b in zip(out[1], out[2]))
    print(f"reference t-SNE with 1 and 2 OpenMP threads bit-identical: {same}")


def part_concepts(size: int, per_part: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Per part name, ``per_part`` training images kept on that part's mask, blurred elsewhere."""
    from netreveal.imaging import make_baseline

    world = PartsWorld(size=size, seed=seed, split="train")
    found: dict[str, list[torch.Tensor]] = {}
    index = 0
    while index < 4000 and (len(found) < 10 or min(len(v) for v in found.values()) < per_part):
        sample = world.sample(index, "train")
        index += 1
        for name, mask in zip(sample.parts, sample.masks):
            if len(found.setdefault(name, [])) < per_part:
                x = sample.image[None]
                found[name].append((x * mask + make_baseline(x, "blur") * ~mask)[0])
    return {name: torch.stack(v) for name, v in sorted(found.items())}


def tcav_section(adapter, inputs, runs: int, set_size: int) -> None:
    """TCAV verdicts with each CAV classifier; ``inputs`` should have >= 6 images per class (else
    no class can be tested at 0.05 and the raw t-test verdicts are compared instead)."""
    import warnings

    from netreveal.concepts.tcav import TcavWarning, layer_activations, layer_gradients, random_region_images, tcav
    from netreveal.model.layers import resolve_layers

    model, images = adapter.model, inputs.images
    with torch.no_grad():
        targets = model(images).argmax(dim=1)
    layers = [n for n, _ in resolve_layers(model, "last:3", example=images[:1])]
    concepts = part_concepts(adapter.input_size, set_size)
    pool_images = PartsWorld(size=adapter.input_size, split="train").batch(range(200, 260))[0]
    pool = random_region_images(pool_images, 2 * set_size * runs, seed=1)
    acts = layer_activations(model, pool, layers)
    grads = layer_gradients(model, images, targets, layers)
    verdicts, seconds = {}, {}
    for classifier in ("hinge", "logistic"):
        cavs: dict = {}
        start = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TcavWarning)
            results = {name: tcav(model, c, pool, images, targets, layers, name=name, n_runs=runs, seed=0,
                                  classifier=classifier, random_activations=acts, image_gradients=grads,
                                  random_cavs=cavs)
                       for name, c in concepts.items()}
        seconds[classifier] = time.process_time() - start
        verdicts[classifier] = {name: (r.significant, r.p_values, r.cav_accuracy.mean(dim=1))
                                for name, r in results.items()}
    counts = torch.bincount(targets, minlength=len(adapter.class_names))
    tested = counts[counts > 0]
    print(f"\n== TCAV: {len(concepts)} part concepts x {len(layers)} layers ({', '.join(layers)}) x "
          f"{len(tested)} classes ({len(images)} images, {int(tested.min())}..{int(tested.max())} per class), "
          f"{runs} runs, sets of {set_size}")
    total = flips = 0
    to_sig = to_ns = 0
    for name in concepts:
        h, lg = verdicts["hinge"][name][0], verdicts["logistic"][name][0]
        if not bool(h.any() | lg.any()) and int(tested.min()) < 6:  # nothing testable: the raw t-test verdicts
            h, lg = verdicts["hinge"][name][1] < 0.05, verdicts["logistic"][name][1] < 0.05
        total += h.numel()
        flips += int((h != lg).sum())
        to_sig += int((h & ~lg).sum())
        to_ns += int((~h & lg).sum())
    sig_h = sum(int(v[0].sum()) for v in verdicts["hinge"].values())
    sig_l = sum(int(v[0].sum()) for v in verdicts["logistic"].values())
    acc_h = torch.stack([v[2] for v in verdicts["hinge"].values()]).mean()
    acc_l = torch.stack([v[2] for v in verdicts["logistic"].values()]).mean()
    print(f"significant: hinge {sig_h}/{total}, logistic {sig_l}/{total}; verdicts that flip: {flips}/{total} "
          f"({to_sig} significant only with hinge, {to_ns} only with logistic)")
    print(f"mean held-out CAV accuracy: hinge {float(acc_h):.3f}, logistic {float(acc_l):.3f}; "
          f"CPU s: hinge {seconds['hinge']:.1f}, logistic {seconds['logistic']:.1f}")


def lime_section(adapter, inputs, steps: int) -> None:
    from netreveal.attribution.captum_baselines import lime, superpixel_means
    from netreveal.imaging import make_baseline
    from netreveal.metrics.perturbation import deletion_insertion

    model, images = adapter.model, inputs.images
    print(f"\n== LIME on {len(images)} images (default superpixels and samples), deletion / insertion AUC, "
          f"blurred baseline, {steps} steps")
    for fill in ("mean", "baseline"):
        start = time.process_time()
        result = lime(model, images, None, fill=fill, batch_size=64)
        cpu = time.process_time() - start
        scores = deletion_insertion(model, images, result, steps=steps, baseline="blur")
        print(f"fill {fill:8s} deletion {float(scores.deletion_auc.mean()):.4f} (lower is better)  "
              f"insertion {float(scores.insertion_auc.mean()):.4f} (higher is better)  "
              f"{cpu / len(images):.2f} CPU s/image")
        if fill == "mean":
            seg = result.extras["segments"].long()
            change = torch.stack([(superpixel_means(x, s) - x).abs().mean() for x, s in zip(images, seg)])
            blur = (images - make_baseline(images, "blur")).abs().mean()
            print(f"{'':14s}how much a fill changes the image: mean |image - superpixel means| "
                  f"{float(change.mean()):.4f}, mean |image - blur| {float(blur):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--inv-images", type=int, default=4, help="images for the INV timing")
    parser.add_argument("--only", default="gradcam,inv,tcav,lime")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tcav-images", type=int, default=64, help="images TCAV scores (8 per class)")
    parser.add_argument("--tcav-runs", type=int, default=10)
    parser.add_argument("--set-size", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    adapter = load_model("demo")
    inputs = partsworld_inputs(adapter, args.images)
    only = set(args.only.split(","))
    with threadpool_limits(args.threads):
        if "gradcam" in only:
            gradcam_section(adapter, inputs)
        if "inv" in only:
            inv_section(adapter, inputs, args.inv_images)
        if "tcav" in only:
            tcav_section(adapter, partsworld_inputs(adapter, args.tcav_images), args.tcav_runs, args.set_size)
        if "lime" in only:
            lime_section(adapter, inputs, args.steps)


if __name__ == "__main__":
    main()
