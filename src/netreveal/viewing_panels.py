"""The panels :func:`netreveal.figure` draws for each kind of result, one matplotlib axis each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from netreveal.errors import NetrevealError
from netreveal.viewing import colour, heatmap_array, show


@dataclass
class Panel:
    """One axis of a figure: its title and how to draw into the axis."""

    title: str
    draw: Callable[[Any], None]


def panels_of(result: Any, images: list[np.ndarray] | None) -> list[Panel]:
    """The panels of ``result`` (``images``: one (H, W, 3) picture per explained image, or None)."""
    from netreveal.concepts.tcav import TcavResult
    from netreveal.inv.result import InvResult
    from netreveal.metrics.perturbation import PerturbationScores
    from netreveal.sag.result import SagBatch

    if isinstance(result, InvResult):
        return _inv(result, _checked(images, len(result)))
    if isinstance(result, SagBatch):
        return _sag(result, _checked(images, len(result)))
    if isinstance(result, PerturbationScores):
        return _curves(result)
    if isinstance(result, TcavResult):
        return _tcav(result)
    maps = getattr(result, "maps", None)
    if isinstance(maps, torch.Tensor) and maps.dim() == 3:
        return _heatmaps(result, _checked(images, int(maps.shape[0])))
    raise NetrevealError(f"netreveal.figure cannot draw a {type(result).__name__}")


def _checked(images: list[np.ndarray] | None, count: int) -> list[np.ndarray] | None:
    if images is not None and len(images) != count:
        raise NetrevealError(f"the result explains {count} image(s) but {len(images)} were given")
    return images


def picture(array: np.ndarray) -> Callable[[Any], None]:
    """Draw an (H, W, 3) uint8 picture without axes."""

    def draw(ax) -> None:
        ax.imshow(array)
        ax.set_axis_off()

    return draw


def _map_picture(heatmap: torch.Tensor, image: np.ndarray | None) -> np.ndarray:
    return np.asarray(show(image, heatmap)) if image is not None else colour(heatmap_array(heatmap))


def _class_name(result: Any, index: int) -> str:
    names = getattr(result, "class_names", None)
    return str(names[index]) if names and 0 <= index < len(names) else f"class {index}"


def _heatmaps(result: Any, images: list[np.ndarray] | None) -> list[Panel]:
    method = getattr(result, "method", type(result).__name__)
    targets, probs = result.targets, result.target_probs
    return [
        Panel(f"{i}: {method} · {_class_name(result, int(targets[i]))} ({float(probs[i]):.2f})",
              picture(_map_picture(result.maps[i], None if images is None else images[i])))
        for i in range(int(result.maps.shape[0]))
    ]


def _inv(result: Any, images: list[np.ndarray] | None) -> list[Panel]:
    panels = []
    for i, explained in enumerate(result.images):
        for layer in explained.layers:
            note = "no map kept" if layer.empty else f"{len(layer.clusters)} cluster(s)"
            panels.append(Panel(f"{i}: {layer.name} · {note}",
                                picture(_map_picture(layer.combined.float(), None if images is None else images[i]))))
    return panels


def _sag(result: Any, images: list[np.ndarray] | None) -> list[Panel]:
    from netreveal.sag.graph import root_sets_text

    panels = []
    for i, graph in enumerate(result.graphs):
        height, width = graph.image_size
        base = images[i] if images is not None else np.full((height, width, 3), 200, dtype=np.uint8)
        for index in graph.shown:
            root = graph.roots[index]
            keep = np.zeros((graph.grid, graph.grid), dtype=bool)
            for patch in root:
                keep[patch // graph.grid, patch % graph.grid] = True
            rows = np.minimum(np.arange(base.shape[0]) * graph.grid // base.shape[0], graph.grid - 1)
            cols = np.minimum(np.arange(base.shape[1]) * graph.grid // base.shape[1], graph.grid - 1)
            inside = keep[rows[:, None], cols[None, :]]
            shown = np.where(inside[..., None], base, (base * 0.25).astype(np.uint8))
            panels.append(Panel(f"{i}: {root_sets_text([root])} · p {graph.root_probs[index]:.2f}", picture(shown)))
    return panels


def _curves(scores: Any) -> list[Panel]:
    fractions = scores.fractions.float().numpy()
    panels = []
    for i in range(len(scores)):

        def draw(ax, i=i) -> None:
            for name, curve in (("deletion", scores.deletion_curve), ("insertion", scores.insertion_curve)):
                if curve is not None:
                    ax.plot(fractions, curve[i].float().numpy(), label=name)
            ax.set_xlabel("share of the map perturbed")
            ax.set_ylabel("class probability")
            ax.set_ylim(0, 1)
            ax.legend(fontsize=8)

        parts = [f"{name} AUC {float(auc[i]):.3f}" for name, auc in (("del.", scores.deletion_auc),
                                                                      ("ins.", scores.insertion_auc))
                 if auc is not None]
        panels.append(Panel(f"{i}: " + " · ".join(parts), draw))
    return panels


def _tcav(result: Any) -> list[Panel]:
    names = [str(result.class_names[k]) if result.class_names else f"class {c}" for k, c in enumerate(result.classes)]
    panels = []
    for layer_index, layer in enumerate(result.layers):

        def draw(ax, layer_index=layer_index) -> None:
            x = np.arange(len(names))
            ax.bar(x - 0.2, result.scores[layer_index].float().mean(dim=-1).numpy(), 0.4, label="concept")
            ax.bar(x + 0.2, result.random_scores[layer_index].float().mean(dim=-1).numpy(), 0.4, label="random")
            ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
            ax.set_ylim(0, 1)
            ax.set_ylabel("TCAV score")
            ax.legend(fontsize=8)

        panels.append(Panel(f"{result.concept} @ {layer}", draw))
    return panels


__all__ = ["Panel", "panels_of", "picture"]
