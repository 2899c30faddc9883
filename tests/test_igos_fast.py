"""The ``fast`` I-GOS / iGOS++ loop: what each iteration costs, when it stops, what its search accepts."""

import math

import pytest
import torch
from torch import nn

from netreveal.attribution.igos import _EarlyStop, igos
from netreveal.attribution.igos_engine import line_search
from netreveal.model.counting import CountingModel


class Quadrant(nn.Module):
    """Class 0 logit grows with the mean brightness of the top-left quadrant; class 1 logit is 0."""

    def forward(self, x):
        h, w = x.shape[-2:]
        z = 12.0 * (x[:, :, : h // 2, : w // 2].mean(dim=(1, 2, 3)) - 0.35)
        return torch.stack([z, torch.zeros_like(z)], dim=1)


class Constant(nn.Module):
    """The same logits whatever the image: no mask changes the score."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([2.0, 0.0]))

    def forward(self, x):
        return self.bias.expand(x.shape[0], 2) + 0 * x.mean(dim=(1, 2, 3))[:, None]


def _trials(start: float, taken: float, decay: float) -> int:
    """Trials an Armijo search starting at ``start`` made before accepting ``taken``."""
    return round(math.log(start / taken) / math.log(1 / decay)) + 1


def test_fast_igos_plus_plus_scores_each_iteration_once_plus_its_trials():
    # the search's base value is the direction's own path scores: per iteration and image the
    # model sees 4 terms x N steps (forward + backward), 4N per line-search trial and 2 images
    # for the deletion / insertion record, never a rescoring of the current mask
    model = CountingModel(Quadrant())
    images, steps, n = 0.5 + 0.5 * torch.rand(2, 3, 16, 16), 3, 2
    r = igos(model, images, 0, method="igos++", variant="fast", mask_size=4, iterations=1,
             ig_steps=steps, baseline="black", alpha0=5.0, max_trials=6, lookahead=False)
    taken = r.extras["steps"][:, 0]
    assert torch.all(taken > 0)
    per_image = [_trials(5.0, float(a), 0.5) for a in taken]
    assert model.counts.backward == n * 4 * steps
    assert model.counts.forward == n + n * 4 * steps + 4 * steps * sum(per_image) + 2 * n
    assert r.extras["model_inputs"] == model.counts.forward


def test_reference_igos_plus_plus_rescores_its_base_value_every_iteration():
    # the same count for the reference loop has one more path scoring (4N) per image
    model = CountingModel(Quadrant())
    images, steps, n = 0.5 + 0.5 * torch.rand(2, 3, 16, 16), 3, 2
    r = igos(model, images, 0, method="igos++", variant="reference", mask_size=4, iterations=1,
             ig_steps=steps, baseline="black", alpha0=5.0)
    taken = r.extras["steps"][:, 0]
    assert torch.all(taken > 1e-5)
    per_image = [_trials(5.0, float(a), 0.2) for a in taken]
    assert model.counts.forward == n + 2 * n * 4 * steps + 4 * steps * sum(per_image) + 2 * n


@pytest.mark.parametrize("lookahead", [False, True])
def test_early_stop_stops_a_converged_image_after_patience_iterations(lookahead):
    # no mask changes the loss: every iteration converged (the look-ahead's first pass only
    # scores the start masks, so it stops one iteration later)
    model = CountingModel(Constant())
    r = igos(model, torch.rand(2, 3, 16, 16), 0, method="igos++", variant="fast", mask_size=4,
             iterations=10, ig_steps=2, patience=3, lookahead=lookahead)
    ran = 3 + int(lookahead)
    assert r.extras["iterations_run"].tolist() == [ran, ran]
    # nothing is evaluated after the stop: one pass of 4 terms x 2 steps per iteration and image
    assert model.counts.backward == 2 * ran * 4 * 2
    assert r.params["tol"] == 1e-3 and r.params["patience"] == 3
    assert r.extras["losses"].shape == (2, 10)
    assert torch.equal(r.extras["losses"][:, 3:], r.extras["losses"][:, 2:3].expand(2, 7))
    off = igos(Constant(), torch.rand(1, 3, 16, 16), 0, method="igos++", variant="fast",
               mask_size=4, iterations=10, ig_steps=2, tol=0.0)
    assert off.extras["iterations_run"].tolist() == [10]


def test_early_stop_counts_only_consecutive_converged_iterations():
    # relative decreases per iteration: image 0 converges twice in a row only at the end; image 1
    # never falls by less than tol; patience 2, tol 1e-3
    stop = _EarlyStop(2, tol=1e-3, patience=2, device=torch.device("cpu"))
    rows = torch.arange(2)
    drops = [(0.1, 0.1), (5e-4, 2e-3), (0.1, 0.1), (5e-4, 1.1e-3), (5e-4, 0.5)]
    running = []
    for d0, d1 in drops:
        before = torch.tensor([2.0, 2.0])
        stop.update(rows, before, before * (1 - torch.tensor([d0, d1])))
        running.append(stop.running.tolist())
    assert running == [[True, True]] * 4 + [[False, True]]
    assert stop.iterations.tolist() == [5, 5]
    assert stop.active().tolist() == [1]


def test_fast_igos_keeps_going_while_the_l1_decay_may_still_rescue_an_image():
    # the deletion score has not moved from the full image's: the L1 decay can still act, so the
    # image is not stopped before the last decay check, and the decay happens
    r = igos(Constant(), torch.rand(1, 3, 16, 16), 0, method="igos", variant="fast", mask_size=4,
             iterations=10, ig_steps=2)
    assert r.extras["iterations_run"].item() >= int(10 / 1.25)
    assert r.extras["l1"].item() == pytest.approx(1.0 / 50)


def test_capped_line_search_accepts_the_first_armijo_step_and_gives_up_after_max_trials():
    params = torch.full((3, 1, 2, 2), 0.5, dtype=torch.float64)
    grad = torch.full_like(params, 0.1)
    target = torch.tensor([0.3, 0.1, 0.49], dtype=torch.float64)  # images' best masks
    calls = []

    def loss_fn(p, rows):
        calls.append(rows.tolist())
        value = (p - target[rows].view(-1, 1, 1, 1)).square().flatten(1).sum(1)
        return value, value

    base, aux = loss_fn(params, torch.arange(3))
    calls.clear()
    c, decay = 0.5, 0.5
    new, new_loss, _, taken = line_search(params, grad, loss_fn, base, aux, 4.0, c=c, decay=decay,
                                          max_trials=3)
    assert len(calls) <= 3
    slope = c * grad.flatten(1).square().sum(1)
    for i in range(3):
        alphas = [4.0 * decay**k for k in range(3)]
        values = [float(loss_fn((params[i : i + 1] - a * grad[i : i + 1]).clamp(0, 1),
                                torch.tensor([i]))[0]) for a in alphas]
        passing = [a for a, v in zip(alphas, values) if v <= float(base[i]) - a * float(slope[i])]
        if passing:
            assert float(taken[i]) == passing[0]
            assert float(new_loss[i]) == pytest.approx(values[alphas.index(passing[0])])
        else:
            assert float(taken[i]) == 0 and torch.equal(new[i], params[i])
    assert list(taken) == [2.0, 4.0, 0.0]  # the second trial, the first, none within the cap


@pytest.mark.parametrize("method", ["igos", "igos++"])
def test_fast_result_does_not_depend_on_the_batch(method):
    # each image stops on its own: the others in its batch change neither its mask nor its count
    torch.manual_seed(1)
    images = 0.5 + 0.5 * torch.rand(3, 3, 16, 16)
    kw = dict(method=method, variant="fast", mask_size=4, iterations=6, ig_steps=3, seed=2)
    both = igos(Quadrant(), images, 0, batch_size=5, **kw)
    alone = igos(Quadrant(), images[1:2], 0, batch_size=64, **kw)
    torch.testing.assert_close(alone.raw[0], both.raw[1], atol=1e-5, rtol=0)
    assert alone.extras["iterations_run"][0] == both.extras["iterations_run"][1]


def test_lookahead_costs_one_gradient_pass_per_iteration():
    # the trial's loss comes from the next direction pass: per iteration and image 4N images
    # forward and backward plus the 2 record images, no line-search forward passes
    model = CountingModel(Quadrant())
    images, steps, n, its = 0.5 + 0.5 * torch.rand(2, 3, 16, 16), 3, 2, 4
    r = igos(model, images, 0, method="igos++", variant="fast", lookahead=True, mask_size=4,
             iterations=its, ig_steps=steps, alpha0=5.0, tol=0.0)
    assert r.extras["iterations_run"].tolist() == [its, its]
    assert model.counts.backward == its * n * 4 * steps
    assert model.counts.forward == n + its * n * (4 * steps + 2)
    assert r.params["lookahead"] is True


def test_lookahead_accepts_only_steps_that_pass_the_armijo_test():
    # noise free, so the losses are exact: an accepted step lowers the loss by at least c*a*|g|^2
    # (> 0), a rejected one leaves the masks and the loss as they were
    torch.manual_seed(0)
    images = 0.3 + 0.2 * torch.rand(2, 3, 16, 16)  # class 0 probability about 0.65: room to move
    r = igos(Quadrant(), images, 0, method="igos++", variant="fast", lookahead=True, mask_size=4,
             iterations=10, ig_steps=3, alpha0=50.0, tol=0.0, noise=0.0, baseline="black")
    losses, steps = r.extras["losses"], r.extras["steps"]
    assert torch.all(steps[:, 0] == 0)  # the first pass only scores the start
    moved = steps[:, 1:] > 0
    assert moved.any() and (~moved).any()
    assert torch.all(losses[:, 1:][moved] < losses[:, :-1][moved])
    assert torch.all(losses[:, 1:][~moved] == losses[:, :-1][~moved])


def test_bad_fast_settings_are_reported():
    from netreveal.errors import NetrevealError

    images = torch.rand(1, 3, 16, 16)
    with pytest.raises(NetrevealError, match="lookahead"):
        igos(Quadrant(), images, 0, method="igos", lookahead=True, mask_size=4)
    with pytest.raises(NetrevealError, match="decay"):
        igos(Quadrant(), images, 0, variant="fast", decay=1.5, mask_size=4)
    with pytest.raises(NetrevealError, match="patience"):
        igos(Quadrant(), images, 0, variant="fast", patience=0, mask_size=4)


class Recorder(nn.Module):
    """``Constant`` that keeps a copy of every batch it is given."""

    def __init__(self):
        super().__init__()
        self.inner = Constant()
        self.batches: list[torch.Tensor] = []

    def forward(self, x):
        self.batches.append(x.detach().clone())
        return self.inner(x)


@pytest.mark.parametrize("rule", ["run", "iteration"])
def test_lookahead_scores_every_pass_on_one_noise_table_per_run(rule):
    # no mask moves (no score depends on the image, the regularisers are flat at M = 1), so the
    # path images of two passes differ only by their noise: identical with one table per run, so a
    # trial and the loss it must beat see the same noise; different with one table per pass
    model = Recorder()
    steps = 2
    r = igos(model, torch.rand(1, 3, 16, 16), 0, method="igos++", variant="fast", mask_size=4,
             iterations=3, ig_steps=steps, tol=0.0, noise=0.5, lookahead_noise=rule)
    paths = [b for b in model.batches if len(b) == 4 * steps]
    assert len(paths) == 3
    same = [torch.equal(paths[0], p) for p in paths[1:]]
    assert same == ([True, True] if rule == "run" else [False, False])
    assert r.params["lookahead_noise"] == rule


def test_lookahead_shrinks_a_rejected_step_by_a_tenth():
    # every step the look-ahead takes is alpha0 * 1.25^a * 0.1^b (a accepted, b rejected trials
    # before it); with the line search's 0.5 no step would be of that form
    torch.manual_seed(0)
    images = 0.3 + 0.2 * torch.rand(2, 3, 16, 16)
    r = igos(Quadrant(), images, 0, method="igos++", variant="fast", mask_size=4, iterations=10,
             ig_steps=3, alpha0=50.0, tol=0.0, noise=0.0, baseline="black")
    assert r.params["decay"] == 0.1 and r.params["lookahead"] is True
    taken = [float(s) / 50.0 for s in r.extras["steps"].flatten() if s > 0]
    assert taken and any(s < 1.0 for s in taken)  # some step came after a rejected trial
    for s in taken:
        assert any(math.isclose(s, 1.25**a * 0.1**b, rel_tol=1e-5) for a in range(10) for b in range(10)), s
    off = igos(Quadrant(), images, 0, method="igos++", variant="fast", mask_size=4, iterations=1,
               ig_steps=3, lookahead=False)
    assert off.params["decay"] == 0.5 and off.params["lookahead_noise"] is None
