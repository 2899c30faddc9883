"""netreveal.show and netreveal.figure: the overlay against its definition, one axis per panel for
every kind of result."""

import numpy as np
import pytest
import torch
from PIL import Image

import netreveal
from netreveal.errors import NetrevealError
from netreveal.report.render import LUT, overlay
from netreveal.results import AttributionResult


def _expected(image_uint8: np.ndarray, heatmap: np.ndarray, alpha: float) -> np.ndarray:
    """colormap(heatmap) * alpha + image * (1 - alpha), the colour map being the reports' table."""
    heat = LUT[np.round(np.clip(heatmap, 0, 1) * 255).astype(int)].astype(np.float64)
    return np.clip(np.round(heat * alpha + image_uint8.astype(np.float64) * (1 - alpha)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.55, 1.0])
def test_show_follows_the_definition(alpha):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    heatmap = rng.random((12, 10)) * 1.4 - 0.2  # some values outside [0, 1]: clipped
    out = netreveal.show(image, heatmap, alpha=alpha)
    assert isinstance(out, Image.Image) and out.size == (10, 12)
    assert np.array_equal(np.asarray(out), _expected(image, heatmap, alpha))
    if alpha == 0.0:
        assert np.array_equal(np.asarray(out), image)


def test_show_takes_tensors_and_pil_images_like_the_report():
    torch.manual_seed(0)
    image, heatmap = torch.rand(3, 16, 16), torch.rand(16, 16)
    from_tensor = np.asarray(netreveal.show(image, heatmap))
    assert np.array_equal(from_tensor, overlay(image, heatmap))  # the reports' overlay
    pil = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    assert np.array_equal(np.asarray(netreveal.show(pil, heatmap.numpy())), from_tensor)


def test_show_resizes_a_coarse_heatmap_and_checks_its_input():
    out = netreveal.show(np.zeros((32, 32, 3), np.uint8), torch.ones(4, 4), alpha=1.0)
    assert np.array_equal(np.asarray(out), np.broadcast_to(LUT[255], (32, 32, 3)))
    with pytest.raises(NetrevealError, match="alpha"):
        netreveal.show(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4)), alpha=1.5)
    with pytest.raises(NetrevealError, match=r"\(H, W\)"):
        netreveal.show(np.zeros((4, 4, 3), np.uint8), np.zeros((2, 4, 4)))


def _attribution(n=3):
    return AttributionResult(method="gradcam", maps=torch.rand(n, 8, 8), targets=torch.arange(n),
                             target_probs=torch.full((n,), 0.5), params={}, provenance={})


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.get_images()]


def test_figure_of_heatmaps_has_one_axis_per_image():
    result = _attribution(3)
    fig = netreveal.figure(result)
    assert len(fig.axes) == 3 and len(_image_axes(fig)) == 3
    images = torch.rand(3, 3, 8, 8)
    fig = netreveal.figure(result, images)
    drawn = fig.axes[1].get_images()[0].get_array()
    assert np.array_equal(np.asarray(drawn), np.asarray(netreveal.show(images[1], result.maps[1])))
    assert fig.axes[0].get_title().startswith("0: gradcam · class 0")
    with pytest.raises(NetrevealError, match="2 were given"):
        netreveal.figure(result, images[:2])


def test_figure_of_every_other_result_type(tmp_path):
    from netreveal.concepts.tcav import TcavResult
    from netreveal.inv import InvCluster, InvImage, InvLayer, InvResult
    from netreveal.metrics.perturbation import PerturbationScores
    from netreveal.sag.result import SagBatch, SagResult

    layer = InvLayer(name="conv", n_maps=4, n_kept=2, k=1, silhouette=float("nan"),
                     clusters=[InvCluster(map=torch.rand(8, 8), weight=100.0, channels=[0, 1])],
                     combined=torch.rand(8, 8))
    inv = InvResult(images=[InvImage(0, 0, 0, 0.9, [layer, layer]), InvImage(1, 0, 0, 0.9, [layer, layer])],
                    layers=["conv", "conv"], params={}, seed=0, provenance={})
    assert len(netreveal.figure(inv, torch.rand(2, 3, 8, 8)).axes) == 4  # images x layers

    graph = SagResult(target=0, full_prob=0.9, baseline_prob=0.1, grid=2, image_size=[8, 8], roots=[[0], [1, 3]],
                      root_probs=[0.8, 0.7], shown=[0, 1], nodes=[], edges=[], saliency=torch.rand(2, 2),
                      forward_passes=1, saliency_forward_passes=0, depth=1, stop_reason="done", params={},
                      provenance={})
    sag = netreveal.figure(SagBatch(graphs=[graph], params={}, provenance={}), torch.ones(1, 3, 8, 8))
    assert len(sag.axes) == 2  # one panel per shown minimal sufficient set
    assert sag.axes[1].get_title().startswith("0: {P1, P3} · p 0.70")  # roots written as sets
    kept = np.asarray(sag.axes[0].get_images()[0].get_array())
    assert kept[0, 0].tolist() == [255] * 3 and kept[7, 7].tolist() == [63] * 3  # only patch 0 stays bright

    scores = PerturbationScores(deletion_auc=torch.tensor([0.2, 0.3]), insertion_auc=torch.tensor([0.8, 0.7]),
                                deletion_curve=torch.rand(2, 5), insertion_curve=torch.rand(2, 5),
                                fractions=torch.linspace(0, 1, 5), targets=torch.zeros(2, dtype=torch.long),
                                params={}, provenance={})
    curves = netreveal.figure(scores)
    assert len(curves.axes) == 2 and len(curves.axes[0].get_lines()) == 2

    tcav = TcavResult(concept="stripes", layers=["a", "b", "c"], classes=[0, 1], scores=torch.rand(3, 2, 4),
                      random_scores=torch.rand(3, 2, 4), p_values=torch.rand(3, 2),
                      significant=torch.zeros(3, 2, dtype=torch.bool), cav_accuracy=torch.rand(3, 4),
                      random_accuracy=torch.rand(3, 4), params={}, provenance={}, class_names=["cart", "plane"])
    bars = netreveal.figure(tcav)
    assert len(bars.axes) == 3 and [t.get_text() for t in bars.axes[0].get_xticklabels()] == ["cart", "plane"]
    bars.savefig(tmp_path / "tcav.png")  # draws without a display
    assert (tmp_path / "tcav.png").stat().st_size > 0

    with pytest.raises(NetrevealError, match="cannot draw a dict"):
        netreveal.figure({"maps": 1})


def test_import_netreveal_stays_light():
    import subprocess
    import sys

    code = "import sys, netreveal; print('matplotlib' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
