"""INV: layer-wise explanations of the whole feature extraction of an image classifier.

For each chosen layer (default ``auto:9``: the last nine conv layers of a plain CNN, residual
blocks of a ResNet, transformer blocks of a transformer) the feature maps are weighted by a guided
Grad-CAM variant, weak maps dropped, the rest clustered (PCA, t-SNE, Ward with the k of best
silhouette) and each cluster drawn as a weighted mean map with its weight in percent.

    from netreveal.inv import explain_inv, InvConfig
    result = explain_inv(model, images, "last:9")
    for layer in result[0].layers:
        print(layer.name, [(round(c.weight, 1), len(c.channels)) for c in layer.clusters])
"""

from netreveal.inv.cluster import silhouettes, valid_ks, ward_labels
from netreveal.inv.config import InvConfig
from netreveal.inv.maps import cluster_maps, combined_map
from netreveal.inv.pipeline import STAGES, explain_inv, problem_seed
from netreveal.inv.reduce import REDUCERS, normalised_points, pca_scores
from netreveal.inv.result import InvCluster, InvImage, InvLayer, InvResult, cluster_number
from netreveal.inv.tsne import TsneConfig, effective_perplexity, embed_sets, exact_tsne, joint_probabilities
from netreveal.inv.tsne_reference import reference_perplexity, reference_tsne
from netreveal.inv.weights import (
    LIGHT_CLUSTER_RULE,
    light_cluster_floor,
    map_weights,
    prune_threshold,
    resolve_threshold,
)

__all__ = [
    "LIGHT_CLUSTER_RULE",
    "REDUCERS",
    "STAGES",
    "InvCluster",
    "InvConfig",
    "InvImage",
    "InvLayer",
    "InvResult",
    "TsneConfig",
    "cluster_maps",
    "cluster_number",
    "combined_map",
    "effective_perplexity",
    "embed_sets",
    "exact_tsne",
    "explain_inv",
    "joint_probabilities",
    "light_cluster_floor",
    "map_weights",
    "normalised_points",
    "pca_scores",
    "problem_seed",
    "reference_perplexity",
    "reference_tsne",
    "prune_threshold",
    "resolve_threshold",
    "silhouettes",
    "valid_ks",
    "ward_labels",
]
