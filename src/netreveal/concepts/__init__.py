"""Concept models on a frozen backbone: InfoDisent (orthogonal components, signed pooling,
non-negative classifier, prototypes) and XNN (a few x-features that reconstruct the prediction)."""

# Names resolve lazily so that importing a submodule (e.g. the CLI's parser) does not import torch.
from importlib import import_module

_HOMES = {
    "FeatureExtractor": "backbone",
    "ImageFolderData": "training",
    "InfoDisentExplanation": "infodisent",
    "InfoDisentHead": "infodisent",
    "InfoDisentRecord": "infodisent",
    "LayerSpec": "layer_reading",
    "Prototypes": "prototypes",
    "XNN": "xnn",
    "XNNExplanation": "xnn",
    "XNNRecord": "xnn",
    "accuracy": "infodisent",
    "explain_infodisent": "infodisent",
    "explain_xnn": "xnn",
    "faithfulness": "xnn",
    "find_classifier": "layer_reading",
    "find_feature_layer": "layer_reading",
    "load_head": "infodisent",
    "load_xnn": "xnn",
    "mine_prototypes": "infodisent",
    "part_purity": "prototypes",
    "pull_away": "xnn",
    "purity_vs_channels": "infodisent",
    "save_head": "infodisent",
    "save_xnn": "xnn",
    "signed_pool": "infodisent",
    "split_dataset": "training",
    "train_infodisent": "infodisent",
    "train_xnn": "xnn",
}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(f"netreveal.concepts.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'netreveal.concepts' has no attribute {name!r}")


__all__ = [
    "XNN",
    "FeatureExtractor",
    "ImageFolderData",
    "InfoDisentExplanation",
    "InfoDisentHead",
    "InfoDisentRecord",
    "LayerSpec",
    "Prototypes",
    "XNNExplanation",
    "XNNRecord",
    "accuracy",
    "explain_infodisent",
    "explain_xnn",
    "faithfulness",
    "find_classifier",
    "find_feature_layer",
    "load_head",
    "load_xnn",
    "mine_prototypes",
    "part_purity",
    "pull_away",
    "purity_vs_channels",
    "save_head",
    "save_xnn",
    "signed_pool",
    "split_dataset",
    "train_infodisent",
    "train_xnn",
]
