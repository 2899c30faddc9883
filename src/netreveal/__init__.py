"""netreveal: explain image classifiers from pixels up to named concepts, with people in the loop.

``netreveal.show(image, heatmap)`` gives a heatmap over its image as a PIL image and
``netreveal.figure(result, images)`` any result as a matplotlib figure (:mod:`netreveal.viewing`;
imported on first use, so ``import netreveal`` stays light).
"""

from typing import Any

from netreveal.errors import NetrevealError

__version__ = "0.1.0"

__all__ = ["NetrevealError", "__version__", "figure", "show"]


def __getattr__(name: str) -> Any:
    if name in ("show", "figure"):
        from netreveal import viewing

        return getattr(viewing, name)
    raise AttributeError(f"module 'netreveal' has no attribute {name!r}")
