"""How good an InfoDisent head is: its accuracy against the backbone's, and how pure its components
are (on images with part masks) compared with the backbone's raw channels."""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.concepts.backbone import FeatureExtractor, batches
from netreveal.concepts.infodisent.head import InfoDisentHead, extractor_for
from netreveal.concepts.layer_reading import LayerSpec
from netreveal.concepts.prototypes import part_purity
from netreveal.errors import NetrevealError


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
