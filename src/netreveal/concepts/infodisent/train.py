"""Training an InfoDisent head on a frozen backbone, and mining its prototypes."""

from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from netreveal.concepts.backbone import FeatureExtractor, FeatureSource, batches
from netreveal.concepts.infodisent.head import InfoDisentHead, extractor_for, signed_pool
from netreveal.concepts.layer_reading import LayerSpec
from netreveal.concepts.prototypes import Prototypes, TopImages
from netreveal.concepts.training import (
    class_names_of,
    first_image,
    fit,
    num_classes_of,
    run_info,
)
from netreveal.model.hooks import model_device


@torch.no_grad()
def _accuracy(head: InfoDisentHead, source: FeatureSource) -> float:
    correct = total = 0
    for _, f, y in source.in_order():
        pred = head(f).argmax(dim=1).cpu()
        correct += int((pred == y.cpu()).sum())
        total += len(y)
    return correct / max(total, 1)


def train_infodisent(
    backbone_model: nn.Module,
    train_data,
    val_data,
    *,
    layer: str | nn.Module | LayerSpec | None = None,
    epochs: int = 10,
    lr: float = 5e-3,
    batch_size: int = 64,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    seed: int = 0,
    progress: bool = False,
    tau: float = 0.5,
    weight_l1: float = 0.0,
    num_classes: int | None = None,
    class_names: list[str] | None = None,
    cache_features: bool = True,
    prototypes: int = 5,
    layout: str = "auto",
    prefix_tokens: int | None = None,
) -> InfoDisentHead:
    """Train an InfoDisent head on a frozen backbone; mine prototypes on ``train_data`` at the end.

    ``train_data`` / ``val_data``: map-style datasets of ``(image (3, H, W) in [0, 1], label)``.
    ``layer``: where to read the feature map (default: the input of the final global pooling, see
    :mod:`netreveal.concepts.layer_reading`). ``cache_features`` computes the backbone features
    once (the backbone is frozen and the data fixed) instead of every epoch. A checkpoint with the
    optimizer and RNG state is written to ``checkpoint_dir`` after every epoch; with ``resume`` a
    run continues from it. ``weight_l1`` adds ``weight_l1 * sum(W)`` to the loss (sparser classes).
    ``prototypes`` is the number m of prototype images per component and side (0: do not mine).
    Per-epoch validation accuracy is logged (logger ``netreveal.concepts``) and kept in
    ``head.history``.
    """
    first = first_image(train_data, val_data)
    device = model_device(backbone_model)
    extractor = FeatureExtractor(
        backbone_model,
        layer,
        example=first[None].to(device),
        layout=layout,
        prefix_tokens=prefix_tokens,
    )

    def features(images: torch.Tensor) -> tuple[torch.Tensor]:
        return (extractor(images),)

    t_cache = time.perf_counter()
    options = {"batch_size": batch_size, "cache": cache_features, "progress": progress}
    train = FeatureSource(features, train_data, **options)
    val = FeatureSource(features, val_data, **options)
    cache_seconds = time.perf_counter() - t_cache if cache_features else 0.0
    train_features, train_labels = train.cached if train.cached is not None else (None, None)
    probe = extractor(first[None])
    n_classes = num_classes or num_classes_of(train_data, train_labels)
    names = class_names or class_names_of(train_data, n_classes)
    head = InfoDisentHead(probe.shape[1], n_classes, tau=tau, class_names=names).to(device)
    head.layer = extractor.spec
    head.image_size = [int(first.shape[-2]), int(first.shape[-1])]
    head.grid = [int(probe.shape[-2]), int(probe.shape[-1])]

    def step_loss(idx: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        f, y = train.get(idx)
        logits = head(f.to(device), noise)
        loss = F.cross_entropy(logits, y.to(device))
        if weight_l1:
            loss = loss + weight_l1 * head.class_weights().sum()
        return loss

    config = {
        "method": "infodisent",
        "layer": extractor.spec.as_dict(),
        "tau": tau,
        "weight_l1": weight_l1,
        "channels": head.channels,
        "classes": n_classes,
    }
    t0 = time.perf_counter()
    head.history = fit(
        head,
        step_loss,
        lambda: {"val_accuracy": _accuracy(head, val)},
        n_train=len(train_data),
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        kind="infodisent",
        config=config,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
        after_step=head.project_,
    )
    settings = {"seed": seed, "lr": lr, "batch_size": batch_size, "epochs": epochs}
    head.finish_run(
        run_info(
            {**settings, "weight_l1": weight_l1},
            train_data,
            val_data,
            time.perf_counter() - t0,
            cache_seconds,
        ),
        seed,
    )
    head.eval()
    if prototypes:
        head.prototypes = mine_prototypes(
            head,
            backbone_model,
            train_data,
            m=prototypes,
            batch_size=batch_size,
            progress=progress,
            features=train_features,
            keys=getattr(train_data, "keys", None),
        )
    return head


@torch.no_grad()
def mine_prototypes(
    head: InfoDisentHead,
    backbone: nn.Module | None,
    data,
    *,
    m: int = 5,
    batch_size: int = 64,
    progress: bool = False,
    features: torch.Tensor | None = None,
    keys: list | None = None,
) -> Prototypes:
    """Per component k: the top-m images of ``data`` by v_k (side 0) and by -v_k (side 1), with the
    argmax cell of ReLU(J_k) (resp. ReLU(-J_k)), its image box and that map.

    ``features`` (N, D, h, w) may be given instead of running the backbone (e.g. a training cache).
    """
    head.eval()
    top = TopImages(m)
    n = len(data) if features is None else features.shape[0]
    extractor = extractor_for(head, backbone) if features is None else None
    starts = range(0, n, batch_size)
    it = iter(batches(data, batch_size)) if features is None else None
    for start in tqdm(starts, desc="prototypes", disable=not progress, unit="batch"):
        if features is not None:
            f = features[start : start + batch_size]
        else:
            images, _ = next(it)
            f = extractor(images)
        comps = head.components(f.to(head.S.device))
        v = signed_pool(comps)
        scores = torch.stack([v, -v], dim=1)  # (B, 2, D)
        maps = torch.stack([comps.clamp_min(0), (-comps).clamp_min(0)], dim=1)  # (B, 2, D, h, w)
        top.update(scores, maps, start)
    size = head.image_size or list(data[0][0].shape[-2:])
    return top.result(
        size,
        keys=keys,
        params={"m": m, "ranked_by": "v_k (side 0), -v_k (side 1)", "dataset_size": n},
    )
