"""INV: explain the whole feature extraction layer by layer with weighted clusters of feature maps.

Per batch: one forward and one backward pass tap every layer at once; then per image and layer the
maps are weighted (guided Grad-CAM variant, percent), weak maps dropped, the rest min-max
normalised, reduced by PCA and embedded with t-SNE (all (image, layer) sets of the batch optimised
together), clustered by Ward for each k of the range with the best silhouette kept, light clusters
dropped, and each cluster drawn as the weighted mean of its maps at the input size.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.errors import NetrevealError
from netreveal.inv.cluster import silhouettes, valid_ks, ward_labels
from netreveal.inv.config import InvConfig
from netreveal.inv.kernels import kernel_name, step_kernel
from netreveal.inv.maps import cluster_maps, combined_map
from netreveal.inv.reduce import is_degenerate, normalised_points, pca_scores
from netreveal.inv.result import InvCluster, InvImage, InvLayer, InvResult
from netreveal.inv.tsne import embed_sets
from netreveal.inv.weights import light_cluster_floor, map_weights, resolve_threshold
from netreveal.model.hooks import capture, describe_taps, model_device
from netreveal.model.layers import resolve_layers
from netreveal.provenance import provenance
from netreveal.targets import Target, slice_targets

DEFAULT_CONFIG = InvConfig()
_clock = time.perf_counter  # the stage timer (a benchmark may swap in a CPU clock)
STAGES = ("forward_backward", "weights", "pca", "tsne", "clustering", "maps")


def problem_seed(seed: int, image: int, layer: int) -> int:
    """Seed of the (image, layer) set; it depends on nothing else, so batching cannot change it."""
    return int(np.random.SeedSequence([int(seed), int(image), int(layer)]).generate_state(1)[0])


def _describe_target(target: Target):
    if target is None:
        return "predicted"
    if isinstance(target, int):
        return target
    if callable(target) and not isinstance(target, torch.Tensor):
        return f"callable:{getattr(target, '__qualname__', type(target).__name__)}"
    return [int(t) for t in torch.as_tensor(target).reshape(-1).tolist()]


@dataclass
class _Set:
    """One (image, layer) point set on its way through reduction and clustering."""

    image: int
    layer: int
    kept: torch.Tensor  # channel indices (n,)
    points: torch.Tensor | None = None  # what Ward clusters
    embedding: torch.Tensor | None = None  # (n, 2) for the result
    ks: list[int] | None = None
    labels: torch.Tensor | None = None  # (len(ks), n)
    scores: torch.Tensor | None = None  # silhouettes (len(ks),)
    single: bool = False


def explain_inv(
    model: nn.Module,
    images: torch.Tensor,
    layers: str | nn.Module | list = "auto:9",
    target: Target = None,
    *,
    config: InvConfig = DEFAULT_CONFIG,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> InvResult:
    """INV explanations of ``images`` (B, 3, H, W) in [0, 1] for the given ``layers``.

    ``layers`` is any layer spec of :func:`netreveal.model.hooks.capture` (default ``auto:9``: the
    last nine Conv2d layers of a plain CNN, residual block outputs of a ResNet, transformer blocks
    of a transformer; see :mod:`netreveal.model.defaults`); ``target`` the class per image (None =
    predicted). ``batch_size`` images share one forward/backward pass and one batched t-SNE.
    ``seed`` feeds every random step (only the t-SNE random initialisation is random; the default
    PCA initialisation is deterministic).

    The result is deterministic for a given seed and batch size, and a set's t-SNE does not depend
    on the other sets optimised with it. A different ``batch_size`` can still change details: the
    model's own forward pass may round differently for another batch shape, and t-SNE (like
    scikit-learn's) amplifies such last-bit differences into a different, equally good embedding.

    Edge cases: a layer without any positive guided gradient keeps no map (``k = 0``, no cluster,
    ``InvLayer.empty``); a layer keeping fewer maps than the k range allows, or whose kept maps are
    all alike after normalisation (e.g. constant maps), gives one cluster of all kept maps
    (``k = 1``, silhouette NaN); the k range is clipped to ``n_kept - 1`` so the silhouette is
    defined.
    """
    config.validate()
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise NetrevealError("images must be a (B, 3, H, W) tensor")
    if images.shape[0] == 0:
        raise NetrevealError("no image given")
    if batch_size < 1:
        raise NetrevealError(f"batch_size must be at least 1, got {batch_size}")
    device = model_device(model, images.device)
    images = images.to(device)  # the maps, weights and t-SNE stay on the model's device
    names = [name for name, _ in resolve_layers(model, layers, example=images[:1])]
    if len(set(names)) != len(names):
        raise NetrevealError("a layer is listed twice")
    stats: dict[str, float] = defaultdict(float)
    kernel = None
    if config.reducer == "tsne" and config.tsne.method == "exact":
        t0 = _clock()
        # ready the t-SNE step outside the per-batch timings (a load, or a one-time build)
        kernel = kernel_name(step_kernel(config.tsne.kernel, device))
        stats["tsne_kernel"] += _clock() - t0
    size = (int(images.shape[-2]), int(images.shape[-1]))
    out: list[InvImage] = []
    starts = range(0, images.shape[0], batch_size)
    for start in tqdm(starts, desc="INV", disable=not progress, unit="batch"):
        stop = min(start + batch_size, images.shape[0])
        t0 = _clock()
        cap = capture(
            model, images[start:stop], names, slice_targets(target, start, stop), score=config.score
        )
        stats["forward_backward"] += _clock() - t0
        layouts = cap.layouts
        out.extend(_explain_batch(cap, names, start, size, config, seed, stats))
    stats["total"] = sum(stats[s] for s in STAGES) + stats["tsne_kernel"]
    params = config.to_params()
    params.update(
        {
            "layers": names,
            "taps": describe_taps(model, images[:1], layouts),
            "target": _describe_target(target),
            "batch_size": batch_size,
            "tsne_kernel": kernel,
        }
    )
    return InvResult(
        images=out,
        layers=names,
        params=params,
        seed=int(seed),
        provenance=provenance(seed=int(seed), method="inv"),
        input_size=list(size),
        stats=dict(stats),
    )


def _explain_batch(cap, names, start, size, config: InvConfig, seed, stats) -> list[InvImage]:
    b = cap.logits.shape[0]
    t0 = _clock()
    weights, maps, thresholds, kept = [], [], [], []
    for name in names:
        act, grad = cap.activations[name], cap.gradients[name]
        if act.dim() != 4:
            raise NetrevealError(
                f"layer {name!r} gives {tuple(act.shape)}, not feature maps (B, C, h, w)"
            )
        w = map_weights(act, grad)
        thr = resolve_threshold(config.threshold, act.shape[1])
        weights.append(w)
        thresholds.append(thr)
        kept.append([torch.nonzero(w[i] > thr).flatten() for i in range(b)])
        maps.append(act.clamp_min(0) if config.relu_maps else act)
    stats["weights"] += _clock() - t0

    t0 = _clock()
    sets: list[_Set] = []
    lo = config.k_range[0]
    for layer in range(len(names)):
        for i in range(b):
            idx = kept[layer][i]
            entry = _Set(image=i, layer=layer, kept=idx)
            sets.append(entry)
            n = idx.numel()
            if n == 0:
                continue
            if n <= lo:  # no k of the range has a silhouette
                entry.single = True
                continue
            points = normalised_points(maps[layer][i, idx])
            if is_degenerate(points):
                entry.single = True
                continue
            if config.reducer == "none":
                entry.points = points
                entry.embedding = pca_scores(points, 2)
            else:
                entry.points = pca_scores(points, config.pca_components)
                entry.embedding = entry.points[:, :2]
    stats["pca"] += _clock() - t0

    todo = [s for s in sets if s.points is not None]
    if config.reducer == "tsne" and todo:
        t0 = _clock()
        seeds = [problem_seed(seed, start + s.image, s.layer) for s in todo]
        embedded = embed_sets([s.points for s in todo], config.tsne, seeds)
        for s, e in zip(todo, embedded):
            s.points = e
            s.embedding = e
        stats["tsne"] += _clock() - t0

    t0 = _clock()
    for s in todo:
        s.ks = valid_ks(s.points.shape[0], config.k_range)
        s.labels = ward_labels(s.points, s.ks)
    for s, sc in zip(todo, silhouettes([s.points for s in todo], [s.labels for s in todo])):
        s.scores = sc
    stats["clustering"] += _clock() - t0

    t0 = _clock()
    layers_out: list[list[InvLayer]] = [[None] * len(names) for _ in range(b)]  # type: ignore[list-item]
    for layer, name in enumerate(names):
        group = [s for s in sets if s.layer == layer]
        built = [_clusters_of(s, weights[layer][s.image]) for s in group]
        members = [[ch for ch, _ in bl["kept_clusters"]] for bl in built]
        drawn = cluster_maps(maps[layer], members, weights[layer], size)
        for s, bl, cmaps in zip(group, built, drawn):
            layers_out[s.image][layer] = _layer_entry(
                name,
                s,
                bl,
                cmaps,
                weights[layer][s.image],
                thresholds[layer],
                maps[layer].shape[1],
                size,
                config,
            )
    stats["maps"] += _clock() - t0

    probs = cap.logits.float().softmax(dim=1)
    predicted = cap.logits.argmax(dim=1)
    result = []
    for i in range(b):
        t = int(cap.targets[i])
        prob = float(probs[i, t]) if t >= 0 else math.nan
        result.append(
            InvImage(
                index=start + i,
                target=t,
                predicted=int(predicted[i]),
                target_prob=prob,
                layers=layers_out[i],
            )
        )
    return result


def _clusters_of(s: _Set, w: torch.Tensor) -> dict:
    """Clusters of one set, heaviest first, and which of them pass the weight filter."""
    n = s.kept.numel()
    wk = w[s.kept].float().cpu()
    if n == 0:
        return {
            "k": 0,
            "sil": math.nan,
            "labels": torch.zeros(0, dtype=torch.long),
            "weights": torch.zeros(0),
            "kept_clusters": [],
        }
    if s.single:
        raw, k, sil = torch.zeros(n, dtype=torch.long), 1, math.nan
    else:
        best = int(torch.argmax(s.scores))
        raw, k, sil = s.labels[best], s.ks[best], float(s.scores[best])
    cw = torch.zeros(k).index_add_(0, raw, wk)
    order = sorted(range(k), key=lambda c: (-float(cw[c]), c))
    rank = torch.empty(k, dtype=torch.long)
    rank[torch.tensor(order)] = torch.arange(k)
    labels = rank[raw]
    cw = cw[torch.tensor(order)]
    floor = light_cluster_floor(cw)
    kept = [
        (s.kept[labels.to(s.kept.device) == c], float(cw[c]))
        for c in range(k)
        if float(cw[c]) >= floor
    ]
    return {"k": k, "sil": sil, "labels": labels, "weights": cw, "kept_clusters": kept}


def _layer_entry(
    name, s: _Set, built: dict, cmaps, w, threshold, n_maps, size, config: InvConfig
) -> InvLayer:
    dtype = getattr(torch, config.map_dtype)
    clusters = [
        InvCluster(
            map=cmaps[j].to("cpu", dtype),
            weight=weight,
            channels=[int(c) for c in channels.tolist()],
        )
        for j, (channels, weight) in enumerate(built["kept_clusters"])
    ]
    cw = torch.tensor([c.weight for c in clusters], dtype=torch.float32)
    combined = combined_map(cmaps, cw, size).to("cpu", dtype)
    n = s.kept.numel()
    embedding = s.embedding if s.embedding is not None else torch.zeros(n, 2)
    embedding = embedding.detach().to("cpu", torch.float32)[:, :2]
    if embedding.shape[1] < 2:  # a 1-pixel layer has a single PCA score
        embedding = torch.cat([embedding, torch.zeros(n, 2 - embedding.shape[1])], dim=1)
    return InvLayer(
        name=name,
        n_maps=int(n_maps),
        n_kept=int(n),
        k=int(built["k"]),
        silhouette=float(built["sil"]),
        clusters=clusters,
        combined=combined,
        threshold=float(threshold),
        weights=w.detach().to("cpu", torch.float32),
        kept=s.kept.detach().to("cpu", torch.long),
        embedding=embedding.contiguous(),
        labels=built["labels"].to(torch.long),
        cluster_weights=built["weights"].to(torch.float32),
    )
