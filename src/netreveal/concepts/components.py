"""Every shown component of an InfoDisent or XNN explanation as a map someone could name."""

from __future__ import annotations

from collections.abc import Callable

from netreveal.concepts.infodisent import InfoDisentExplanation
from netreveal.concepts.xnn import XNNExplanation
from netreveal.errors import NetrevealError
from netreveal.imaging import minmax


def component_maps(explanation: InfoDisentExplanation | XNNExplanation) -> list[dict]:
    """One dict per (image, component): ``image_index``, ``component`` (InfoDisent component k or XNN
    x-feature j), ``heatmap`` (H, W) scaled to [0, 1], ``weight`` (its contribution to the
    explained class), plus ``method``, ``target`` and, for InfoDisent, ``side`` (0: the component
    fired positively, 1: negatively) and ``box`` (x0, y0, x1, y1) of its strongest cell.
    """
    if isinstance(explanation, InfoDisentExplanation):
        return _rows(
            "infodisent",
            explanation,
            explanation.components.shape[1],
            lambda i, t: {
                "component": int(explanation.components[i, t]),
                "side": int(explanation.sides[i, t]),
                "box": [int(v) for v in explanation.boxes[i, t]],
            },
        )
    if isinstance(explanation, XNNExplanation):
        return _rows("xnn", explanation, explanation.xfeatures.shape[1], lambda i, j: {"component": j})
    raise NetrevealError(f"no component maps in a {type(explanation).__name__}")


def _rows(
    method: str,
    explanation: InfoDisentExplanation | XNNExplanation,
    shown: int,
    identity: Callable[[int, int], dict],
) -> list[dict]:
    """One dict per image i and shown component t: ``identity(i, t)`` names the component."""
    maps = minmax(explanation.heatmaps.float())
    return [
        {
            "method": method,
            "image_index": i,
            "target": int(explanation.targets[i]),
            **identity(i, t),
            "heatmap": maps[i, t],
            "weight": float(explanation.contributions[i, t]),
        }
        for i in range(len(explanation))
        for t in range(shown)
    ]
