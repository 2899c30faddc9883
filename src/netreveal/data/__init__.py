"""Data: reading image folders (``netreveal.data.images``), batches of inputs with their ground
truth (``inputs``, ``groundtruth``) and the synthetic parts world (``partsworld``)."""

# Names resolve lazily, so that reading an image folder does not load the parts world.
from importlib import import_module

_PARTSWORLD = ("CLASSES", "PART_TYPES", "SPLITS", "PartType", "PartsWorld", "Sample", "class_names",
               "load_ground_truth", "load_metadata", "part_names", "synonym_lookup")
_HOMES = dict.fromkeys(_PARTSWORLD, "partsworld")


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(f"netreveal.data.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'netreveal.data' has no attribute {name!r}")


__all__ = ["CLASSES", "PART_TYPES", "SPLITS", "PartType", "PartsWorld", "Sample", "class_names",
           "load_ground_truth", "load_metadata", "part_names", "synonym_lookup"]
