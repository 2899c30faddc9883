"""Data: reading image folders (``netreveal.data.images``) and the synthetic parts world."""

from netreveal.data.partsworld import (
    CLASSES,
    PART_TYPES,
    SPLITS,
    PartsWorld,
    PartType,
    Sample,
    class_names,
    load_ground_truth,
    load_metadata,
    part_names,
    synonym_lookup,
)

__all__ = [
    "CLASSES",
    "PART_TYPES",
    "SPLITS",
    "PartType",
    "PartsWorld",
    "Sample",
    "class_names",
    "load_ground_truth",
    "load_metadata",
    "part_names",
    "synonym_lookup",
]
