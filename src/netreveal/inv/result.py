"""Result types of INV: per image, per layer, the weighted cluster maps (saveable with
``netreveal.results.save`` / ``load``)."""

from __future__ import annotations

import dataclasses
import math

import torch

from netreveal.errors import NetrevealError
from netreveal.formatting import cluster_number  # noqa: F401  (how views number clusters)
from netreveal.results import register


@register
@dataclasses.dataclass
class InvCluster:
    """One cluster of feature maps of a layer.

    ``map`` (H, W) in [0, 1] at the input size: sum_k w_k * upsample(A^k) / sum_k w_k over the
    member maps, min-max normalised (a constant map becomes zeros). ``weight`` is the sum of the
    members' percent weights; ``channels`` are the members' channel indices in the layer.
    """

    map: torch.Tensor
    weight: float
    channels: list[int]


@register
@dataclasses.dataclass
class InvLayer:
    """The explanation of one layer for one image.

    - ``n_maps``: channels of the layer; ``n_kept``: maps above the weak-map ``threshold``
      (percent).
    - ``k``: number of clusters chosen (best silhouette ``silhouette`` over the k range); 1 when too
      few maps are kept for the range or the kept maps are all alike (``silhouette`` is NaN then);
      0 when no map is kept (no positive guided gradient: the layer is *empty*).
    - ``clusters``: the clusters that passed the cluster-weight filter, heaviest first.
    - ``combined`` (H, W) in [0, 1]: the clusters' maps summed with their weights, normalised (zeros
      for an empty layer).
    - ``weights`` (n_maps,): every map's percent weight (sums to 100 unless the layer is empty);
      ``kept`` (n_kept,): channel of each kept map; ``embedding`` (n_kept, 2): the 2-D points that
      were clustered (t-SNE; the first two PCA scores for the other reducers; zeros without
      clustering); ``labels`` (n_kept,): each kept map's cluster, clusters numbered by decreasing
      weight, so label i < len(clusters) is ``clusters[i]`` and larger labels were filtered out;
      ``cluster_weights`` (k,): the weight of every cluster before filtering.
    """

    name: str
    n_maps: int
    n_kept: int
    k: int
    silhouette: float
    clusters: list[InvCluster]
    combined: torch.Tensor
    threshold: float = 0.0
    weights: torch.Tensor | None = None
    kept: torch.Tensor | None = None
    embedding: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    cluster_weights: torch.Tensor | None = None

    @property
    def empty(self) -> bool:
        """True when no map of the layer was kept (and so there is no cluster)."""
        return self.n_kept == 0

    @property
    def has_silhouette(self) -> bool:
        """True when k was chosen by silhouette (not a single-cluster or empty layer)."""
        return not math.isnan(self.silhouette)

    @property
    def dropped_weights(self) -> list[float]:
        """The weights (percent) of the light clusters left out of ``clusters``, heaviest first
        (empty when none was dropped or the result does not record them)."""
        if self.cluster_weights is None:
            return []
        return [float(w) for w in self.cluster_weights[len(self.clusters):]]


@register
@dataclasses.dataclass
class InvImage:
    """INV explanation of one image: the explained class, the prediction, one entry per layer."""

    index: int
    target: int
    predicted: int
    target_prob: float
    layers: list[InvLayer]

    def layer(self, name: str) -> InvLayer:
        """The entry of layer ``name``."""
        for entry in self.layers:
            if entry.name == name:
                return entry
        raise NetrevealError(
            f"layer {name!r} is not in this result; layers: "
            f"{', '.join(e.name for e in self.layers)}"
        )


@register
@dataclasses.dataclass
class InvResult:
    """INV explanations of a batch of images.

    ``params`` holds every setting that produced the result (and which t-SNE kernel ran),
    ``stats`` the seconds spent per stage (forward_backward, weights, pca, tsne, clustering, maps,
    summed over batches; tsne_kernel: readying the t-SNE step once).
    """

    images: list[InvImage]
    layers: list[str]
    params: dict
    seed: int
    provenance: dict
    input_size: list[int] = dataclasses.field(default_factory=list)
    stats: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> InvImage:
        return self.images[index]

    @property
    def maps(self) -> torch.Tensor:
        """The deepest layer's combined map per image (B, H, W): INV's one-map summary for scoring."""
        return torch.stack([img.layers[-1].combined.float() for img in self.images])

    @property
    def targets(self) -> torch.Tensor:
        return torch.tensor([img.target for img in self.images], dtype=torch.long)

    @property
    def target_probs(self) -> torch.Tensor:
        return torch.tensor([img.target_prob for img in self.images])
