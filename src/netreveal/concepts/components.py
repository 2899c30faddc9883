"""Every shown component of an InfoDisent or XNN explanation as a map someone could name."""

from __future__ import annotations

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
    out: list[dict] = []
    if isinstance(explanation, InfoDisentExplanation):
        maps = minmax(explanation.heatmaps.float())
        for i in range(len(explanation)):
            for t in range(explanation.components.shape[1]):
                out.append(
                    {
                        "method": "infodisent",
                        "image_index": i,
                        "target": int(explanation.targets[i]),
                        "component": int(explanation.components[i, t]),
                        "side": int(explanation.sides[i, t]),
                        "box": [int(v) for v in explanation.boxes[i, t]],
                        "heatmap": maps[i, t],
                        "weight": float(explanation.contributions[i, t]),
                    }
                )
        return out
    if isinstance(explanation, XNNExplanation):
        maps = minmax(explanation.heatmaps.float())
        for i in range(len(explanation)):
            for j in range(explanation.xfeatures.shape[1]):
                out.append(
                    {
                        "method": "xnn",
                        "image_index": i,
                        "target": int(explanation.targets[i]),
                        "component": j,
                        "heatmap": maps[i, j],
                        "weight": float(explanation.contributions[i, j]),
                    }
                )
        return out
    raise NetrevealError(f"no component maps in a {type(explanation).__name__}")
