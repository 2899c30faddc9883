"""Concept models on a frozen backbone: InfoDisent (orthogonal components, signed pooling,
non-negative classifier, prototypes) and XNN (a few x-features that reconstruct the prediction)."""

from netreveal.concepts.backbone import (
    FeatureExtractor,
    LayerSpec,
    find_classifier,
    find_feature_layer,
)
from netreveal.concepts.infodisent import (
    InfoDisentExplanation,
    InfoDisentHead,
    InfoDisentRecord,
    accuracy,
    explain_infodisent,
    load_head,
    mine_prototypes,
    purity_vs_channels,
    save_head,
    signed_pool,
    train_infodisent,
)
from netreveal.concepts.prototypes import Prototypes, part_purity
from netreveal.concepts.training import ImageFolderData, split_dataset
from netreveal.concepts.xnn import (
    XNN,
    XNNExplanation,
    XNNRecord,
    explain_xnn,
    faithfulness,
    load_xnn,
    pull_away,
    save_xnn,
    train_xnn,
)

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
