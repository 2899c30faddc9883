"""I-GOS and iGOS++: saliency masks optimised with integrated gradients, batched.

I-GOS (Qi, Khorram, Li, AAAI 2020) looks for a small, smooth low-resolution mask M whose deletion
(replacing the masked pixels by a baseline) destroys the target class probability. Its descent
direction is the integrated gradient of the score along the path from the baseline to the masked
image, which escapes the poor local optima of the plain gradient. iGOS++ (Khorram, Lawson, Li,
CHIL 2021) adds an insertion mask (the salient pixels pasted on the baseline must restore the
score), combines the two masks by their product and smooths with a bilateral TV that lets the
mask follow image edges. See :mod:`netreveal.attribution.igos_engine` for the exact objective.

Three settings (``variant``): ``reference`` reproduces the published code's loop (I-GOS:
zhongangqi/IGOS; iGOS++: khorrams/IGOS_pp); ``fast`` keeps its objective and direction with a
cheaper line search and an early stop; ``netreveal`` is this package's earlier loop.
:mod:`netreveal.attribution.igos_variants` lists what differs and ``docs/methods/igos.md`` explains
why.

Heatmap convention: ``maps = 1 - upsample(M)`` with M the output mask (the deletion mask for
I-GOS, deletion x insertion mask for iGOS++), so high = important, in [0, 1], not rescaled.
``raw`` holds M itself at the mask resolution (1 = unimportant).

Batching: all images are optimised together; each (image, term, path step) is one model input
and they run in chunks of ``batch_size``. Each image has its own line-search step, L1 weight and
loss curve; the path noise is drawn per iteration (and, for a noisy line search, per iteration and
trial) and shared by all images, so an image's result does not depend on the batch it is in.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.attribution.igos_engine import Nesterov, Objective, line_search, stalled_images
from netreveal.attribution.igos_lookahead import lookahead_loop
from netreveal.attribution.igos_paths import PathScorer
from netreveal.attribution.igos_reg import Upsampler
from netreveal.attribution.igos_variants import Variant, variant_for
from netreveal.errors import NetrevealError
from netreveal.imaging import make_baseline
from netreveal.model.hooks import frozen, model_device
from netreveal.provenance import provenance
from netreveal.results import AttributionResult, register
from netreveal.targets import Target, resolve_targets

METHODS = ("igos", "igos++")
OPTIMIZERS = ("line_search", "nesterov")
REFERENCE_CELLS = 28 * 28  # alpha0 defaults are set for a 28x28 mask and scaled with the cell count
IMAGENET_STD = (0.229, 0.224, 0.225)


@register
@dataclasses.dataclass
class IgosResult(AttributionResult):
    """I-GOS / iGOS++ heatmaps: an :class:`AttributionResult` whose ``raw`` is the optimised mask and
    whose ``extras`` hold the optimisation record (losses, deletion/insertion scores, steps...)."""


def noise_scale(model: nn.Module, channels: int, device: torch.device) -> torch.Tensor:
    """Pixel-unit sd of one unit of noise in the model's standardised input space, (C, 1, 1): the
    model's input std, also what turns pixel differences into standardised ones.

    Read from the model's ``std`` buffer (netreveal's normalising wrapper and the demo model have
    one); models without it are taken to use the ImageNet std.
    """
    std = getattr(model, "std", None)
    if isinstance(std, torch.Tensor) and std.numel() in (1, channels):
        return (
            std.detach()
            .to(device=device, dtype=torch.float32)
            .reshape(-1, 1, 1)
            .expand(channels, 1, 1)
        )
    if channels == len(IMAGENET_STD):
        return torch.tensor(IMAGENET_STD, device=device).view(-1, 1, 1)
    return torch.full((channels, 1, 1), sum(IMAGENET_STD) / 3, device=device)


def _mask_shape(mask_size: int | tuple[int, int], image_size: tuple[int, int]) -> tuple[int, int]:
    h, w = (mask_size, mask_size) if isinstance(mask_size, int) else tuple(mask_size)
    if h < 1 or w < 1 or h > image_size[0] or w > image_size[1]:
        raise NetrevealError(
            f"mask size {h}x{w} must be between 1x1 and the image size "
            f"{image_size[0]}x{image_size[1]}"
        )
    return int(h), int(w)


def _check(method: str, optimizer: str, iterations: int, ig_steps: int, batch_size: int) -> None:
    if method not in METHODS:
        raise NetrevealError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if optimizer not in OPTIMIZERS:
        raise NetrevealError(
            f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
        )
    if iterations < 1 or ig_steps < 1 or batch_size < 1:
        raise NetrevealError("iterations, ig_steps and batch_size must be at least 1")


def _noisy_loss(
    objective: Objective,
    scale: torch.Tensor,
    shape: tuple[int, ...],
    seed: int,
    it: int,
    device: torch.device,
):
    """The line search's loss with fresh path noise at every call: call ``k`` of iteration ``it``
    draws its table from a generator seeded by (seed, it, k), the same for every image, so an
    image's trials see the same noise whatever else is in its batch."""
    calls = iter(range(1 << 30))

    def loss(params: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (int(seed) * 1_000_003 + it) * 8191 + next(calls)
        generator = torch.Generator(device=device).manual_seed(key % (1 << 62))
        return objective.loss(params, rows, scale * torch.randn(shape, generator=generator, device=device))

    return loss


def _on_rows(loss_fn, rows: torch.Tensor):
    """``loss_fn`` of a subset: the search's row ``i`` is image ``rows[i]``."""
    return lambda p, r: loss_fn(p, rows[r])


def _next_start(
    start: torch.Tensor,
    taken: torch.Tensor,
    alpha0: float,
    decay: float,
    min_step: float,
    max_trials: int,
) -> torch.Tensor:
    """Warm start: the next search starts at ``min(alpha0, step / decay)`` after an accepted step;
    after a failed search at ``alpha0`` (no trial cap) or where the capped search stopped."""
    if max_trials:
        failed = (start * decay**max_trials).clamp(min=min_step)
    else:
        failed = torch.full_like(start, float(alpha0))
    return torch.where(taken > 0, (taken / decay).clamp(max=alpha0), failed)


class _Record:
    """Per-iteration curves (B, iterations); a stopped image's entries repeat its last values."""

    def __init__(self, n: int, iterations: int, device: torch.device):
        self.losses = torch.zeros(n, iterations, device=device)
        self.deletion = torch.zeros(n, iterations, device=device)
        self.insertion = torch.zeros(n, iterations, device=device)
        self.steps = torch.zeros(n, iterations, device=device)

    def carry(self, it: int, active: torch.Tensor) -> None:
        if it > 0:
            idle = torch.ones(self.losses.shape[0], dtype=torch.bool, device=active.device)
            idle[active] = False
            for curve in (self.losses, self.deletion, self.insertion):
                curve[idle, it] = curve[idle, it - 1]

    def store(self, it, active, losses, deletion, insertion, steps) -> None:
        self.carry(it, active)
        self.losses[active, it], self.steps[active, it] = losses, steps
        self.deletion[active, it] = deletion
        if insertion is not None:
            self.insertion[active, it] = insertion


class _EarlyStop:
    """Stops an image once its loss fell by less than ``tol`` (relative to the loss before the
    step) in ``patience`` iterations in a row; ``tol`` 0 never stops."""

    def __init__(self, n: int, tol: float, patience: int, device: torch.device):
        self.tol, self.patience = float(tol), int(patience)
        self.calm = torch.zeros(n, dtype=torch.long, device=device)
        self.running = torch.ones(n, dtype=torch.bool, device=device)
        self.iterations = torch.zeros(n, dtype=torch.long, device=device)

    def active(self) -> torch.Tensor:
        return self.running.nonzero().flatten()

    def update(
        self,
        rows: torch.Tensor,
        before: torch.Tensor,
        after: torch.Tensor,
        exempt: torch.Tensor | None = None,
    ) -> None:
        self.iterations[rows] += 1
        if self.tol <= 0:
            return
        calm = (before - after) < self.tol * before.abs()
        if exempt is not None:
            calm = calm & ~exempt
        self.calm[rows] = torch.where(calm, self.calm[rows] + 1, 0)
        self.running[rows] = self.calm[rows] < self.patience


def _first_step(spec: Variant, optimizer: str, alpha0: float | None, cells: int) -> float:
    if alpha0 is not None:
        return float(alpha0)
    if optimizer == "nesterov":
        return 2.0 * cells / REFERENCE_CELLS
    return spec.alpha0 * (cells / REFERENCE_CELLS if spec.alpha_scales else 1.0)


def igos(
    model: nn.Module,
    images: torch.Tensor,
    target: Target = None,
    *,
    method: str = "igos++",
    variant: str = "reference",
    mask_size: int | tuple[int, int] = 28,
    baseline: str | torch.Tensor = "blur",
    iterations: int = 15,
    ig_steps: int = 20,
    noise: float = 0.2,
    l1: float = 1.0,
    l2: float = 20.0,
    sigma: float = 0.01,
    optimizer: str = "line_search",
    alpha0: float | None = None,
    c: float = 1e-4,
    decay: float | None = None,
    min_step: float = 1e-5,
    l1_decay: bool | None = None,
    warm_start: bool | None = None,
    max_trials: int | None = None,
    tol: float | None = None,
    patience: int | None = None,
    lookahead: bool | None = None,
    lookahead_noise: str | None = None,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = False,
) -> IgosResult:
    """I-GOS (``method="igos"``) or iGOS++ (``"igos++"``) heatmaps for ``images`` (B, 3, H, W).

    - ``variant``: "reference" (the published code's loop), "fast" (the same objective and
      direction, fewer model evaluations) or "netreveal" (this package's earlier loop); see
      :mod:`netreveal.attribution.igos_variants`.
    - ``target``: None (predicted class), an int, or one class per image.
    - ``mask_size``: side of the optimised mask (7, 14, 28, 224 ...; an (h, w) pair also works).
    - ``baseline``: "blur" | "black" | "mean" or a tensor (the "nothing here" image).
    - ``ig_steps``: path steps per integrated gradient; ``noise``: sd of the Gaussian noise added
      to every path image, in the model's standardised input units (the reference adds it to
      normalised images); it is converted to pixel units with the model's ``std`` buffer (or the
      ImageNet std), e.g. 0.2 -> 0.05 for a model normalising with std 0.25. One draw per
      iteration (and per line-search trial when the variant's search is noisy; one per run for
      the look-ahead with ``lookahead_noise="run"``), shared by all images, from ``seed``.
    - ``l1`` weighs mean|1-M|; ``l2`` the total variation (bilateral for iGOS++ with edge scale
      ``sigma``: on squared colour differences in [0, 1] units for netreveal, in standardised
      units for the reference).
    - ``optimizer``: "line_search" (Armijo: first step ``alpha0``, sufficient decrease ``c``,
      shrink by ``decay`` down to ``min_step``, one step size per image) or "nesterov" (fixed
      step ``alpha0``, momentum i/(i+3)). ``alpha0`` defaults to the variant's first step
      (reference: 200 for I-GOS, 1000 for iGOS++; netreveal: 1000 for a 28x28 mask, scaled with
      the number of mask cells) and, for Nesterov, to 2 for a 28x28 mask, scaled likewise (a fixed
      step must stay below the TV stability limit, about 28*27/(8*l2)).
    - ``warm_start``: start an image's search at ``min(alpha0, last accepted step / decay)``
      instead of ``alpha0`` every iteration (None: the variant's, netreveal only).
    - ``decay``: the search's backtracking factor (None: the variant's, 0.2 except iGOS++
      ``fast``: 0.5; with the look-ahead: 0.1, the factor of a rejected trial's step);
      ``max_trials``: trials per search before an image keeps its mask (None: the
      variant's, 0 = no cap; iGOS++ ``fast``: 4). A capped search that fails starts the next one
      where it stopped.
    - ``lookahead``: iGOS++ with a path-score search only (None: the variant's, on for
      ``fast``): no line search; each iteration's gradient pass scores the step proposed by the
      last one, accepted by the Armijo test (see :mod:`netreveal.attribution.igos_lookahead`).
      ``lookahead_noise``: "run" (None: the variant's) draws the look-ahead's path noise once per
      run, so a trial and the loss it must beat see the same noise; "iteration" once per pass.
    - ``tol`` / ``patience``: early stop; an image stops once its loss fell by less than ``tol``
      of its value in each of ``patience`` iterations in a row (None: the variant's; ``fast``:
      1e-3 and 2, the others never stop early). With L1 decay on, an image whose deletion score is
      still within 1e-2 of the full image's is not stopped before the last decay check. Nesterov
      runs never stop early. A stopped image is no longer evaluated; its curves repeat their last
      values and ``extras["iterations_run"]`` counts the iterations it ran.
    - ``l1_decay``: divide an image's L1 weight by 10 at half the iterations and by 5 at 80% when
      its deletion score has not moved from the full-image probability (by 1e-3, 1e-2); None: the
      variant's (on, except for the iGOS++ reference).
    - ``batch_size``: model inputs per forward pass (each is one image x term x path step).

    Returns an :class:`IgosResult`: ``maps`` = 1 - upsampled output mask (high =
    important), ``raw`` = the output mask (B, h, w), ``extras``: ``losses`` (B, iterations)
    line-search objective after each iteration (noisy when the search is), ``deletion_scores``
    (iGOS++ also ``insertion_scores``) (B, iterations) target probability with the output mask
    applied, ``steps`` (B, iterations) step taken (0 = none), ``deletion_mask`` (iGOS++ also
    ``insertion_mask``) (B, h, w), ``l1`` (B,) final L1 weights, ``model_inputs`` (number of
    images the model scored).
    """
    _check(method, optimizer, iterations, ig_steps, batch_size)
    spec = variant_for(method, variant)
    if images.dim() != 4:
        raise NetrevealError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if callable(target) and not isinstance(target, torch.Tensor):
        raise NetrevealError("igos needs class indices as target, not a callable")
    device = model_device(model, images.device)
    images = images.to(device=device, dtype=torch.float32)
    size = tuple(images.shape[-2:])
    h, w = _mask_shape(mask_size, size)
    n = images.shape[0]
    alpha0 = _first_step(spec, optimizer, alpha0, h * w)
    l1_decay = spec.l1_decay if l1_decay is None else bool(l1_decay)
    warm_start = spec.warm_start if warm_start is None else bool(warm_start)
    max_trials = spec.max_trials if max_trials is None else int(max_trials)
    tol = spec.tol if tol is None else float(tol)
    patience = spec.patience if patience is None else int(patience)
    lookahead = spec.lookahead if lookahead is None else bool(lookahead)
    if lookahead and (method != "igos++" or spec.search_score != "path" or optimizer != "line_search"):
        raise NetrevealError("lookahead needs iGOS++ with a path-score line search (variant fast)")
    decay = (spec.lookahead_decay if lookahead else spec.decay) if decay is None else float(decay)
    lookahead_noise = spec.lookahead_noise if lookahead_noise is None else lookahead_noise
    if lookahead_noise not in ("run", "iteration"):
        raise NetrevealError(f"lookahead_noise must be 'run' or 'iteration', got {lookahead_noise!r}")
    if not 0 < decay < 1 or max_trials < 0 or tol < 0 or patience < 1:
        raise NetrevealError("decay must be in (0, 1), max_trials and tol >= 0, patience >= 1")
    baselines = make_baseline(images, baseline)

    with frozen(model):
        with torch.no_grad():
            chunks = [model(images[i : i + batch_size]) for i in range(0, n, batch_size)]
            logits = torch.cat(chunks)
        targets = resolve_targets(target, logits)
        full_probs = logits.softmax(dim=1).gather(1, targets[:, None]).squeeze(1)
        upsampler = Upsampler((h, w), size, device, align_corners=spec.align_corners)
        scorer = PathScorer(model, images, baselines, targets, ig_steps, batch_size)
        scorer.forward_images = n
        std = noise_scale(model, images.shape[1], device)
        l1w = torch.full((n,), float(l1), device=device)
        objective = Objective(method, spec, scorer, upsampler, l1w, l2, sigma, std)
        rows = torch.arange(n, device=device)
        params = torch.ones(n, objective.n_params, h, w, device=device)
        stepper = Nesterov(params, alpha0) if optimizer == "nesterov" else None
        noisy_search = spec.search_noise and noise > 0 and stepper is None
        # the search's base value comes from the direction's own forward passes
        reuse = spec.reuse_direction and spec.search_score == "path" and stepper is None
        if noisy_search or reuse:
            loss, data = torch.zeros(n, device=device), torch.zeros(n, device=device)
        else:
            loss, data = objective.loss(params, rows)
        generator = torch.Generator(device=device).manual_seed(int(seed))
        table_shape = (objective.inserts.numel(), ig_steps, *images.shape[1:])
        pixel_noise = noise * std
        record = _Record(n, iterations, device)
        stopper = _EarlyStop(n, tol if stepper is None else 0.0, patience, device)
        next_start = torch.full((n,), float(alpha0), device=device)

        def draw_table() -> torch.Tensor | None:
            if noise <= 0:
                return None
            return pixel_noise * torch.randn(table_shape, generator=generator, device=device)

        loop = range(0 if lookahead else iterations)
        if lookahead:
            lookahead_loop(
                objective, params, iterations, draw_table, record, stopper, alpha0, c, decay,
                spec.grow, min_step, noise_once=lookahead_noise == "run",
                progress=lambda r: tqdm(r, desc=method, disable=not progress, unit="it"),
            )
        for it in tqdm(loop, desc=method, disable=not progress, unit="it"):
            table = draw_table()
            active = stopper.active()
            if active.numel() == 0:
                record.carry(it, active)
                continue
            sub = params[active]
            grad, scores = objective.gradient(sub, table, active)
            if stepper is None:
                if reuse:
                    base_data = objective.data_from_scores(scores)
                    base = base_data + objective.reg(objective.output(sub), active)

                    def loss_fn(p, r, table=table):
                        return objective.loss(p, r, table)
                elif noisy_search:
                    loss_fn = _noisy_loss(objective, pixel_noise, table_shape, seed, it, device)
                    base, base_data = loss_fn(sub, active)  # the reference rescores its base loss
                else:
                    loss_fn, base, base_data = objective.loss, loss[active], data[active]
                start = next_start[active]
                new, new_loss, new_data, taken = line_search(
                    sub, grad, _on_rows(loss_fn, active), base, base_data, start, c,
                    decay, min_step, take_last=spec.take_last_step, max_trials=max_trials,
                )
                if warm_start:
                    next_start[active] = _next_start(start, taken, alpha0, decay, min_step, max_trials)
            else:
                new = stepper(params, grad)
                base = loss
                new_loss, new_data = objective.loss(new, rows)
                taken = torch.full((n,), float(alpha0), device=device)
            params[active], loss[active], data[active] = new, new_loss, new_data
            out_up = upsampler.up(objective.output(new))
            if spec.search_score == "point":
                dels = new_data  # the search already scored f(Phi(M)) at the new mask
            else:
                dels = scorer.probs(out_up, insert=False, rows=active)
            ins = scorer.probs(out_up, insert=True, rows=active) if method == "igos++" else None
            record.store(it, active, new_loss, dels, ins, taken)
            stalled = stalled_images(spec.decay_rule, it, iterations, full_probs, record.deletion)
            decaying = l1_decay and stalled is not None
            if decaying and bool(stalled[0][active].any()):
                objective.l1[active[stalled[0][active]]] /= stalled[1]
                if not (noisy_search or reuse):
                    loss = data + objective.reg(objective.output(params), rows)
            # an image the L1 decay may still rescue (score near the full image's) keeps going
            rescue = None
            if l1_decay and it < int(iterations / 1.25):
                rescue = (full_probs[active] - dels).abs() <= 1e-2
            stopper.update(active, base, new_loss, rescue)

    out = objective.output(params)
    extras = {
        "losses": record.losses,
        "deletion_scores": record.deletion,
        "steps": record.steps,
        "deletion_mask": params[:, 0].clone(),
        "l1": objective.l1.clone(),
        "model_inputs": int(scorer.forward_images),
        "iterations_run": stopper.iterations.clone(),
    }
    if method == "igos++":
        extras["insertion_scores"] = record.insertion
        extras["insertion_mask"] = params[:, 1].clone()
    params_record = {
        "method": method,
        "variant": variant,
        "mask_size": [h, w],
        "baseline": baseline if isinstance(baseline, str) else "tensor",
        "iterations": iterations,
        "ig_steps": ig_steps,
        "noise": noise,
        "l1": l1,
        "l2": l2,
        "sigma": sigma,
        "optimizer": optimizer,
        "alpha0": alpha0,
        "c": c,
        "decay": decay,
        "min_step": min_step,
        "l1_decay": l1_decay,
        "warm_start": warm_start,
        "max_trials": max_trials,
        "tol": tol,
        "patience": patience,
        "reuse_direction": bool(spec.reuse_direction),
        "lookahead": lookahead,
        "lookahead_noise": lookahead_noise if lookahead else None,
        "batch_size": batch_size,
        "seed": seed,
        "score": "prob",
        "align_corners": spec.align_corners,
    }
    return IgosResult(
        method=method,
        maps=1 - upsampler.up(out),
        targets=targets,
        target_probs=full_probs,
        params=params_record,
        provenance=provenance(seed=seed),
        raw=out,
        extras=extras,
    )
