"""INV per layer: how its cluster maps align with ground-truth parts, and how its combined map
scores on deletion/insertion beside Grad-CAM at the same layer."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from netreveal.attribution.cam import GradCAM
from netreveal.attribution.gradcam import gradcam_layers
from netreveal.data.inputs import Inputs
from netreveal.metrics.alignment import best_part_iou
from netreveal.metrics.perturbation import deletion_insertion
from netreveal.model.adapter import ModelAdapter

INV_LAYER_HEADER = ["layer", "cluster maps", "best part IoU (mean)", "IoU (median)", "aligned share",
                    "INV del AUC ↓", "INV ins AUC ↑", "Grad-CAM del AUC ↓", "Grad-CAM ins AUC ↑"]


def evaluate_inv_layers(adapter: ModelAdapter, inputs: Inputs, result, steps: int = 50, baseline: str = "blur",
                        batch_size: int = 64, fraction: float = 0.05, iou_threshold: float = 0.3,
                        progress: bool = False) -> tuple[list[str], list[list]]:
    """Per INV layer of ``result`` (an :class:`~netreveal.inv.InvResult` of ``inputs``): how well
    cluster maps align with ground-truth parts (best IoU of each cluster map's top-``fraction``
    region with any part; share at IoU >= ``iou_threshold``), and deletion / insertion AUC of the
    layer's combined map beside Grad-CAM at the same layer."""
    targets = torch.tensor([img.target for img in result.images])
    size = tuple(inputs.images.shape[-2:])
    cams = {}
    for start in range(0, len(targets), batch_size):
        part = gradcam_layers(adapter.model, inputs.images[start:start + batch_size], result.layers,
                              targets[start:start + batch_size])
        for name, raw in part.items():
            cams.setdefault(name, []).append(GradCAM().to_map(raw, size))
    rows = []
    for depth, name in enumerate(tqdm(result.layers, desc="INV layers", disable=not progress)):
        ious = []
        for i, img in enumerate(result.images):
            parts = inputs.part_masks[i] if inputs.part_masks else None
            clusters = img.layers[depth].clusters
            if parts is None or not clusters:
                continue
            best, _ = best_part_iou(torch.stack([c.map.float() for c in clusters]), parts, fraction)
            ious.append(best)
        iou = torch.cat(ious) if ious else torch.zeros(0)
        combined = torch.stack([img.layers[depth].combined.float() for img in result.images])
        ours = deletion_insertion(adapter.model, inputs.images, combined, targets, steps=steps, baseline=baseline,
                                  batch_size=batch_size)
        ref = deletion_insertion(adapter.model, inputs.images, torch.cat(cams[name]), targets, steps=steps,
                                 baseline=baseline, batch_size=batch_size)
        rows.append([name, len(iou), float(iou.mean()) if len(iou) else "–", float(iou.median()) if len(iou) else "–",
                     float((iou >= iou_threshold).float().mean()) if len(iou) else "–",
                     float(ours.deletion_auc.mean()), float(ours.insertion_auc.mean()),
                     float(ref.deletion_auc.mean()), float(ref.insertion_auc.mean())])
    return INV_LAYER_HEADER, rows
