"""InfoDisent explanations: an image's components ranked by their contribution to a class, each with
the region it fired on and its prototypes."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.concepts.backbone import argmax_cells, cell_boxes
from netreveal.concepts.base import explained_classes
from netreveal.concepts.infodisent.head import InfoDisentHead, extractor_for, signed_pool
from netreveal.concepts.training import plain
from netreveal.imaging import minmax, upsample
from netreveal.provenance import provenance
from netreveal.results import register
from netreveal.targets import Target


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


_PARTS = (
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
    out: dict[str, list[torch.Tensor]] = {k: [] for k in _PARTS}
    hw = tuple(images.shape[-2:])
    for start in tqdm(
        range(0, images.shape[0], batch_size), desc="InfoDisent", disable=not progress, unit="batch"
    ):
        stop = min(start + batch_size, images.shape[0])
        feats, bb_logits = extractor.with_logits(images[start:stop])
        comps = head.components(feats)
        v = signed_pool(comps)
        logits = v @ weights.T
        idx = explained_classes(target, start, stop, logits, "InfoDisent")
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
        provenance=plain(provenance(head_info=head.info, head_provenance=head.provenance)),
        backbone_logits=cat["bb"],
    )
