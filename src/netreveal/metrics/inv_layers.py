"""INV per layer: how its cluster maps align with ground-truth parts, and how its combined map
scores on deletion/insertion beside Grad-CAM at the same layer."""

from __future__ import annotations

from collections.abc import Sequence

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


def inv_layer_values(adapter: ModelAdapter, inputs: Inputs, result, steps: int = 50, baseline: str = "blur",
                     batch_size: int = 64, fraction: float = 0.05, progress: bool = False) -> dict:
    """Per INV layer of ``result`` (an :class:`~netreveal.inv.InvResult` of ``inputs``), the values
    :func:`inv_layer_rows` summarises: each cluster map's best IoU (its top-``fraction`` region
    against any ground-truth part), and per image the deletion / insertion AUC of the layer's
    combined map and of Grad-CAM at the same layer. Values of several shards combine."""
    targets = torch.tensor([img.target for img in result.images])
    size = tuple(inputs.images.shape[-2:])
    cams = {}
    for start in range(0, len(targets), batch_size):
        part = gradcam_layers(adapter.model, inputs.images[start:start + batch_size], result.layers,
                              targets[start:start + batch_size])
        for name, raw in part.items():
            cams.setdefault(name, []).append(GradCAM().to_map(raw, size))
    layers = []
    for depth, name in enumerate(tqdm(result.layers, desc="INV layers", disable=not progress)):
        ious = []
        for i, img in enumerate(result.images):
            parts = inputs.part_masks[i] if inputs.part_masks else None
            clusters = img.layers[depth].clusters
            if parts is None or not clusters:
                continue
            best, _ = best_part_iou(torch.stack([c.map.float() for c in clusters]), parts, fraction)
            ious.append(best)
        combined = torch.stack([img.layers[depth].combined.float() for img in result.images])
        ours = deletion_insertion(adapter.model, inputs.images, combined, targets, steps=steps, baseline=baseline,
                                  batch_size=batch_size)
        ref = deletion_insertion(adapter.model, inputs.images, torch.cat(cams[name]), targets, steps=steps,
                                 baseline=baseline, batch_size=batch_size)
        layers.append({"layer": name, "ious": torch.cat(ious).tolist() if ious else [],
                       "inv_deletion": ours.deletion_auc.tolist(), "inv_insertion": ours.insertion_auc.tolist(),
                       "cam_deletion": ref.deletion_auc.tolist(), "cam_insertion": ref.insertion_auc.tolist()})
    return {"layers": layers}


def inv_layer_rows(values: Sequence[dict], iou_threshold: float = 0.3) -> tuple[list[str], list[list]]:
    """The per-layer table from the :func:`inv_layer_values` of one or more shards: cluster maps,
    mean and median best-part IoU, share at IoU >= ``iou_threshold``, mean AUCs."""
    rows = []
    for depth, first in enumerate(values[0]["layers"]):
        layer = [part["layers"][depth] for part in values]
        if any(entry["layer"] != first["layer"] for entry in layer):
            raise ValueError("the INV values of the shards name different layers")

        def joined(field: str, layer: list[dict] = layer) -> torch.Tensor:
            return torch.tensor([v for entry in layer for v in entry[field]], dtype=torch.float32)

        iou = joined("ious")
        rows.append([first["layer"], len(iou), float(iou.mean()) if len(iou) else "–",
                     float(iou.median()) if len(iou) else "–",
                     float((iou >= iou_threshold).float().mean()) if len(iou) else "–",
                     float(joined("inv_deletion").mean()), float(joined("inv_insertion").mean()),
                     float(joined("cam_deletion").mean()), float(joined("cam_insertion").mean())])
    return INV_LAYER_HEADER, rows


def evaluate_inv_layers(adapter: ModelAdapter, inputs: Inputs, result, steps: int = 50, baseline: str = "blur",
                        batch_size: int = 64, fraction: float = 0.05, iou_threshold: float = 0.3,
                        progress: bool = False) -> tuple[list[str], list[list]]:
    """Per INV layer of ``result`` (an :class:`~netreveal.inv.InvResult` of ``inputs``): how well
    cluster maps align with ground-truth parts (best IoU of each cluster map's top-``fraction``
    region with any part; share at IoU >= ``iou_threshold``), and deletion / insertion AUC of the
    layer's combined map beside Grad-CAM at the same layer."""
    values = inv_layer_values(adapter, inputs, result, steps, baseline, batch_size, fraction, progress)
    return inv_layer_rows([values], iou_threshold)
