"""The ``reference`` I-GOS / iGOS++ loops against small ports of the published algorithms.

Each port below is written from the reference code's equations (I-GOS: zhongangqi/IGOS,
``Integrated_Mask``; iGOS++: khorrams/IGOS_pp, ``iGOS_pp`` with its line search and bilateral
TV), one image at a time, with autograd for every gradient and ``F.interpolate(align_corners=True)``
for the upsampling, and with the path noise off so both sides are deterministic. Our batched
implementation must give the same masks.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from netreveal.attribution.igos import igos
from netreveal.attribution.igos_engine import line_search, stalled_images
from netreveal.attribution.igos_paths import PathScorer
from netreveal.attribution.igos_reg import ReferenceBilateralTV, Upsampler
from netreveal.data.partsworld_truth import partsworld_inputs
from netreveal.errors import NetrevealError
from netreveal.imaging import make_baseline
from netreveal.methods import METHODS
from netreveal.model.adapter import load_model


@pytest.fixture(scope="module")
def demo():
    adapter = load_model("demo")
    images = partsworld_inputs(adapter, 2).images
    with torch.no_grad():
        labels = adapter.model(images).argmax(dim=1)
    return adapter.model, images, make_baseline(images, "blur"), labels


# -- the reference equations, one image (1, 3, H, W) at a time ----------------------------------


def up(mask: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=True)


def prob(model, x, label) -> torch.Tensor:
    return model(x).softmax(dim=1)[0, label]


def phi(a, b, m):
    return a * m + b * (1 - m)


def path_sum(model, first, second, label, mask_up, steps) -> torch.Tensor:
    """sum_s p(phi(first, second, s/N * U)) / N: deletion is (image, baseline), insertion the
    other way round."""
    total = 0.0
    for s in range(1, steps + 1):
        total = total + prob(model, phi(first, second, s / steps * mask_up), label) / steps
    return total


def tv(m: torch.Tensor) -> torch.Tensor:
    m = m[0, 0]
    return (m[:-1, :] - m[1:, :]).abs().pow(2).mean() + (m[:, :-1] - m[:, 1:]).abs().pow(2).mean()


def reference_btv(norm_image, m, size, sigma=0.01):
    """0.5 (TV of the mask + bilateral TV of the upsampled mask), weights on standardised pixels."""
    u = up(m, size)[0, 0]
    x = norm_image[0]
    a = (m[0, 0, :-1, :] - m[0, 0, 1:, :]).pow(2).mean()
    b = (m[0, 0, :, :-1] - m[0, 0, :, 1:]).pow(2).mean()
    wa = torch.exp(-(x[:, :-1, :] - x[:, 1:, :]).mean(dim=0) ** 2 / sigma)
    wb = torch.exp(-((x[:, :, :-1] - x[:, :, 1:]) ** 2) / sigma).mean(dim=0)
    bil_a = (wa * (u[:-1, :] - u[1:, :]).pow(2)).mean()
    bil_b = (wb * (u[:, :-1] - u[:, 1:]).pow(2)).mean()
    return 0.5 * (a + b + bil_a + bil_b)


def igos_port(model, image, base, label, side, iterations, steps, l1=1.0, l2=20.0):
    """zhongangqi/IGOS: integrated-gradient descent, line search on f(Phi(M)) from step 200."""
    size = image.shape[-2:]
    mask = torch.ones(1, 1, side, side)
    curve = []
    for i in range(iterations):
        mask = mask.detach().requires_grad_(True)
        mask_up = up(mask, size)
        reg = l1 * (1 - mask).abs().mean() + l2 * tv(mask)
        total = reg + path_sum(model, image, base, label, mask_up, steps)
        (grad,) = torch.autograd.grad(total, mask)
        with torch.no_grad():
            p_now = prob(model, phi(image, base, mask_up), label)
            base_loss = reg + p_now
            if i == 0:
                curve.append(p_now)

            step = 200.0
            while True:
                m = (mask - step * grad).clamp(0, 1)
                trial = l1 * (1 - m).abs().mean() + l2 * tv(m) + prob(model, phi(image, base, up(m, size)), label)
                if trial <= base_loss - 1e-4 * step * grad.pow(2).sum() or step < 1e-5:
                    break  # the reference scores the first step below 1e-5 and stops there
                step *= 0.2
            mask = (mask - step * grad).clamp(0, 1)
            curve.append(p_now)
            if iterations > 3:
                if i == int(iterations / 2):
                    if (curve[0] - curve[i]).abs() <= 1e-3:
                        l1 = l1 / 10
                elif i == int(iterations / 1.25):
                    if (curve[0] - curve[i]).abs() <= 1e-2:
                        l1 = l1 / 5
    return mask.detach()[0, 0], l1


def igos_pp_port(model, image, base, label, side, iterations, steps, std, l1=1.0, l2=20.0):
    """khorrams/IGOS_pp: half the four integrated gradients, line search on their plain sum."""
    size = image.shape[-2:]
    norm_image = image / std  # differences only: the mean does not matter

    def reg(m):
        return l1 * (1 - m).abs().mean() + l2 * reference_btv(norm_image, m, size)

    def data(m_del, m_ins):
        u_del, u_ins = up(m_del, size), up(m_ins, size)
        both = u_del * u_ins
        return (
            path_sum(model, image, base, label, u_del, steps)
            - path_sum(model, base, image, label, u_ins, steps)
            + path_sum(model, image, base, label, both, steps)
            - path_sum(model, base, image, label, both, steps)
        )

    m_del, m_ins = torch.ones(1, 1, side, side), torch.ones(1, 1, side, side)
    for _ in range(iterations):
        m_del = m_del.detach().requires_grad_(True)
        m_ins = m_ins.detach().requires_grad_(True)
        g_del, g_ins = torch.autograd.grad(data(m_del, m_ins), (m_del, m_ins))
        r_del, r_ins = torch.autograd.grad(reg(m_del * m_ins), (m_del, m_ins))
        g_del, g_ins = g_del / 2 + r_del, g_ins / 2 + r_ins
        with torch.no_grad():
            base_loss = data(m_del, m_ins) + reg(m_del * m_ins)
            slope = -1e-4 * (g_del.pow(2).sum() + g_ins.pow(2).sum())
            alpha = 1000.0
            while True:
                d, n = (m_del - alpha * g_del).clamp(0, 1), (m_ins - alpha * g_ins).clamp(0, 1)
                failed = data(d, n) + reg(d * n) > base_loss + alpha * slope
                if failed and alpha >= 1e-5:
                    alpha *= 0.2
                else:
                    break
            m_del = (m_del - alpha * g_del).clamp(0, 1)
            m_ins = (m_ins - alpha * g_ins).clamp(0, 1)
    return m_del.detach()[0, 0], m_ins.detach()[0, 0]


# -- ours against the ports ----------------------------------------------------------------------


@pytest.mark.parametrize(("l1", "l2"), [(1.0, 20.0), (1.0, 2.0)])
def test_igos_reference_matches_the_port(demo, l1, l2):
    # default weights: on this model the point score rejects most steps, so the masks barely move
    # and the L1 weight drops twice; l2 = 2: the masks move and the decay stays off
    model, images, base, labels = demo
    iterations = 5
    ours = igos(model, images, labels, method="igos", variant="reference", mask_size=7,
                baseline=base, iterations=iterations, ig_steps=4, noise=0.0, l1=l1, l2=l2)
    for b in range(2):
        mask, l1_end = igos_port(model, images[b : b + 1], base[b : b + 1], int(labels[b]), 7, iterations, 4,
                                 l1=l1, l2=l2)
        torch.testing.assert_close(ours.raw[b], mask, atol=2e-4, rtol=0)
        assert ours.extras["l1"][b].item() == pytest.approx(l1_end)
        torch.testing.assert_close(ours.maps[b], 1 - up(mask[None, None], (64, 64))[0, 0], atol=2e-4, rtol=0)
        if l2 == 2.0:
            assert (1 - mask).mean() > 0.05 and l1_end == l1
        else:
            assert l1_end == pytest.approx(l1 / 50)
    assert ours.params["alpha0"] == 200.0 and ours.params["warm_start"] is False
    assert ours.params["variant"] == "reference" and ours.params["align_corners"] is True


def test_igos_plus_plus_reference_matches_the_port(demo):
    model, images, base, labels = demo
    ours = igos(model, images, labels, method="igos++", variant="reference", mask_size=7,
                baseline=base, iterations=3, ig_steps=3, noise=0.0)
    for b in range(2):
        m_del, m_ins = igos_pp_port(model, images[b : b + 1], base[b : b + 1], int(labels[b]), 7, 3, 3,
                                    model.std[0])
        torch.testing.assert_close(ours.extras["deletion_mask"][b], m_del, atol=2e-4, rtol=0)
        torch.testing.assert_close(ours.extras["insertion_mask"][b], m_ins, atol=2e-4, rtol=0)
        torch.testing.assert_close(ours.raw[b], m_del * m_ins, atol=2e-4, rtol=0)
        assert (1 - m_del * m_ins).mean() > 0.05
    assert ours.params["alpha0"] == 1000.0 and ours.params["l1_decay"] is False


def test_the_netreveal_variant_is_not_the_reference(demo):
    """The port test can fail: the earlier loop gives other masks from the same start."""
    model, images, base, labels = demo
    ours = igos(model, images[:1], labels[:1], method="igos++", variant="netreveal", mask_size=7,
                baseline=base[:1], iterations=3, ig_steps=3, noise=0.0)
    m_del, m_ins = igos_pp_port(model, images[:1], base[:1], int(labels[0]), 7, 3, 3, model.std[0])
    assert (ours.raw[0] - m_del * m_ins).abs().max() > 1e-2


# -- pieces of the loop --------------------------------------------------------------------------


def test_align_corners_upsampler_and_its_adjoint():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(2, 7, 5, generator=g, dtype=torch.float64)
    ups = Upsampler((7, 5), (64, 48), dtype=torch.float64, align_corners=True)
    expected = F.interpolate(m[:, None], size=(64, 48), mode="bilinear", align_corners=True)[:, 0]
    torch.testing.assert_close(ups.up(m), expected)
    big = torch.rand(2, 64, 48, generator=g, dtype=torch.float64)
    torch.testing.assert_close((ups.up(m) * big).sum(), (m * ups.adjoint(big)).sum())
    # corner cells sit on the corner pixels: a 7x7 mask keeps its border values at the border
    assert torch.equal(ups.up(m)[:, 0, 0], m[:, 0, 0]) and torch.equal(ups.up(m)[:, -1, -1], m[:, -1, -1])


def test_reference_bilateral_tv_value_and_gradient():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 20, 16, generator=g, dtype=torch.float64)
    images[:, :, 10:] += 0.5
    std = torch.tensor([0.2, 0.25, 0.3], dtype=torch.float64).view(3, 1, 1)
    masks = torch.rand(2, 5, 4, generator=g, dtype=torch.float64).requires_grad_(True)
    btv = ReferenceBilateralTV(images, std, Upsampler((5, 4), (20, 16), dtype=torch.float64,
                                                       align_corners=True), sigma=0.05)
    expected = torch.stack([reference_btv(images[b : b + 1] / std, masks[b : b + 1, None], (20, 16), 0.05)
                            for b in range(2)])
    torch.testing.assert_close(btv.value(masks.detach()), expected.detach())
    (auto,) = torch.autograd.grad(expected.sum(), masks)
    torch.testing.assert_close(btv.grad(masks.detach()), auto)
    torch.testing.assert_close(btv.grad(masks.detach()[1:], torch.tensor([1])), auto[1:])


def test_line_search_takes_the_last_tiny_step_like_the_reference():
    params = torch.full((2, 1, 2, 2), 0.5, dtype=torch.float64)
    direction = torch.ones_like(params)
    direction[1] = -1.0  # image 1: every step raises the loss

    def loss_fn(p, rows):
        value = p.flatten(1).sum(1)
        return value, value

    base, aux = loss_fn(params, torch.arange(2))
    kept = line_search(params, direction, loss_fn, base, aux, 200.0, min_step=1e-5)
    taken = line_search(params, direction, loss_fn, base, aux, 200.0, min_step=1e-5, take_last=True)
    # image 0 descends: the first step of 200 clamps to 0 and is accepted either way
    assert kept[3][0] == taken[3][0] == 200.0
    # image 1: 200 * 0.2^k fails for k = 0..10; the reference then takes 200 * 0.2^11 = 4.096e-6
    assert kept[3][1] == 0 and torch.equal(kept[0][1], params[1])
    assert taken[3][1].item() == pytest.approx(200 * 0.2**11)
    torch.testing.assert_close(taken[0][1], params[1] + 200 * 0.2**11)


def test_l1_decay_rules_read_the_score_of_the_right_mask():
    # 10 iterations: checks after iterations 5 (1e-3, /10) and 8 (1e-2, /5).
    full = torch.tensor([0.9])
    scores = torch.tensor([[0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5]])  # after each iteration
    assert stalled_images("after-step", 4, 10, full, scores) is None
    stalled, divisor = stalled_images("after-step", 5, 10, full, scores)
    assert not stalled[0] and divisor == 10.0  # the mask after iteration 5 scores 0.5
    # the I-GOS code compares the mask iteration 4 started from: the output of iteration 3 (0.9)
    stalled, divisor = stalled_images("before-step", 5, 10, full, scores)
    assert stalled[0] and divisor == 10.0
    stalled, divisor = stalled_images("before-step", 8, 10, full, scores)
    assert not stalled[0] and divisor == 5.0
    assert stalled_images("before-step", 2, 3, full, scores) is None  # three iterations or fewer


# -- noise, batching, options --------------------------------------------------------------------


def test_reference_igos_plus_plus_scores_its_line_search_with_noise(monkeypatch):
    calls = []
    real_run = PathScorer.run

    def spy(self, up_masks, inserts, rows, noise=None, grad=False):
        calls.append((grad, noise is not None))
        return real_run(self, up_masks, inserts, rows, noise=noise, grad=grad)

    monkeypatch.setattr(PathScorer, "run", spy)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 3))
    images = torch.rand(1, 3, 16, 16)
    for variant, noisy_search in (("reference", True), ("netreveal", False)):
        calls.clear()
        igos(model, images, 0, method="igos++", variant=variant, mask_size=4, iterations=2, ig_steps=2)
        searches = [noisy for grad, noisy in calls if not grad]
        assert searches and all(noisy == noisy_search for noisy in searches), variant
        assert all(noisy for grad, noisy in calls if grad)


def test_reference_result_does_not_depend_on_the_batch(demo):
    model, images, base, labels = demo
    kw = {"method": "igos++", "variant": "reference", "mask_size": 7, "iterations": 2, "ig_steps": 3,
          "seed": 3}
    both = igos(model, images, labels, batch_size=7, **kw)
    alone = igos(model, images[1:], labels[1:], batch_size=64, **kw)
    torch.testing.assert_close(alone.raw[0], both.raw[1], atol=1e-4, rtol=0)


def test_method_option_picks_the_variant(demo):
    model, images, _, labels = demo
    adapter = load_model("demo")
    method = METHODS["igos"]
    assert method.options().igos_variant == "reference"
    options = method.options(mask_size=4, igos_iterations=1, igos_steps=2, igos_variant="netreveal")
    result = method.run(adapter, images[:1], labels[:1], options)
    assert result.params["variant"] == "netreveal" and result.params["align_corners"] is False
    with pytest.raises(NetrevealError, match="igos-variant"):
        method.options(igos_variant="paper")
    with pytest.raises(NetrevealError, match="variant"):
        igos(model, images[:1], method="igos", variant="paper", mask_size=4)
