"""Settings of an INV explanation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from netreveal.errors import NetrevealError
from netreveal.inv.reduce import REDUCERS
from netreveal.inv.tsne import TsneConfig
from netreveal.inv.tsne_reference import reference_params
from netreveal.inv.weights import Threshold, describe_threshold
from netreveal.targets import SCORES

MAP_DTYPES = ("float16", "float32")


@dataclass(frozen=True)
class InvConfig:
    """Every setting of :func:`netreveal.inv.explain_inv`; the defaults follow the INV reference.

    - ``threshold``: weak-map threshold in percent; None = :func:`~netreveal.inv.prune_threshold`
      (by layer width), a number, or a function of the layer's number of maps.
    - ``reducer``: what the kept maps are clustered on: ``tsne`` (PCA then 2-D t-SNE, default),
      ``pca`` (the PCA scores) or ``none`` (the normalised maps themselves).
    - ``pca_components``: PCA keeps min(pca_components, n_kept, map_size) components.
    - ``k_range``: inclusive range of cluster counts tried with Ward; the best silhouette wins.
    - ``relu_maps``: cluster and draw the maps after a ReLU (the reference network's conv layers
      include their activation; tapping a torch ``Conv2d`` gives the pre-activation). The weights do
      not depend on it.
    - ``score``: the class score Y differentiated: ``logit`` (default), ``prob`` or ``log_prob``.
    - ``tsne``: t-SNE settings (scikit-learn's defaults; ``max_iter`` can be lowered for speed).
      ``TsneConfig(method="reference")`` runs the INV notebook's t-SNE instead (scikit-learn's
      Barnes-Hut with its defaults; see :mod:`netreveal.inv.tsne_reference`).
    - ``map_dtype``: dtype of the stored maps (``float16`` halves the file size; values stay in
      [0, 1]).
    """

    threshold: Threshold = None
    reducer: str = "tsne"
    pca_components: int = 50
    k_range: tuple[int, int] = (3, 8)
    relu_maps: bool = True
    score: str = "logit"
    tsne: TsneConfig = field(default_factory=TsneConfig)
    map_dtype: str = "float16"

    def validate(self) -> None:
        """Raise :class:`NetrevealError` naming the first setting out of its domain."""
        if self.reducer not in REDUCERS:
            raise NetrevealError(
                f"unknown reducer {self.reducer!r}; choose one of {', '.join(REDUCERS)}"
            )
        lo, hi = self.k_range
        if not (isinstance(lo, int) and isinstance(hi, int)) or lo < 2 or hi < lo:
            raise NetrevealError(
                f"k_range must be two integers 2 <= lo <= hi, got {self.k_range!r}"
            )
        if self.pca_components < 2:
            raise NetrevealError(f"pca_components must be at least 2, got {self.pca_components}")
        if self.score not in SCORES:
            raise NetrevealError(f"unknown score {self.score!r}; choose one of {', '.join(SCORES)}")
        if self.map_dtype not in MAP_DTYPES:
            raise NetrevealError(
                f"map_dtype must be one of {', '.join(MAP_DTYPES)}, got {self.map_dtype!r}"
            )
        self.tsne.validate()

    def to_params(self) -> dict:
        """All settings as saveable plain values."""
        if self.tsne.method == "reference":
            tsne = reference_params()
        else:
            tsne = dataclasses.asdict(self.tsne)
            tsne["momentum"] = list(tsne["momentum"])
        return {
            "threshold": describe_threshold(self.threshold),
            "reducer": self.reducer,
            "pca_components": self.pca_components,
            "k_range": list(self.k_range),
            "relu_maps": self.relu_maps,
            "score": self.score,
            "tsne": tsne,
            "map_dtype": self.map_dtype,
            "cluster_filter": "keep w_C >= max(max_w / 3, mean_w / 2)",
        }
