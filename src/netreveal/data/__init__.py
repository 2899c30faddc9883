"""Data: reading image folders (``netreveal.data.images``) and the synthetic parts world."""

from netreveal.data.partsworld import (
    CLASSES,
    PART_TYPES,
    PartsWorld,
    PartType,
    Sample,
    class_names,
    load_ground_truth,
)

__all__ = ["CLASSES", "PART_TYPES", "PartType", "PartsWorld", "Sample", "class_names", "load_ground_truth"]
