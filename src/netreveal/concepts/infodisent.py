"""InfoDisent: an interpretable head on the final feature map of a frozen backbone.

For a feature map x (B, D, h, w):
- an orthogonal U = matrix_exp(S - S^T) (S starts at 0, so U starts as the identity) mixes the D
  channels at every position: J = U x, one *component* J_k per row of U;
- signed pooling per component: v_k = max_p ReLU(J_k)(p) - max_p ReLU(-J_k)(p) over positions p;
  while training each max is relaxed with a Gumbel softmax over positions,
  max_p z_p ~ sum_p z_p softmax((z + g) / tau)_p with Gumbel noise g (seeded) and temperature tau;
- logits = W v with non-negative weights W (C, D) and no bias, so a class logit is exactly the sum
  of its components' contributions W[c, k] * v_k.

W >= 0 is kept by projection: after every optimizer step W is clamped at 0 (so weights can be
exactly 0 and come back when their gradient turns), and the forward pass uses ``W.clamp_min(0)``
(gradient passed straight through) so the weights in use are non-negative even in a training
loop that forgets the projection.
Only S and W train; the backbone stays frozen and in eval mode.

An explanation of an image for class c ranks components by W[c, k] * v_k and shows, for each, the
region it fired on (argmax cell box and its map upsampled; the positive side for v_k >= 0, the
negative side otherwise) beside its prototypes: the training images where that side is strongest.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from netreveal import results as result_io
from netreveal.concepts.backbone import (
    FeatureExtractor,
    LayerSpec,
    argmax_cells,
    batches,
    cell_boxes,
)
from netreveal.concepts.prototypes import Prototypes, TopImages, part_purity
from netreveal.concepts.training import class_names_of, fit, num_classes_of, plain
from netreveal.errors import NetrevealError
from netreveal.imaging import minmax, upsample
from netreveal.model.hooks import model_device
from netreveal.provenance import provenance
from netreveal.results import register
from netreveal.targets import Target, resolve_targets


def gumbel_max(
    values: torch.Tensor, tau: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gumbel-softmax relaxation of ``values.max(-1)``: sum of values weighted by
    softmax((values + g) / tau) with g ~ Gumbel(0, 1) drawn from ``generator``."""
    u = torch.rand(values.shape, generator=generator, device=values.device, dtype=values.dtype)
    tiny = torch.finfo(values.dtype).tiny
    g = -torch.log(-torch.log(u.clamp(tiny, 1.0 - 1e-7)))
    weights = torch.softmax((values + g) / tau, dim=-1)
    return (weights * values).sum(dim=-1)


def signed_pool(
    maps: torch.Tensor, tau: float | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """v_k = max ReLU(J_k) - max ReLU(-J_k) over positions, for maps (B, K, h, w) -> (B, K).

    With ``tau`` the two maxima are Gumbel-softmax relaxations (training); without, exact."""
    flat = maps.flatten(2)
    pos, neg = flat.clamp_min(0), (-flat).clamp_min(0)
    if tau is None:
        return pos.amax(dim=-1) - neg.amax(dim=-1)
    return gumbel_max(pos, tau, generator) - gumbel_max(neg, tau, generator)


class InfoDisentHead(nn.Module):
    """The trainable part of InfoDisent: S (D, D) and W (C, D). Call it on feature maps (B, D, h, w).

    Besides the parameters it carries what it needs to be used and shown later: the backbone layer
    it reads (``layer``), the input size and feature grid it was trained at, class names, the
    training history and, once mined, its :class:`Prototypes`.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        *,
        tau: float = 0.5,
        class_names: list[str] | None = None,
    ):
        super().__init__()
        if channels < 1 or num_classes < 2:
            raise NetrevealError("an InfoDisent head needs >= 1 channel and >= 2 classes")
        if tau <= 0:
            raise NetrevealError(f"Gumbel temperature must be positive, got {tau}")
        self.S = nn.Parameter(torch.zeros(channels, channels))
        self.weight = nn.Parameter(torch.zeros(num_classes, channels))
        self.tau = float(tau)
        self.class_names = (
            list(class_names)
            if class_names is not None
            else [f"class_{i}" for i in range(num_classes)]
        )
        self.layer: LayerSpec | None = None
        self.image_size: list[int] | None = None
        self.grid: list[int] | None = None
        self.history: list[dict] = []
        self.prototypes: Prototypes | None = None
        self.info: dict = {}

    @property
    def channels(self) -> int:
        return int(self.S.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    def rotation(self) -> torch.Tensor:
        """U = matrix_exp(S - S^T), orthogonal (D, D)."""
        return torch.linalg.matrix_exp(self.S - self.S.T)

    def class_weights(self) -> torch.Tensor:
        """The non-negative classifier weights in use (C, D): ``W.clamp_min(0)`` in value, with the
        gradient passed straight through to W (so a weight sitting at 0 can grow again)."""
        w = self.weight
        return w + (w.clamp_min(0) - w).detach()

    def components(self, features: torch.Tensor) -> torch.Tensor:
        """J = U x per position: (B, D, h, w) -> (B, D, h, w)."""
        if features.dim() != 4 or features.shape[1] != self.channels:
            raise NetrevealError(
                f"expected feature maps (B, {self.channels}, h, w), got {tuple(features.shape)}"
            )
        return torch.einsum("kd,bdhw->bkhw", self.rotation().to(features.dtype), features)

    def pool(self, comps: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Signed pooling (B, D); relaxed with Gumbel noise in training mode."""
        return signed_pool(comps, self.tau if self.training else None, generator)

    def forward(
        self, features: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.pool(self.components(features), generator) @ self.class_weights().T.to(
            features.dtype
        )

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp W at 0 (run after each optimizer step)."""
        self.weight.clamp_(min=0)

    # ---------------------------------------------------------------- saving

    def record(self) -> InfoDisentRecord:
        return InfoDisentRecord(
            channels=self.channels,
            num_classes=self.num_classes,
            tau=self.tau,
            S=self.S.detach().cpu().clone(),
            weight=self.class_weights().detach().cpu().clone(),
            class_names=list(self.class_names),
            layer=self.layer.as_dict() if self.layer is not None else None,
            image_size=self.image_size,
            grid=self.grid,
            history=list(self.history),
            prototypes=self.prototypes,
            info=dict(self.info),
        )

    @classmethod
    def from_record(cls, rec: InfoDisentRecord) -> InfoDisentHead:
        head = cls(rec.channels, rec.num_classes, tau=rec.tau, class_names=rec.class_names)
        with torch.no_grad():
            head.S.copy_(rec.S)
            head.weight.copy_(rec.weight)
        head.layer = LayerSpec.from_dict(rec.layer) if rec.layer is not None else None
        head.image_size, head.grid = rec.image_size, rec.grid
        head.history, head.prototypes, head.info = list(rec.history), rec.prototypes, dict(rec.info)
        return head.eval()


@register
@dataclasses.dataclass
class InfoDisentRecord:
    """A saved InfoDisent head (parameters, backbone layer, classes, history, prototypes)."""

    channels: int
    num_classes: int
    tau: float
    S: torch.Tensor
    weight: torch.Tensor
    class_names: list
    layer: dict | None
    image_size: list | None
    grid: list | None
    history: list
    prototypes: Prototypes | None = None
    info: dict = dataclasses.field(default_factory=dict)


def save_head(head: InfoDisentHead, path: str | os.PathLike) -> Path:
    """Save a head (with its prototypes) as a netreveal result file."""
    return result_io.save(head.record(), path)


def load_head(path: str | os.PathLike) -> InfoDisentHead:
    """Load a head saved by :func:`save_head` (``weights_only=True``)."""
    rec = result_io.load(path)
    if not isinstance(rec, InfoDisentRecord):
        raise NetrevealError(f"{path} is not an InfoDisent head (it holds a {type(rec).__name__})")
    return InfoDisentHead.from_record(rec)


def extractor_for(head: InfoDisentHead, backbone: nn.Module) -> FeatureExtractor:
    """The feature extractor a trained head reads from ``backbone``."""
    if head.layer is None:
        raise NetrevealError("this InfoDisent head does not record its backbone layer")
    size = head.image_size or [224, 224]
    return FeatureExtractor(backbone, head.layer, image_size=tuple(size))


# ---------------------------------------------------------------- training


class _FeatureSource:
    """Training examples as features: precomputed once (``cache``) or computed per batch."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        data,
        batch_size: int,
        cache: bool,
        progress: bool,
        desc: str,
    ):
        self.extractor, self.data, self.batch_size = extractor, data, batch_size
        self.features = self.labels = None
        if cache:
            self.features, self.labels = extractor.extract(
                data, batch_size=batch_size, progress=progress
            )

    def __len__(self) -> int:
        return len(self.data)

    def get(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.features is not None:
            return self.features[idx], self.labels[idx]
        ((images, labels),) = list(batches(self.data, len(idx), idx))
        return self.extractor(images), labels

    def all(self):
        """Yield (start, features, labels) over the whole set in order."""
        for start in range(0, len(self), self.batch_size):
            idx = torch.arange(start, min(start + self.batch_size, len(self)))
            f, y = self.get(idx)
            yield start, f, y


@torch.no_grad()
def _accuracy(head: InfoDisentHead, source: _FeatureSource) -> float:
    correct = total = 0
    for _, f, y in source.all():
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
    :mod:`netreveal.concepts.backbone`). ``cache_features`` computes the backbone features once
    (the backbone is frozen and the data fixed) instead of every epoch. A checkpoint with the
    optimizer and RNG state is written to ``checkpoint_dir`` after every epoch; with ``resume`` a
    run continues from it. ``weight_l1`` adds ``weight_l1 * sum(W)`` to the loss (sparser classes).
    ``prototypes`` is the number m of prototype images per component and side (0: do not mine).
    Per-epoch validation accuracy is logged (logger ``netreveal.concepts``) and kept in
    ``head.history``.
    """
    if len(train_data) == 0 or len(val_data) == 0:
        raise NetrevealError("training and validation sets must not be empty")
    first = train_data[0][0]
    if not isinstance(first, torch.Tensor) or first.dim() != 3:
        raise NetrevealError("dataset images must be (3, H, W) tensors in [0, 1]")
    device = model_device(backbone_model)
    extractor = FeatureExtractor(
        backbone_model,
        layer,
        example=first[None].to(device),
        layout=layout,
        prefix_tokens=prefix_tokens,
    )
    t_cache = time.perf_counter()
    train = _FeatureSource(extractor, train_data, batch_size, cache_features, progress, "train")
    val = _FeatureSource(extractor, val_data, batch_size, cache_features, progress, "val")
    cache_seconds = time.perf_counter() - t_cache
    probe = extractor(first[None])
    n_classes = num_classes or num_classes_of(train_data, train.labels)
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
    head.info = {
        "seed": seed,
        "lr": lr,
        "batch_size": batch_size,
        "epochs": epochs,
        "weight_l1": weight_l1,
        "train_size": len(train_data),
        "val_size": len(val_data),
        "train_seconds": time.perf_counter() - t0,
        "cache_seconds": cache_seconds if cache_features else 0.0,
    }
    head.eval()
    if prototypes:
        head.prototypes = mine_prototypes(
            head,
            backbone_model,
            train_data,
            m=prototypes,
            batch_size=batch_size,
            progress=progress,
            features=train.features,
            keys=getattr(train_data, "keys", None),
        )
    return head



# ---------------------------------------------------------------- prototypes


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


# ---------------------------------------------------------------- explanations


@register
@dataclasses.dataclass
class InfoDisentExplanation:
    """InfoDisent explanations of a batch of images.

    Per image i and shown component t (best first, ``top`` of them): ``components[i, t]`` (index k),
    ``contributions`` W[c, k] * v_k for the explained class c = ``targets[i]``, ``values`` v_k,
    ``sides`` (0: the component fired positively, region from ReLU(J_k); 1: negatively, from
    ReLU(-J_k)), ``cells`` (row, col) of the side's argmax, ``boxes`` (x0, y0, x1, y1) of that cell
    in the image, ``heatmaps`` (B, T, H, W) the side's map upsampled to the image (raw values), and
    ``prototype_ids`` (B, T, m) the training images of that component and side (-1: none).
    ``sizes[i]``: how many components contribute more than ``threshold`` x the top contribution.
    ``maps`` (B, H, W): the shown heatmaps weighted by their positive contributions, scaled to
    [0, 1] per image (one heatmap per image for deletion / insertion scores).
    ``class_weights`` (C, D) is the global view: every class's weights over the components.
    ``backbone_logits`` are the frozen backbone's own outputs, for comparison.
    """

    method: str
    logits: torch.Tensor
    targets: torch.Tensor
    target_probs: torch.Tensor
    components: torch.Tensor
    contributions: torch.Tensor
    values: torch.Tensor
    sides: torch.Tensor
    cells: torch.Tensor
    boxes: torch.Tensor
    heatmaps: torch.Tensor
    prototype_ids: torch.Tensor
    sizes: torch.Tensor
    maps: torch.Tensor
    class_weights: torch.Tensor
    class_names: list
    params: dict
    provenance: dict
    backbone_logits: torch.Tensor | None = None
    extras: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.logits.shape[0])


def explanation_size(contributions: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """Per row of contributions (B, D): the number of components above ``threshold`` x the largest
    contribution (0 when no contribution is positive)."""
    top = contributions.amax(dim=1, keepdim=True)
    above = (contributions > threshold * top) & (top > 0)
    return above.sum(dim=1)


@torch.no_grad()
def explain_infodisent(
    head: InfoDisentHead,
    backbone: nn.Module,
    images: torch.Tensor,
    target: Target = None,
    *,
    top: int = 5,
    threshold: float = 0.2,
    batch_size: int = 32,
    progress: bool = False,
) -> InfoDisentExplanation:
    """Explain the head's decision for ``images`` (B, 3, H, W) in [0, 1].

    ``target``: the class to explain per image (None: the head's predicted class; int; one per
    image). ``top`` components are shown per image; ``threshold`` defines the explanation size.
    """
    head.eval()
    extractor = extractor_for(head, backbone)
    weights = head.class_weights()
    protos = head.prototypes
    top = min(top, head.channels)
    out: dict[str, list[torch.Tensor]] = {
        k: []
        for k in (
            "logits",
            "targets",
            "probs",
            "comp",
            "contrib",
            "values",
            "sides",
            "cells",
            "boxes",
            "heat",
            "protos",
            "sizes",
            "bb",
        )
    }
    hw = tuple(images.shape[-2:])
    for start in tqdm(
        range(0, images.shape[0], batch_size), desc="InfoDisent", disable=not progress, unit="batch"
    ):
        stop = min(start + batch_size, images.shape[0])
        feats, bb_logits = extractor.with_logits(images[start:stop])
        comps = head.components(feats)
        v = signed_pool(comps)
        logits = v @ weights.T
        part = target
        if isinstance(target, (torch.Tensor, list, tuple)):
            part = (
                list(target)[start:stop]
                if not isinstance(target, torch.Tensor)
                else target[start:stop]
            )
        idx = resolve_targets(part, logits)
        if bool((idx < 0).any()):
            raise NetrevealError(
                "InfoDisent explains class indices; a callable target is not supported"
            )
        contrib = weights[idx] * v  # (b, D)
        order = torch.sort(contrib, dim=1, descending=True, stable=True).indices[:, :top]
        chosen_v = v.gather(1, order)
        sides = (chosen_v < 0).long()
        chosen = comps.gather(1, order[..., None, None].expand(-1, -1, *comps.shape[-2:]))
        side_maps = torch.where(
            sides[..., None, None] == 0, chosen.clamp_min(0), (-chosen).clamp_min(0)
        )
        cells = argmax_cells(side_maps)
        out["logits"].append(logits)
        out["targets"].append(idx)
        out["probs"].append(logits.softmax(1).gather(1, idx[:, None]).squeeze(1))
        out["comp"].append(order)
        out["contrib"].append(contrib.gather(1, order))
        out["values"].append(chosen_v)
        out["sides"].append(sides)
        out["cells"].append(cells)
        out["boxes"].append(cell_boxes(cells, tuple(comps.shape[-2:]), hw))
        out["heat"].append(upsample(side_maps, hw))
        if protos is not None:
            out["protos"].append(protos.indices.to(order.device)[sides, order])
        else:
            out["protos"].append(
                torch.full((*order.shape, 0), -1, dtype=torch.long, device=order.device)
            )
        out["sizes"].append(explanation_size(contrib, threshold))
        out["bb"].append(bb_logits)
    cat = {k: torch.cat(v).cpu() for k, v in out.items()}
    weights_pos = cat["contrib"].clamp_min(0)
    combined = (weights_pos[..., None, None] * cat["heat"]).sum(dim=1)
    return InfoDisentExplanation(
        method="infodisent",
        logits=cat["logits"],
        targets=cat["targets"],
        target_probs=cat["probs"],
        components=cat["comp"],
        contributions=cat["contrib"],
        values=cat["values"],
        sides=cat["sides"],
        cells=cat["cells"],
        boxes=cat["boxes"],
        heatmaps=cat["heat"],
        prototype_ids=cat["protos"],
        sizes=cat["sizes"],
        maps=minmax(combined),
        class_weights=weights.detach().cpu().clone(),
        class_names=list(head.class_names),
        params={
            "top": top,
            "threshold": threshold,
            "layer": str(head.layer),
            "tau": head.tau,
            "prototypes_per_component": protos.m if protos is not None else 0,
        },
        provenance=plain(provenance(head_info=head.info)),
        backbone_logits=cat["bb"],
    )


def class_summary(head: InfoDisentHead, top: int = 5) -> dict[str, list[tuple[int, float]]]:
    """The global view as text-friendly data: per class name, its ``top`` components and weights."""
    w = head.class_weights().detach().cpu()
    vals, idx = w.topk(min(top, w.shape[1]), dim=1)
    return {
        name: [(int(k), float(x)) for k, x in zip(idx[c], vals[c])]
        for c, name in enumerate(head.class_names)
    }


# ---------------------------------------------------------------- quality measures


@torch.no_grad()
def accuracy(
    head: InfoDisentHead, backbone: nn.Module, data, *, batch_size: int = 64, progress: bool = False
) -> dict[str, float]:
    """Accuracy of the head and of the backbone itself on ``data`` (same labels), and how often the
    two predict the same class. The backbone's accuracy is meaningful when its classes are the head's."""
    head.eval()
    extractor = extractor_for(head, backbone)
    hits = bb_hits = agree = total = 0
    for images, labels in tqdm(
        batches(data, batch_size), desc="accuracy", disable=not progress, unit="batch"
    ):
        feats, bb = extractor.with_logits(images)
        pred = head(feats).argmax(1).cpu()
        bb_pred = bb.argmax(1).cpu()
        hits += int((pred == labels).sum())
        bb_hits += int((bb_pred == labels).sum())
        agree += int((pred == bb_pred).sum())
        total += len(labels)
    return {
        "head_accuracy": hits / total,
        "backbone_accuracy": bb_hits / total,
        "agreement": agree / total,
    }


@torch.no_grad()
def component_maps(
    head: InfoDisentHead | None,
    backbone: nn.Module,
    images: torch.Tensor,
    layer: LayerSpec | None = None,
    *,
    batch_size: int = 64,
) -> torch.Tensor:
    """Component maps J (N, D, h, w) of ``images``; with ``head=None`` the raw channels (U = I) of
    ``layer``."""
    if head is not None:
        extractor = extractor_for(head, backbone)
    else:
        if layer is None:
            raise NetrevealError("raw channel maps need the layer")
        extractor = FeatureExtractor(backbone, layer, example=images[:1])
    out = []
    for start in range(0, images.shape[0], batch_size):
        f = extractor(images[start : start + batch_size])
        out.append(head.components(f) if head is not None else f)
    return torch.cat(out).cpu()


def top_components(weights: torch.Tensor, k: int = 5) -> torch.Tensor:
    """The union over classes of each class's ``k`` largest weights' components (sorted ids)."""
    return weights.detach().topk(min(k, weights.shape[1]), dim=1).indices.unique()


def purity_vs_channels(
    head: InfoDisentHead,
    backbone: nn.Module,
    images: torch.Tensor,
    masks,
    parts,
    *,
    top: int = 10,
    per_class: int = 5,
    channel_weights: torch.Tensor | None = None,
    min_cover: float = 0.1,
    batch_size: int = 64,
) -> dict:
    """Part purity (:func:`~netreveal.concepts.prototypes.part_purity`, positive side, ``top``
    images) of the head's components against the backbone's raw channels at the same layer (U = I).

    Returns means over all components / channels, over the components the classes weigh most
    (each class's ``per_class`` largest weights; for channels when ``channel_weights`` (C, D), e.g.
    the backbone's own classifier on pooled channels, is given), over both signs of every component
    (each side as its own component), and the per-component details.
    """
    comps = component_maps(head, backbone, images, batch_size=batch_size)
    raw = component_maps(None, backbone, images, head.layer, batch_size=batch_size)
    hw = tuple(images.shape[-2:])
    pos = part_purity(comps, masks, parts, top=top, min_cover=min_cover, image_size=hw)
    neg = part_purity(-comps, masks, parts, top=top, min_cover=min_cover, image_size=hw)
    chan = part_purity(raw, masks, parts, top=top, min_cover=min_cover, image_size=hw)
    chosen = top_components(head.class_weights().cpu(), per_class)
    out = {
        "components": pos.mean,
        "components_top": float(pos.purity[chosen].mean()),
        "components_top_count": int(chosen.numel()),
        "components_both_sides": float(torch.cat([pos.purity, neg.purity]).mean()),
        "channels": chan.mean,
        "channels_top": float("nan"),
        "channels_top_count": 0,
        "components_detail": pos,
        "channels_detail": chan,
    }
    if channel_weights is not None:
        if channel_weights.shape[1] != raw.shape[1]:
            raise NetrevealError(
                f"channel weights have {channel_weights.shape[1]} inputs, the layer has {raw.shape[1]} channels"
            )
        picked = top_components(channel_weights.cpu(), per_class)
        out["channels_top"] = float(chan.purity[picked].mean())
        out["channels_top_count"] = int(picked.numel())
    return out
