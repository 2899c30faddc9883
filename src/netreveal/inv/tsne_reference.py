"""The INV reference's t-SNE: scikit-learn's Barnes-Hut ``TSNE`` with the paper notebook's parameters.

The notebook embeds each layer's PCA scores with ``TSNE(n_components=2, random_state=seed)``, one
point set at a time: scikit-learn's defaults, i.e. the Barnes-Hut approximation (angle 0.5),
perplexity 30, early exaggeration 12, learning rate "auto", 1000 iterations and a PCA
initialisation. Its perplexity is therefore always 30 (a line computing ``2/3 * n`` is never passed
on). scikit-learn refuses a perplexity that is not below the number of points, so on a layer
keeping 30 maps or fewer the notebook stops with an error; there the reference setting uses that
unused ``2 n / 3`` instead (:func:`reference_perplexity`).

Each set gets its own ``random_state`` (the seed netreveal derives for the image and layer); it
reaches only the PCA of the initialisation, which scikit-learn randomises for large sets alone.
Measured on the demo, results repeat bit for bit, also across OpenMP thread counts (see
docs/methods/inv.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

NOTEBOOK_PERPLEXITY = 30.0
# what the notebook passes to TSNE (n_components, random_state) and the scikit-learn defaults it
# relies on, spelled out so a change of defaults in a later scikit-learn cannot change the setting
NOTEBOOK_TSNE = {"n_components": 2, "method": "barnes_hut", "angle": 0.5, "early_exaggeration": 12.0,
                 "learning_rate": "auto", "max_iter": 1000, "init": "pca", "metric": "euclidean"}


def reference_perplexity(n: int) -> float:
    """The notebook's perplexity for a set of ``n`` points: 30, or ``2 n / 3`` when scikit-learn
    would refuse 30 (``n <= 30``)."""
    return NOTEBOOK_PERPLEXITY if n > NOTEBOOK_PERPLEXITY else 2.0 * n / 3.0


def reference_params() -> dict:
    """The reference setting as saveable plain values."""
    import sklearn

    return {"method": "reference", "implementation": f"scikit-learn {sklearn.__version__} TSNE, one set at a time",
            "sklearn": {**NOTEBOOK_TSNE, "perplexity": "30 (2n/3 for sets of n <= 30 points)",
                        "random_state": "per image and layer"}}


def reference_tsne(points: Sequence[torch.Tensor], seeds: Sequence[int]) -> list[torch.Tensor]:
    """Embed each point set (n_i, d_i) in 2-D with scikit-learn's Barnes-Hut t-SNE, one set at a
    time with the notebook's parameters and ``random_state=seeds[i]``. Returns float32 (n_i, 2)
    tensors on the sets' devices; sets of fewer than 2 points are returned as zeros."""
    from sklearn.manifold import TSNE

    out = []
    for p, seed in zip(points, seeds, strict=True):
        n = int(p.shape[0])
        if n < 2:
            out.append(torch.zeros(n, 2, dtype=torch.float32, device=p.device))
            continue
        tsne = TSNE(perplexity=reference_perplexity(n), random_state=int(seed), **NOTEBOOK_TSNE)
        embedded = tsne.fit_transform(p.detach().cpu().numpy())
        out.append(torch.from_numpy(embedded).to(device=p.device, dtype=torch.float32))
    return out
