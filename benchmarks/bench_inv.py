"""INV cost per image: netreveal's batched pipeline against the straightforward scikit-learn one.

Model: torchvision VGG16 (random init from a fixed seed), the last nine conv layers
(block3_conv1 ... block5_conv3), smoothed-noise RGB images at 224 px. Both pipelines run side by
side in this script on the same images, with the same weights, the same weak-map pruning and the
same clustering settings:

- netreveal: ``netreveal.inv.explain_inv`` on batches of ``--batch-size`` images (one forward and
  backward pass per batch, every (image, layer) t-SNE of the batch optimised together);
- reference: one image at a time, one forward+backward pass per image, then per layer and in
  sequence scikit-learn's ``PCA -> TSNE -> AgglomerativeClustering(ward) for k = 3..8 ->
  silhouette_score``. ``TSNE`` runs with its defaults (Barnes-Hut) as a straightforward pipeline
  does; ``--baseline-tsne exact`` runs scikit-learn's exact method, the algorithm netreveal follows.

Printed: seconds per stage and per image for both pipelines, the ratio, and the agreement of the two
clusterings (adjusted Rand index on the maps both kept; t-SNE is sensitive to last-bit differences,
so two correct runs agree well but not perfectly).

With several ``--kernels`` (e.g. ``aot,compiled,eager``) netreveal runs once per t-SNE kernel in
this process, side by side with the one reference run, and each kernel's cost of getting ready
is also measured in a fresh Python process (what a new ``netreveal`` process pays: the aot
package load, or the torch.compile compilation; the one-time aot build when the package is not
cached yet).

    python benchmarks/bench_inv.py [--images 8] [--batch-size 8] [--threads 2]
        [--baseline-tsne barnes_hut|exact] [--max-iter 1000] [--clock wall|cpu]
        [--kernels auto|aot,compiled,eager]

On a busy machine, 2 threads time the scheduler more than the work: thousands of small parallel
regions each wait at a barrier for a descheduled thread. ``--threads 1 --clock cpu`` is the
control for that (process CPU time of both pipelines, one thread each).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from sklearn.cluster import AgglomerativeClustering
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import adjusted_rand_score, silhouette_score

import netreveal.inv.pipeline as inv_pipeline
from netreveal.imaging import gaussian_blur
from netreveal.inv import InvConfig, TsneConfig, explain_inv
from netreveal.inv.cluster import valid_ks
from netreveal.inv.kernels import KERNELS
from netreveal.inv.tsne import effective_perplexity
from netreveal.inv.weights import prune_threshold
from netreveal.model.hooks import capture

STAGES = ("forward_backward", "weights", "pca", "tsne", "clustering", "maps")


def smooth_noise(n: int, size: int, seed: int) -> torch.Tensor:
    """Images (n, 3, size, size) in [0, 1]: noise blurred at two scales, so maps have structure."""
    gen = torch.Generator().manual_seed(seed)
    coarse = gaussian_blur(torch.rand(n, 3, size, size, generator=gen), 41, size / 28)
    fine = gaussian_blur(torch.rand(n, 3, size, size, generator=gen), 9, size / 112)
    x = 0.75 * coarse + 0.25 * fine
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo)


def reference_image(model, image, layers, k_range, tsne_method, max_iter, seed, times, clock):
    """The straightforward pipeline for one image; returns {layer: (kept channels, labels)}."""
    t0 = clock()
    cap = capture(model, image[None], layers)
    times["forward_backward"] += clock() - t0
    size = tuple(image.shape[-2:])
    out = {}
    for name in layers:
        t0 = clock()
        act = cap.activations[name][0].numpy()
        grad = cap.gradients[name][0].numpy()
        alpha = np.where((act > 0) & (grad > 0), grad, 0.0).mean(axis=(1, 2))
        weights = 100.0 * alpha / alpha.sum() if alpha.sum() > 0 else np.zeros_like(alpha)
        kept = np.nonzero(weights > prune_threshold(act.shape[0]))[0]
        maps = np.maximum(act[kept], 0.0)
        times["weights"] += clock() - t0
        n = len(kept)
        if n == 0:
            out[name] = (kept, np.zeros(0, dtype=int))
            continue
        t0 = clock()
        flat = maps.reshape(n, -1)
        lo, hi = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
        span = hi - lo
        flat = np.where(span > 1e-12, (flat - lo) / np.maximum(span, 1e-12), 0.0).astype(np.float32)
        single = n <= k_range[0] or flat.var(axis=0).sum() <= 1e-10
        if not single:
            reduced = PCA(n_components=min(50, n, flat.shape[1])).fit_transform(flat)
        times["pca"] += clock() - t0
        if single:
            labels = np.zeros(n, dtype=int)
        else:
            t0 = clock()
            emb = TSNE(
                n_components=2,
                perplexity=effective_perplexity(30.0, n),
                method=tsne_method,
                max_iter=max_iter,
                random_state=seed,
            ).fit_transform(reduced)
            times["tsne"] += clock() - t0
            t0 = clock()
            best = None
            for k in valid_ks(n, k_range):
                lab = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(emb)
                score = silhouette_score(emb, lab)
                if best is None or score > best[0]:
                    best = (score, lab)
            labels = best[1]
            times["clustering"] += clock() - t0
        t0 = clock()
        wk = weights[kept]
        cw = np.array([wk[labels == c].sum() for c in range(labels.max() + 1)])
        floor = max(cw.max() / 3.0, cw.mean() / 2.0)
        for c in np.nonzero(cw >= floor)[0]:
            low = np.tensordot(wk[labels == c], maps[labels == c], axes=1) / wk[labels == c].sum()
            up = F.interpolate(
                torch.from_numpy(np.ascontiguousarray(low))[None, None].float(),
                size=size,
                mode="bilinear",
                align_corners=False,
            )[0, 0].numpy()
            _ = (up - up.min()) / max(float(up.max() - up.min()), 1e-12)
        times["maps"] += clock() - t0
        out[name] = (kept, labels)
    return out


def agreement(ours, reference, layers):
    """Mean adjusted Rand index over (image, layer) on the maps both pipelines kept; k agreement."""
    aris, same_k, kept_overlap = [], [], []
    for img, ref in zip(ours.images, reference):
        for name in layers:
            entry = img.layer(name)
            kept_ref, lab_ref = ref[name]
            ours_kept = entry.kept.numpy()
            common, ia, ib = np.intersect1d(ours_kept, kept_ref, return_indices=True)
            union = len(np.union1d(ours_kept, kept_ref))
            kept_overlap.append(len(common) / union if union else 1.0)
            if len(common) < 2:
                continue
            aris.append(adjusted_rand_score(entry.labels.numpy()[ia], lab_ref[ib]))
            same_k.append(entry.k == (lab_ref.max() + 1 if len(lab_ref) else 0))
    return float(np.mean(aris)), float(np.mean(same_k)), float(np.mean(kept_overlap))


# the child imports torchvision as every INV run does (its provenance records the version), and
# torchvision imports the compiler package the aot loader needs
READY = """
import resource, time
import torch, torchvision
torch.set_num_threads({threads})
from netreveal.inv.kernels import step_kernel
def used():
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime
wall, cpu = time.perf_counter(), used()
step_kernel({kind!r})
print(time.perf_counter() - wall, used() - cpu)
"""


def ready_in_fresh_process(kind: str, threads: int) -> tuple[float, float]:
    """Wall and CPU seconds (the process's own and its compiler subprocesses') that a fresh Python
    process spends getting the t-SNE kernel ``kind`` ready, after its imports."""
    out = subprocess.run(
        [sys.executable, "-c", READY.format(threads=threads, kind=kind)],
        capture_output=True,
        text=True,
        check=True,
    )
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-iter", type=int, default=1000, help="t-SNE iterations (both)")
    parser.add_argument("--baseline-tsne", choices=("barnes_hut", "exact"), default="barnes_hut")
    parser.add_argument(
        "--kernels", default="auto", help="comma-separated t-SNE kernels: auto, aot, compiled, eager"
    )
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="wall time or process CPU time"
    )
    args = parser.parse_args()
    kernels = [k.strip() for k in args.kernels.split(",") if k.strip()]
    unknown = [k for k in kernels if k not in KERNELS]
    if unknown or not kernels:
        parser.error(f"unknown t-SNE kernel {unknown[0] if unknown else ''!r}")
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    inv_pipeline._clock = clock  # the library's stage timer uses the same clock

    torch.manual_seed(args.seed)
    model = torchvision.models.vgg16(weights=None).eval()
    images = smooth_noise(args.images, args.size, args.seed + 1)

    ours, totals = {}, {}
    for kernel in kernels:
        config = InvConfig(tsne=TsneConfig(max_iter=args.max_iter, kernel=kernel))
        t0 = clock()
        ours[kernel] = explain_inv(
            model, images, "last:9", config=config, batch_size=args.batch_size, seed=args.seed
        )
        totals[kernel] = clock() - t0
    first = ours[kernels[0]]
    names = first.layers

    ref_times: dict[str, float] = defaultdict(float)
    t0 = clock()
    reference = [
        reference_image(
            model,
            images[i],
            names,
            first.params["k_range"],
            args.baseline_tsne,
            args.max_iter,
            args.seed,
            ref_times,
            clock,
        )
        for i in range(args.images)
    ]
    ref_total = clock() - t0

    n = args.images
    k_lo = first.params["k_range"][0]
    sets = sum(1 for img in first.images for layer in img.layers if layer.n_kept > k_lo)
    points = sum(layer.n_kept for img in first.images for layer in img.layers)
    print(
        f"INV on VGG16 (random init, seed {args.seed}), last 9 conv layers, {n} images at "
        f"{args.size} px, batch {args.batch_size}, {args.threads} thread(s), t-SNE "
        f"{args.max_iter} iterations, reference t-SNE: scikit-learn {args.baseline_tsne}; "
        f"{args.clock} clock; load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"{sets} (image, layer) sets, {points} kept maps ({points / max(sets, 1):.0f} per set)")
    print()
    used = [ours[k].params.get("tsne_kernel") for k in kernels]
    head = "".join(f"{k + ' s':>12}" for k in used)
    print(f"{'stage':<18}{head}{'reference s':>13}   reference / {used[0]}")
    for stage in STAGES:
        row = "".join(f"{ours[k].stats.get(stage, 0.0):12.2f}" for k in kernels)
        a, b = ours[kernels[0]].stats.get(stage, 0.0), ref_times[stage]
        ratio = f"{b / a:7.1f}x" if a > 0 else "      -"
        print(f"{stage:<18}{row}{b:13.2f}{ratio:>11}")
    row = "".join(f"{ours[k].stats.get('tsne_kernel', 0.0):12.2f}" for k in kernels)
    print(f"{'t-SNE kernel':<18}{row}{'-':>13}   (ready once per process, in this one)")
    row = "".join(f"{totals[k]:12.2f}" for k in kernels)
    print(f"{'total':<18}{row}{ref_total:13.2f}{ref_total / totals[kernels[0]]:10.1f}x")
    if len(kernels) > 1:
        base = kernels[-1]
        print()
        for k in kernels[:-1]:
            t_k, t_b = ours[k].stats.get("tsne", 0.0), ours[base].stats.get("tsne", 0.0)
            print(
                f"t-SNE stage, {used[kernels.index(k)]}: {t_k:.2f} s "
                f"({t_b / t_k if t_k > 0 else float('nan'):.1f}x faster than {base})"
            )
    print()
    for k, kernel in zip(kernels, used):
        steady = totals[k] - ours[k].stats.get("tsne_kernel", 0.0)
        print(
            f"per image, amortised over {n}, {kernel}: netreveal {totals[k] / n:.2f} s "
            f"({steady / n:.2f} s without readying the t-SNE kernel), reference {ref_total / n:.2f} s"
            f" -> {ref_total / totals[k]:.1f}x ({ref_total / steady:.1f}x without it)"
        )
        ari, same_k, overlap = agreement(ours[k], reference, names)
        print(
            f"  agreement with the reference: kept maps (Jaccard) {overlap:.3f}, same k "
            f"{same_k:.2f}, adjusted Rand index of the clusterings {ari:.3f}"
        )
    print()
    print("getting the t-SNE kernel ready in a fresh Python process (after its imports):")
    for kernel in dict.fromkeys(used):
        wall, cpu = ready_in_fresh_process(kernel, args.threads)
        print(f"  {kernel:<9} {wall:7.2f} s wall, {cpu:7.2f} s CPU (process and its compilers)")


if __name__ == "__main__":
    main()
