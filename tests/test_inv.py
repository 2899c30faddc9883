"""INV: weights, pruning, exact t-SNE, Ward + silhouette, cluster maps, planted groups, edges."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from netreveal import results
from netreveal.errors import NetrevealError
from netreveal.imaging import minmax, upsample
from netreveal.inv import (
    InvConfig,
    InvResult,
    TsneConfig,
    effective_perplexity,
    exact_tsne,
    explain_inv,
    joint_probabilities,
    map_weights,
    prune_threshold,
    resolve_threshold,
    silhouettes,
    valid_ks,
    ward_labels,
)
from netreveal.inv.kernels import step_kernel
from netreveal.inv.tsne import pca_init, squared_distances
from netreveal.model.hooks import capture

EAGER = TsneConfig(kernel="eager")
SHORT = TsneConfig(kernel="eager", max_iter=400)  # enough for well-separated groups
GROUPS = [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]  # channel c copies pattern c % 3


def blob(size: int, cy: float, cx: float, sigma: float) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size.__float__()), torch.arange(float(size)), indexing="ij")
    return torch.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))


def pattern_images(n: int = 2, size: int = 16) -> torch.Tensor:
    """Three blobs at distinct places, one per RGB channel, on a small floor."""
    pats = torch.stack([blob(size, 3, 3, 2.0), blob(size, 12, 12, 2.0), blob(size, 3, 12, 2.0)])
    gen = torch.Generator().manual_seed(5)
    imgs = 0.05 + 0.9 * pats[None] + 0.01 * torch.rand(n, 3, size, size, generator=gen)
    return imgs.clamp(0, 1)


class Planted(nn.Module):
    """A 1x1 stride-2 conv whose channel c copies input pattern c % 3 (plus a small mix of the
    others), a ReLU, global average pooling and a fixed positive head: the score of class 0 is the
    plain sum of the channel means, so every channel gets the same positive gradient."""

    def __init__(
        self, channels: int = 12, mix: float = 0.03, head: float = 1.0, seed: int = 0, assign=None
    ):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        assign = assign if assign is not None else [c % 3 for c in range(channels)]
        self.conv = nn.Conv2d(3, channels, 1, stride=2)
        weight = mix * torch.rand(channels, 3, generator=gen)
        for c in range(channels):
            weight[c, assign[c]] = 1.0 + 0.2 * float(torch.rand(1, generator=gen))
        self.conv.weight.data.copy_(weight[:, :, None, None])
        self.conv.bias.data.zero_()
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, 2)
        self.head.weight.data.zero_()
        self.head.weight.data[0] = head
        self.head.bias.data.copy_(torch.tensor([0.0, -5.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.relu(self.conv(x))).flatten(1))


class Constant(nn.Module):
    """A conv that ignores its input (zero weights, bias 1): constant maps."""

    def __init__(self, channels: int = 6):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.conv.weight.data.zero_()
        self.conv.bias.data.fill_(1.0)
        self.head = nn.Linear(channels, 2)
        self.head.weight.data.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=(2, 3)))


def channel_sets(layer) -> set[frozenset[int]]:
    return {frozenset(c.channels) for c in layer.clusters}


def assert_same(a, b) -> None:
    """Recursive equality of results (tensors equal with dtype, NaN equals NaN)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, float):
        assert (math.isnan(a) and math.isnan(b)) or a == b
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif hasattr(a, "__dataclass_fields__"):
        assert type(a) is type(b)
        for k in a.__dataclass_fields__:
            assert_same(getattr(a, k), getattr(b, k))
    else:
        assert a == b


# --- weights and pruning -----------------------------------------------------------------------


def test_map_weights_match_definition_and_sum_to_100():
    gen = torch.Generator().manual_seed(1)
    act = torch.randn(3, 7, 5, 4, generator=gen)
    grad = torch.randn(3, 7, 5, 4, generator=gen)
    w = map_weights(act, grad)
    alpha = np.zeros((3, 7))
    for i in range(3):
        for k in range(7):
            a, g = act[i, k].numpy(), grad[i, k].numpy()
            alpha[i, k] = np.mean((a > 0) * (g > 0) * g)
    expected = 100 * alpha / alpha.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.sum(dim=1).numpy(), 100.0, rtol=1e-5)


def test_map_weights_all_zero_alpha_gives_zeros_not_nan():
    act = torch.rand(2, 4, 3, 3)
    grad = -torch.rand(2, 4, 3, 3)  # no positive gradient anywhere
    w = map_weights(act, grad)
    assert torch.equal(w, torch.zeros(2, 4))


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (63, 76.8 / 63),
        (64, 1.4),
        (127, 1.4),
        (128, 0.7),
        (255, 0.7),
        (256, 0.35),
        (511, 0.35),
        (512, 0.175),
        (1024, 0.175),
        (4, 19.2),
    ],
)
def test_prune_threshold_buckets(n, expected):
    assert prune_threshold(n) == pytest.approx(expected, rel=1e-12)


def test_threshold_overrides():
    assert resolve_threshold(None, 300) == 0.35
    assert resolve_threshold(2.5, 300) == 2.5
    assert resolve_threshold(lambda n: 50.0 / n, 100) == 0.5
    with pytest.raises(NetrevealError):
        resolve_threshold(lambda n: "x", 10)


def test_pruning_keeps_maps_strictly_above_threshold():
    model, x = Planted(channels=12, mix=0.5, seed=3), pattern_images(1)
    with torch.no_grad():  # unequal weights: scale the head per channel
        model.head.weight.data[0] = torch.linspace(0.2, 2.0, 12)
    for threshold in (None, 5.0, lambda n: 100.0 / n):
        res = explain_inv(model, x, "conv", config=InvConfig(threshold=threshold, tsne=SHORT))
        layer = res[0].layer("conv")
        thr = resolve_threshold(threshold, 12)
        assert layer.threshold == pytest.approx(thr)
        expected = torch.nonzero(layer.weights > thr).flatten()
        assert torch.equal(layer.kept, expected)
        assert layer.n_kept == expected.numel()
        assert float(layer.weights.sum()) == pytest.approx(100.0, rel=1e-5)


# --- exact t-SNE ---------------------------------------------------------------------------------


def blobs(n: int = 120, centers: int = 4, dim: int = 10, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    mu = 8.0 * torch.randn(centers, dim, generator=gen)
    labels = torch.arange(n) % centers
    return mu[labels] + torch.randn(n, dim, generator=gen), labels


def test_effective_perplexity_caps_small_sets():
    assert effective_perplexity(30.0, 300) == 30.0
    assert effective_perplexity(30.0, 91) == 30.0
    assert effective_perplexity(30.0, 31) == pytest.approx(10.0)
    assert effective_perplexity(30.0, 3) == 1.0


def test_joint_probabilities_match_scikit_learn():
    tsne_mod = pytest.importorskip("sklearn.manifold._t_sne")
    from sklearn.metrics import pairwise_distances

    x, _ = blobs(60)
    ours = joint_probabilities(squared_distances(x), 20.0).numpy()
    dist = pairwise_distances(x.numpy(), squared=True)
    theirs = squareform_full(tsne_mod._joint_probabilities(dist, 20.0, 0))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-18)
    assert ours.sum() == pytest.approx(1.0)


def squareform_full(condensed: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import squareform

    return squareform(condensed)


def test_first_iterations_follow_scikit_learn_gradient_descent():
    """Same P, same init, same update rule: the first steps agree to float32 precision (later,
    both implementations amplify rounding differences, as t-SNE does)."""
    tsne_mod = pytest.importorskip("sklearn.manifold._t_sne")
    from sklearn.metrics import pairwise_distances

    x, _ = blobs(100)  # n > 3 * perplexity + 1: the perplexity is not capped
    n = x.shape[0]
    dist = pairwise_distances(x.numpy(), squared=True)
    p = tsne_mod._joint_probabilities(dist, 30.0, 0)
    init = pca_init(x).numpy()
    for iters in (1, 2, 3):
        params, _, _ = tsne_mod._gradient_descent(
            tsne_mod._kl_divergence,
            init.ravel().copy(),
            it=0,
            max_iter=iters,
            n_iter_check=50,
            n_iter_without_progress=250,
            momentum=0.5,
            learning_rate=50.0,
            min_gain=0.01,
            min_grad_norm=1e-7,
            args=[p * 12.0, 1, n, 2],
            kwargs={"skip_num_points": 0},
        )
        (ours,) = exact_tsne([x], TsneConfig(kernel="eager", max_iter=iters))
        scale = float(np.abs(params).max())
        np.testing.assert_allclose(ours.numpy(), params.reshape(n, 2), rtol=0, atol=1e-4 * scale)


def test_tsne_quality_comparable_to_scikit_learn():
    from sklearn.manifold import TSNE, trustworthiness
    from sklearn.metrics import adjusted_rand_score

    x, labels = blobs(120)
    (ours,) = exact_tsne([x])  # default settings
    theirs = TSNE(2, method="exact", random_state=0).fit_transform(x.numpy())
    t_ours = trustworthiness(x.numpy(), ours.numpy(), n_neighbors=5)
    t_theirs = trustworthiness(x.numpy(), theirs, n_neighbors=5)
    assert t_ours >= t_theirs - 0.02
    # well-separated blobs stay separated: Ward on the embedding recovers them exactly
    (cut,) = ward_labels(ours, [4])
    assert adjusted_rand_score(labels.numpy(), cut.numpy()) == 1.0


def test_tsne_batched_equals_alone():
    gen = torch.Generator().manual_seed(2)
    # 120 and 110 share a group of the compiled kernel with different padding (128, 112); 110, 108
    # and 100 share a group of the eager kernel (all padded to 112)
    sets = [torch.randn(n, 6, generator=gen) for n in (120, 110, 108, 100, 23, 64)]
    cfg = TsneConfig(kernel="eager", max_iter=300)
    together = exact_tsne(sets, cfg)
    for points, batched in zip(sets, together):
        (alone,) = exact_tsne([points], cfg)
        assert torch.equal(alone, batched)


def test_tsne_degenerate_and_tiny_sets():
    same = torch.ones(10, 4)  # one repeated point: zero gradient, stops, stays finite
    out = exact_tsne([same, torch.randn(1, 3), torch.randn(2, 3)], TsneConfig(kernel="eager"))
    assert torch.isfinite(out[0]).all() and out[0].shape == (10, 2)
    assert torch.equal(out[1], torch.zeros(1, 2))
    assert torch.isfinite(out[2]).all()


needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("c++", "g++", "clang++")),
    reason="the fused t-SNE kernels need a C++ compiler",
)


@needs_compiler
@pytest.mark.parametrize("kind", ["aot", pytest.param("compiled", marks=pytest.mark.slow)])
def test_fused_kernels_match_eager_and_are_batch_invariant(kind):
    step_kernel(kind)  # the aot package is built once per machine (about 33 s of CPU)
    gen = torch.Generator().manual_seed(4)
    sets = [torch.randn(n, 5, generator=gen) for n in (120, 110, 64, 23)]
    short_c = exact_tsne(sets, TsneConfig(kernel=kind, max_iter=3))
    short_e = exact_tsne(sets, TsneConfig(kernel="eager", max_iter=3))
    for c, e in zip(short_c, short_e):
        torch.testing.assert_close(c, e, rtol=0, atol=1e-4 * float(e.abs().max()))
    cfg = TsneConfig(kernel=kind, max_iter=300)
    together = exact_tsne(sets, cfg)
    for points, batched in zip(sets, together):
        (alone,) = exact_tsne([points], cfg)
        assert torch.equal(alone, batched)


@needs_compiler
def test_aot_kernel_loads_through_the_documented_loader(monkeypatch):
    import torch._inductor as inductor

    from netreveal.inv.kernels import aot_path, example_inputs, load_aot, step_eager

    step_kernel("aot")  # builds the package if this machine has none yet
    calls, real = [], inductor.aoti_load_package

    def recording(path, *args, **kwargs):
        calls.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(inductor, "aoti_load_package", recording)
    step = load_aot(aot_path())
    assert calls == [str(aot_path())]
    for ours, eager in zip(step(*example_inputs()), step_eager(*example_inputs())):
        torch.testing.assert_close(ours, eager, rtol=1e-5, atol=1e-6)


def test_kernel_cache_location(monkeypatch, tmp_path):
    from netreveal.inv.kernels import cache_dir, kernel_key

    monkeypatch.setenv("NETREVEAL_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path / "kernels"
    monkeypatch.delenv("NETREVEAL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "netreveal" / "kernels"
    assert kernel_key() == kernel_key() and len(kernel_key()) == 20


# --- clustering ----------------------------------------------------------------------------------


def test_ward_and_silhouette_match_scikit_learn():
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    gen = torch.Generator().manual_seed(0)
    sets = [torch.randn(n, 2, generator=gen) for n in (30, 12, 9)]
    ks = [valid_ks(p.shape[0], (3, 8)) for p in sets]
    assert ks[2] == [3, 4, 5, 6, 7, 8]
    labels = [ward_labels(p, k) for p, k in zip(sets, ks)]
    scores = silhouettes(sets, labels)
    for p, kk, lab, sc in zip(sets, ks, labels, scores):
        for j, k in enumerate(kk):
            ref = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(p.numpy())
            assert adjusted_rand_score(ref, lab[j].numpy()) == 1.0
            assert len(set(lab[j].tolist())) == k
            assert float(sc[j]) == pytest.approx(
                silhouette_score(p.numpy(), lab[j].numpy()), abs=1e-6
            )


def test_valid_ks_clip_to_points():
    assert valid_ks(4, (3, 8)) == [3]
    assert valid_ks(3, (3, 8)) == []
    assert valid_ks(100, (3, 8)) == [3, 4, 5, 6, 7, 8]


# --- the pipeline on planted structure ---------------------------------------------------------


@pytest.fixture(scope="module")
def planted_result():
    torch.manual_seed(0)
    return explain_inv(Planted(), pattern_images(2), "last:1")  # default settings, auto kernel


def test_planted_groups_are_recovered(planted_result):
    expected = {frozenset(g) for g in GROUPS}
    assert planted_result.layers == ["conv"]
    for image in planted_result:
        layer = image.layer("conv")
        assert (layer.n_maps, layer.n_kept, layer.k) == (12, 12, 3)
        assert channel_sets(layer) == expected
        for cluster in layer.clusters:
            assert cluster.weight == pytest.approx(100.0 / 3, abs=1e-3)
        assert layer.silhouette > 0.5
        assert image.target == image.predicted == 0


def test_cluster_maps_follow_their_definition(planted_result):
    model, x = Planted(), pattern_images(2)
    cap = capture(model, x, "conv")
    act = cap.activations["conv"].clamp_min(0)
    for i, image in enumerate(planted_result):
        layer = image.layer("conv")
        for cluster in layer.clusters:
            assert cluster.map.shape == (16, 16)
            assert float(cluster.map.min()) == 0.0 and float(cluster.map.max()) == 1.0
            ch = torch.tensor(cluster.channels)
            w = layer.weights[ch]
            low = (w[:, None, None] * act[i, ch]).sum(0) / w.sum()
            expected = minmax(upsample(low[None], (16, 16)))[0]
            torch.testing.assert_close(cluster.map.float(), expected, atol=1e-3, rtol=0)
            # the cluster map is its pattern: the input channel the members copy, as the stride-2
            # conv samples it
            pattern = minmax(upsample(x[i, cluster.channels[0] % 3, ::2, ::2][None], (16, 16)))[0]
            corr = np.corrcoef(cluster.map.float().flatten(), pattern.flatten())[0, 1]
            assert corr > 0.99
        weights = torch.tensor([c.weight for c in layer.clusters])
        mixed = (torch.stack([c.map.float() for c in layer.clusters]) * weights[:, None, None]).sum(
            0
        )
        torch.testing.assert_close(layer.combined.float(), minmax(mixed), atol=2e-3, rtol=0)


def test_cluster_filter_and_labels_are_consistent():
    # ten channels copy pattern 0, three each the others: equal map weights, so the two small
    # clusters weigh 18.75 % each, below max(62.5 / 3, 33.3 / 2)
    model = Planted(channels=16, assign=[0] * 10 + [1] * 3 + [2] * 3)
    x = pattern_images(1)
    layer = explain_inv(model, x, "conv")[0].layer("conv")
    cw = layer.cluster_weights
    assert torch.all(cw[:-1] >= cw[1:])  # heaviest first
    floor = max(float(cw.max()) / 3, float(cw.mean()) / 2)
    kept = [float(c.weight) for c in layer.clusters]
    assert kept == pytest.approx([float(v) for v in cw if float(v) >= floor])
    assert layer.k == 3 and [c.channels for c in layer.clusters] == [list(range(10))]
    for i, cluster in enumerate(layer.clusters):
        assert cluster.channels == layer.kept[layer.labels == i].tolist()
        assert cluster.weight == pytest.approx(
            float(layer.weights[cluster.channels].sum()), rel=1e-5
        )


@pytest.mark.parametrize("reducer", ["pca", "none"])
def test_other_reducers_recover_planted_groups(reducer):
    res = explain_inv(Planted(), pattern_images(1), "conv", config=InvConfig(reducer=reducer))
    layer = res[0].layer("conv")
    assert channel_sets(layer) == {frozenset(g) for g in GROUPS}
    assert layer.embedding.shape == (12, 2)


def test_deterministic_under_a_seed():
    cfg = InvConfig(tsne=TsneConfig(kernel="eager", init="random", max_iter=300))
    model, x = Planted(mix=0.4, seed=2), pattern_images(2)
    a = explain_inv(model, x, "conv", config=cfg, seed=7)
    b = explain_inv(model, x, "conv", config=cfg, seed=7)
    c = explain_inv(model, x, "conv", config=cfg, seed=8)
    assert_same(a.images, b.images)
    assert not torch.equal(a[0].layers[0].embedding, c[0].layers[0].embedding)


# --- edge cases ----------------------------------------------------------------------------------


def test_all_zero_gradients_give_an_empty_layer():
    model = Planted(head=0.0)  # the class score does not depend on the layer
    layer = explain_inv(model, pattern_images(1), "conv", config=InvConfig(tsne=SHORT))[0].layers[0]
    assert layer.empty and layer.n_kept == 0 and layer.k == 0 and layer.clusters == []
    assert math.isnan(layer.silhouette)
    assert torch.equal(layer.weights, torch.zeros(12))
    assert torch.equal(layer.combined.float(), torch.zeros(16, 16))
    assert layer.embedding.shape == (0, 2)


def test_fewer_kept_maps_than_the_k_range_give_one_cluster():
    for channels in (2, 3):
        model = Planted(channels=channels)
        layer = explain_inv(model, pattern_images(1), "conv", config=InvConfig(tsne=SHORT))[
            0
        ].layers[0]
        assert layer.n_kept == channels and layer.k == 1 and math.isnan(layer.silhouette)
        assert [c.channels for c in layer.clusters] == [list(range(channels))]
        assert layer.clusters[0].weight == pytest.approx(100.0, rel=1e-5)
        assert (
            0.0 <= float(layer.clusters[0].map.min()) and float(layer.clusters[0].map.max()) == 1.0
        )


def test_constant_maps_give_one_all_zero_cluster():
    layer = explain_inv(Constant(6), pattern_images(1), "conv", config=InvConfig(tsne=SHORT))[
        0
    ].layers[0]
    assert layer.n_kept == 6 and layer.k == 1 and len(layer.clusters) == 1
    assert layer.clusters[0].channels == list(range(6))
    assert torch.equal(layer.clusters[0].map.float(), torch.zeros(16, 16))  # a constant map
    assert torch.isfinite(layer.weights).all()


def test_fewer_maps_than_the_k_range():
    model = Planted(channels=5, mix=0.02)
    layer = explain_inv(model, pattern_images(1), "conv", config=InvConfig(tsne=SHORT))[0].layers[0]
    assert layer.n_kept == 5 and layer.k in (3, 4) and not math.isnan(layer.silhouette)
    assert sorted(c for cl in layer.clusters for c in cl.channels) == sorted(
        layer.kept[layer.labels < len(layer.clusters)].tolist()
    )


def test_bad_input_is_reported():
    model, x = Planted(), pattern_images(1)
    with pytest.raises(NetrevealError):
        explain_inv(model, x, "conv", config=InvConfig(reducer="umap"))
    with pytest.raises(NetrevealError):
        explain_inv(model, x, "conv", config=InvConfig(k_range=(1, 4)))
    with pytest.raises(NetrevealError):
        explain_inv(model, x, "conv", config=InvConfig(tsne=TsneConfig(kernel="gpu")))
    with pytest.raises(NetrevealError):
        explain_inv(model, x[0], "conv")


# --- result file ---------------------------------------------------------------------------------


def test_result_round_trips_through_save_and_load(planted_result, tmp_path):
    path = results.save(planted_result, tmp_path / "inv.pt")
    loaded = results.load(path)
    assert isinstance(loaded, InvResult)
    assert_same(loaded.images, planted_result.images)
    assert loaded.params == planted_result.params
    assert loaded.params["tsne"]["max_iter"] == 1000 and loaded.params["threshold"] == "default"
    assert loaded.seed == planted_result.seed and loaded.input_size == [16, 16]
    assert loaded[0].layers[0].clusters[0].map.dtype == torch.float16
