"""netreveal: explain image classifiers from pixels up to named concepts, with people in the loop."""

from netreveal.errors import NetrevealError

__version__ = "0.1.0"

__all__ = ["NetrevealError", "__version__"]
