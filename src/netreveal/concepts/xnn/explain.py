"""XNN explanations: an image's x-features, their contributions to a class and their heatmaps; and
how faithful an XNN is to its model."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.concepts.backbone import batches
from netreveal.concepts.base import explained_classes
from netreveal.concepts.layer_reading import LayerSpec, read_layers, to_feature_map
from netreveal.concepts.training import plain
from netreveal.concepts.xnn.layers import activation_vector, read_activations
from netreveal.concepts.xnn.net import XNN
from netreveal.errors import NetrevealError
from netreveal.imaging import minmax, upsample
from netreveal.provenance import provenance
from netreveal.results import register
from netreveal.targets import Target


@register
@dataclasses.dataclass
class XNNExplanation:
    """XNN explanations of a batch of images.

    ``logits`` (B, C) the model's, ``reconstructed`` (B, C) from the x-features, ``agreement`` (B,)
    whether their argmax agree; ``xfeatures`` (B, K); ``contributions`` (B, K) x_j * M[c, j] for
    the explained class c = ``targets[i]``; ``heatmaps`` (B, K, H, W) Grad-CAM style maps of each
    x-feature (ReLU, raw scale); ``maps`` (B, H, W) the heatmaps (each scaled to [0, 1]) weighted by
    positive contributions, scaled to [0, 1]; ``top_images`` (K, m) training image indices per
    x-feature (-1: none).
    """

    method: str
    logits: torch.Tensor
    reconstructed: torch.Tensor
    agreement: torch.Tensor
    targets: torch.Tensor
    target_probs: torch.Tensor
    xfeatures: torch.Tensor
    contributions: torch.Tensor
    heatmaps: torch.Tensor
    maps: torch.Tensor
    top_images: torch.Tensor | None
    class_names: list
    params: dict
    provenance: dict
    extras: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.logits.shape[0])


def explain_xnn(
    xnn: XNN,
    model: nn.Module,
    images: torch.Tensor,
    target: Target = None,
    *,
    batch_size: int = 32,
    progress: bool = False,
) -> XNNExplanation:
    """x-features, their contributions to class ``target`` (None: the model's prediction) and their
    heatmaps for ``images`` (B, 3, H, W) in [0, 1]."""
    layer = xnn.read_layer()
    xnn.eval()
    device = xnn.mean.device
    hw = tuple(images.shape[-2:])
    M = xnn.concept_matrix().detach()
    parts: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("logits", "rec", "targets", "probs", "x", "contrib", "heat")
    }
    for start in tqdm(
        range(0, images.shape[0], batch_size), desc="XNN", disable=not progress, unit="batch"
    ):
        stop = min(start + batch_size, images.shape[0])
        batch = images[start:stop].to(device)
        if xnn.map_layer is not None:
            (raw_map, raw_act), logits = read_layers(
                model, batch, [xnn.map_layer, layer], grad_from=0, stop=False
            )
            with torch.enable_grad():
                f = activation_vector(raw_act, layer, hw)
                pre = xnn.encode_pre(f)
                heat = _gradcam_maps(pre, raw_map, xnn.map_layer, hw)
        else:
            f, logits = read_activations(model, layer, batch)
            pre = xnn.encode_pre(f)
            heat = torch.zeros(batch.shape[0], xnn.num_features, *hw, device=device)
        with torch.no_grad():
            x = torch.relu(pre.detach())
            rec = xnn.predict(x)
            idx = explained_classes(target, start, stop, logits.detach(), "XNN")
            parts["logits"].append(logits.detach())
            parts["rec"].append(rec)
            parts["targets"].append(idx)
            parts["probs"].append(logits.detach().softmax(1).gather(1, idx[:, None]).squeeze(1))
            parts["x"].append(x)
            parts["contrib"].append(x * M[idx])
            parts["heat"].append(heat.detach())
    cat = {k: torch.cat(v).cpu() for k, v in parts.items()}
    weights = cat["contrib"].clamp_min(0)
    combined = (weights[..., None, None] * minmax(cat["heat"])).sum(dim=1)
    return XNNExplanation(
        method="xnn",
        logits=cat["logits"],
        reconstructed=cat["rec"],
        agreement=cat["rec"].argmax(1) == cat["logits"].argmax(1),
        targets=cat["targets"],
        target_probs=cat["probs"],
        xfeatures=cat["x"],
        contributions=cat["contrib"],
        heatmaps=cat["heat"],
        maps=minmax(combined),
        top_images=xnn.top_images,
        class_names=list(xnn.class_names),
        params={
            "layer": str(layer),
            "map_layer": str(xnn.map_layer) if xnn.map_layer else None,
            "faithful": xnn.faithful,
            "num_features": xnn.num_features,
        },
        provenance=plain(provenance(xnn_info=xnn.info, xnn_provenance=xnn.provenance)),
    )


def _gradcam_maps(
    pre: torch.Tensor, raw_map: torch.Tensor, spec: LayerSpec, hw: tuple[int, int]
) -> torch.Tensor:
    """Grad-CAM of each x-feature pre-activation (B, K) on the tapped map -> (B, K, H, W)."""
    amap = to_feature_map(raw_map, spec, hw)
    maps = []
    for j in range(pre.shape[1]):
        (grad,) = torch.autograd.grad(
            pre[:, j].sum(), raw_map, retain_graph=True, allow_unused=True
        )
        if grad is None:
            raise NetrevealError(
                f"the x-features do not depend on map layer {spec}; choose a layer below {spec}"
            )
        g = to_feature_map(grad, spec, hw)
        alpha = g.mean(dim=(2, 3), keepdim=True)
        maps.append((alpha * amap).sum(dim=1).clamp_min(0))
    return upsample(torch.stack(maps, dim=1).detach(), hw)


@torch.no_grad()
def faithfulness(xnn: XNN, model: nn.Module, data, *, batch_size: int = 64) -> dict[str, float]:
    """Agreement of the reconstructed prediction's argmax with the model's, and both accuracies."""
    layer = xnn.read_layer()
    agree = hits = model_hits = total = 0
    for images, labels in batches(data, batch_size):
        f, logits = read_activations(model, layer, images.to(xnn.mean.device))
        _, y_hat = xnn(f)
        pred, orig = y_hat.argmax(1).cpu(), logits.argmax(1).cpu()
        agree += int((pred == orig).sum())
        hits += int((pred == labels).sum())
        model_hits += int((orig == labels).sum())
        total += len(labels)
    return {
        "faithfulness": agree / total,
        "xnn_accuracy": hits / total,
        "model_accuracy": model_hits / total,
    }
