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

    python benchmarks/bench_inv.py [--images 8] [--batch-size 8] [--threads 2]
        [--baseline-tsne barnes_hut|exact] [--max-iter 1000] [--clock wall|cpu]

On a busy machine, 2 threads time the scheduler more than the work: thousands of small parallel
regions each wait at a barrier for a descheduled thread. ``--threads 1 --clock cpu`` is the
control for that (process CPU time of both pipelines, one thread each).
"""

from __future__ import annotations

import argparse
import os
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-iter", type=int, default=1000, help="t-SNE iterations (both)")
    parser.add_argument("--baseline-tsne", choices=("barnes_hut", "exact"), default="barnes_hut")
    parser.add_argument("--kernel", choices=("auto", "aot", "compiled", "eager"), default="auto")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="wall time or process CPU time"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    inv_pipeline._clock = clock  # the library's stage timer uses the same clock

    torch.manual_seed(args.seed)
    model = torchvision.models.vgg16(weights=None).eval()
    images = smooth_noise(args.images, args.size, args.seed + 1)
    config = InvConfig(tsne=TsneConfig(max_iter=args.max_iter, kernel=args.kernel))

    t0 = clock()
    ours = explain_inv(
        model, images, "last:9", config=config, batch_size=args.batch_size, seed=args.seed
    )
    ours_total = clock() - t0
    names = ours.layers

    ref_times: dict[str, float] = defaultdict(float)
    t0 = clock()
    reference = [
        reference_image(
            model,
            images[i],
            names,
            config.k_range,
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
    sets = sum(1 for img in ours.images for layer in img.layers if layer.n_kept > config.k_range[0])
    points = sum(layer.n_kept for img in ours.images for layer in img.layers)
    print(
        f"INV on VGG16 (random init, seed {args.seed}), last 9 conv layers, {n} images at "
        f"{args.size} px, batch {args.batch_size}, {args.threads} thread(s), t-SNE "
        f"{args.max_iter} iterations, reference t-SNE: scikit-learn {args.baseline_tsne}; "
        f"{args.clock} clock; load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"{sets} (image, layer) sets, {points} kept maps ({points / max(sets, 1):.0f} per set)")
    print()
    print(f"{'stage':<18}{'netreveal s':>12}{'reference s':>13}{'ratio':>8}")
    for stage in STAGES:
        a, b = ours.stats.get(stage, 0.0), ref_times[stage]
        ratio = f"{b / a:7.1f}x" if a > 0 else "      -"
        print(f"{stage:<18}{a:12.2f}{b:13.2f}{ratio:>8}")
    kernel_s = ours.stats.get("tsne_kernel", 0.0)
    kernel = ours.params.get("tsne_kernel")
    print(f"{'t-SNE kernel':<18}{kernel_s:12.2f}{'-':>13}{'':>8}   ({kernel}: once per process)")
    print(f"{'total':<18}{ours_total:12.2f}{ref_total:13.2f}{ref_total / ours_total:7.1f}x")
    steady = ours_total - kernel_s
    print()
    print(
        f"per image, amortised over {n}: netreveal {ours_total / n:.2f} s ({steady / n:.2f} s "
        f"without readying the t-SNE kernel), reference {ref_total / n:.2f} s -> "
        f"{ref_total / ours_total:.1f}x ({ref_total / steady:.1f}x without it)"
    )
    ari, same_k, overlap = agreement(ours, reference, names)
    print(
        f"agreement with the reference: kept maps (Jaccard) {overlap:.3f}, same k {same_k:.2f}, "
        f"adjusted Rand index of the clusterings {ari:.3f}"
    )


if __name__ == "__main__":
    main()
