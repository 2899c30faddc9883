"""Training an XNN on a frozen model's activations, and mining the top images of its x-features."""

from __future__ import annotations

import os
import time

import torch
from torch import nn

from netreveal.concepts.backbone import FeatureSource
from netreveal.concepts.layer_reading import LayerSpec, layer_spec
from netreveal.concepts.prototypes import TopImages
from netreveal.concepts.training import class_names_of, first_image, fit, run_info
from netreveal.concepts.xnn.layers import find_map_layer, read_activations, resolve_xnn_layer
from netreveal.concepts.xnn.net import XNN
from netreveal.model.hooks import model_device


@torch.no_grad()
def _scores(xnn: XNN, source: FeatureSource) -> dict[str, float]:
    agree = hits = total = 0
    for _, f, y, lab in source.in_order():
        _, y_hat = xnn(f.to(xnn.mean.device))
        pred = y_hat.argmax(1).cpu()
        agree += int((pred == y.argmax(1).cpu()).sum())
        hits += int((pred == lab).sum())
        total += len(lab)
    return {"val_faithfulness": agree / total, "val_accuracy": hits / total}


def train_xnn(
    model: nn.Module,
    train_data,
    val_data,
    *,
    layer: str | nn.Module | LayerSpec | None = None,
    num_features: int = 5,
    faithful: str = "auto",
    epochs: int = 20,
    lr: float = 3e-3,
    batch_size: int = 64,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    seed: int = 0,
    progress: bool = False,
    sparsity: float = 0.05,
    pull_away_weight: float = 0.5,
    reconstruction: float = 0.0,
    cache_features: bool = True,
    top_images: int = 5,
    map_layer: str | nn.Module | LayerSpec | None = None,
) -> XNN:
    """Train an XNN on the frozen ``model``'s activation at ``layer`` (see :mod:`netreveal.concepts.xnn`).

    ``train_data`` / ``val_data``: datasets of ``(image (3, H, W) in [0, 1], label)``; labels only
    give the reported accuracy, the training target is the model's own prediction. ``map_layer`` is
    the spatial map the x-feature heatmaps are computed on (default: the model's final feature
    map). Checkpoints and resume work as for InfoDisent. Per-epoch validation faithfulness
    (argmax agreement with the model) and accuracy are logged and kept in ``xnn.history``.
    """
    first = first_image(train_data, val_data)
    device = model_device(model)
    example = first[None].to(device)
    spec, classifier, mode = resolve_xnn_layer(model, layer, example, faithful)
    maps_spec = (
        layer_spec(model, map_layer, example)
        if map_layer is not None
        else find_map_layer(model, spec, example)
    )

    def activations(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f, logits = read_activations(model, spec, images.to(device))
        return f.detach(), logits.detach()

    t_cache = time.perf_counter()
    options = {"batch_size": batch_size, "cache": cache_features, "progress": progress}
    train = FeatureSource(activations, train_data, desc="activations", **options)
    val = FeatureSource(activations, val_data, desc="activations", **options)
    cache_seconds = time.perf_counter() - t_cache if cache_features else 0.0
    probe, probe_logits = read_activations(model, spec, example)
    n_classes = probe_logits.shape[1]
    names = class_names_of(train_data, n_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        xnn = XNN(
            probe.shape[1],
            n_classes,
            num_features,
            faithful=mode,
            classifier=classifier,
            class_names=names,
        )
    xnn = xnn.to(device)
    stats = (
        train.cached[0]
        if train.cached is not None
        else torch.cat([f for _, f, _, _ in train.in_order()])
    )
    xnn.set_statistics(stats.to(device))
    xnn.layer, xnn.map_layer = spec, maps_spec
    xnn.image_size = [int(first.shape[-2]), int(first.shape[-1])]
    weights = {
        "faithfulness": 1.0,
        "sparsity": sparsity,
        "pull_away": pull_away_weight,
        "reconstruction": reconstruction,
    }

    def step_loss(idx: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        f, y, _ = train.get(idx)
        terms = xnn.losses(f.to(device), y.to(device))
        return sum(weights[k] * v for k, v in terms.items() if weights[k])

    config = {
        "method": "xnn",
        "layer": spec.as_dict(),
        "faithful": mode,
        "num_features": num_features,
        **weights,
    }
    t0 = time.perf_counter()
    xnn.history = fit(
        xnn,
        step_loss,
        lambda: _scores(xnn, val),
        n_train=len(train_data),
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        kind="xnn",
        config=config,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
    )
    settings = {"seed": seed, "lr": lr, "batch_size": batch_size, "epochs": epochs}
    xnn.finish_run(
        run_info(
            {**settings, **weights}, train_data, val_data, time.perf_counter() - t0, cache_seconds
        ),
        seed,
    )
    xnn.eval()
    if top_images:
        mine_top_images(xnn, train, m=top_images)
        xnn.keys = getattr(train_data, "keys", None)
    return xnn


@torch.no_grad()
def mine_top_images(
    xnn: XNN, source: FeatureSource, *, m: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-m images per x-feature (K, m) by activation, with their x values (slots beyond the
    dataset's size: index -1, score -inf); stored on ``xnn``. ``source`` gives the activations of
    the training images (see :func:`train_xnn`)."""
    top = TopImages(m)
    for start, f, *_ in source.in_order():
        x = xnn.encode(f.to(xnn.mean.device))
        top.update(x[:, None, :], x.new_zeros(x.shape[0], 1, x.shape[1], 1, 1), start)
    found = top.result(xnn.image_size or [1, 1])
    xnn.top_images, xnn.top_scores = found.indices[0], found.scores[0]
    return xnn.top_images, xnn.top_scores
