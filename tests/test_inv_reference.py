"""INV's reference t-SNE setting against scikit-learn called as the paper's notebook calls it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.manifold import TSNE
from test_inv import Planted, pattern_images

from netreveal.errors import NetrevealError
from netreveal.inv import (
    InvConfig,
    TsneConfig,
    embed_sets,
    explain_inv,
    normalised_points,
    pca_scores,
    problem_seed,
    reference_perplexity,
)
from netreveal.methods import METHODS
from netreveal.model.adapter import ModelAdapter
from netreveal.model.hooks import capture

REFERENCE = InvConfig(tsne=TsneConfig(method="reference"))


def notebook_tsne(features: np.ndarray, seed: int) -> np.ndarray:
    """The notebook's call, ``TSNE(n_components=2, random_state=seed)`` (perplexity 30 by default),
    with the reference setting's perplexity where scikit-learn refuses 30 (n <= 30)."""
    n = features.shape[0]
    if n > 30:
        return TSNE(n_components=2, random_state=seed).fit_transform(features)
    return TSNE(n_components=2, random_state=seed, perplexity=2 * n / 3).fit_transform(features)


def test_reference_perplexity_is_the_notebooks():
    assert reference_perplexity(300) == 30.0 and reference_perplexity(31) == 30.0
    assert reference_perplexity(30) == pytest.approx(20.0) and reference_perplexity(6) == pytest.approx(4.0)


@pytest.mark.parametrize("channels", [12, 36])  # perplexity 8 (2n/3) and 30 (the notebook's)
def test_reference_setting_equals_scikit_learn_on_the_same_features(channels):
    model, x, seed = Planted(channels=channels, mix=0.3, seed=1), pattern_images(2), 5
    result = explain_inv(model, x, "conv", config=REFERENCE, seed=seed)
    cap = capture(model, x, ["conv"])
    maps = cap.activations["conv"].clamp_min(0)
    for i, image in enumerate(result.images):
        layer = image.layers[0]
        assert layer.n_kept == channels
        features = pca_scores(normalised_points(maps[i, layer.kept]), 50).numpy()
        expected = notebook_tsne(features, problem_seed(seed, i, 0))
        np.testing.assert_array_equal(layer.embedding.numpy(), expected.astype(np.float32))
    tsne = result.params["tsne"]
    assert tsne["method"] == "reference" and tsne["sklearn"]["method"] == "barnes_hut"
    assert tsne["sklearn"]["angle"] == 0.5
    assert result.params["tsne_kernel"] is None


def test_embed_sets_picks_the_method():
    gen = torch.Generator().manual_seed(0)
    sets = [torch.randn(40, 8, generator=gen), torch.randn(9, 8, generator=gen), torch.randn(1, 8)]
    ours = embed_sets(sets, TsneConfig(method="reference"), [3, 4, 5])
    for s, e, seed in zip(sets[:2], ours, (3, 4)):
        np.testing.assert_array_equal(e.numpy(), notebook_tsne(s.numpy(), seed).astype(np.float32))
    assert ours[2].shape == (1, 2) and not bool(ours[2].any())
    exact = embed_sets(sets, TsneConfig(kernel="eager", max_iter=250), [3, 4, 5])
    assert not torch.equal(exact[0], ours[0])
    with pytest.raises(NetrevealError, match="unknown t-SNE method 'fast'"):
        embed_sets(sets, TsneConfig(method="fast"), [3, 4, 5])


def test_the_inv_method_takes_the_setting():
    model, x = Planted(channels=12, mix=0.3, seed=1), pattern_images(1)
    method = METHODS["inv"]
    adapter = ModelAdapter(model, "planted", 16, ["a", "b"])
    assert method.options(layers="conv").inv_tsne == "exact"
    result = method.run(adapter, x, torch.tensor([0]), method.options(layers="conv", inv_tsne="reference",
                                                                       progress=False))
    assert result.params["tsne"]["method"] == "reference"
    direct = explain_inv(model, x, "conv", torch.tensor([0]), config=REFERENCE)
    assert torch.equal(result[0].layers[0].embedding, direct[0].layers[0].embedding)
    with pytest.raises(NetrevealError, match="--inv-tsne must be one of exact, reference"):
        method.options(inv_tsne="fast")
