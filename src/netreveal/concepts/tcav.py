"""TCAV (Kim et al. 2018): does a named concept drive a class? Validates label concepts.

A concept is a set of images showing it; here, typically, the regions its INV cluster maps reveal
(:func:`concept_images`: each image kept where its map is strongest, on a blurred background).
Per layer, a linear classifier separates the concept's activations from those of a random set;
its normal is the concept activation vector (CAV). The TCAV score of a class is the share of the
class's images whose class logit grows along the CAV (positive directional derivative). The
experiment runs ``n_runs`` times against different random sets, and as many times for random
sets against each other; a two-sided t-test between the two score samples marks a concept as
significant for a class and layer.

Random sets are drawn from a pool of images. For concepts built from map regions, build the pool
with :func:`random_region_images` (random regions of random images on the same background), so a
CAV can only tell the concept from chance by what the regions show, not by the masking itself.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.errors import NetrevealError
from netreveal.imaging import gaussian_blur, make_baseline, upsample
from netreveal.metrics.alignment import top_region
from netreveal.model.hooks import capture, model_device
from netreveal.model.layers import resolve_layers
from netreveal.provenance import provenance
from netreveal.results import register


@register
@dataclasses.dataclass
class TcavResult:
    """TCAV of one concept.

    ``scores`` / ``random_scores`` (layers, classes, runs): TCAV scores with CAVs of the concept
    vs random sets and of random vs random sets; ``p_values`` and ``significant`` (layers,
    classes) from the two-sided t-test at ``params['alpha']``; ``cav_accuracy`` /
    ``random_accuracy`` (layers, runs): held-out accuracy of each linear classifier.
    """

    concept: str
    layers: list[str]
    classes: list[int]
    scores: torch.Tensor
    random_scores: torch.Tensor
    p_values: torch.Tensor
    significant: torch.Tensor
    cav_accuracy: torch.Tensor
    random_accuracy: torch.Tensor
    params: dict
    provenance: dict
    class_names: list[str] | None = None

    def mean_scores(self) -> torch.Tensor:
        """(layers, classes) mean TCAV score over runs."""
        return self.scores.mean(dim=-1)

    def rows(self) -> list[dict]:
        """One plain row per layer and class (for tables and JSON); ``direction`` says whether
        the concept scores above (positive) or below (negative) the random runs."""
        out = []
        for li, layer in enumerate(self.layers):
            for ci, cls in enumerate(self.classes):
                out.append({
                    "concept": self.concept,
                    "layer": layer,
                    "class": self.class_names[ci] if self.class_names else cls,
                    "tcav": float(self.scores[li, ci].mean()),
                    "tcav_std": float(self.scores[li, ci].std()) if self.scores.shape[-1] > 1 else 0.0,
                    "random": float(self.random_scores[li, ci].mean()),
                    "p_value": float(self.p_values[li, ci]),
                    "significant": bool(self.significant[li, ci]),
                    "direction": "positive"
                    if self.scores[li, ci].mean() > self.random_scores[li, ci].mean()
                    else "negative",
                    "cav_accuracy": float(self.cav_accuracy[li].mean()),
                })
        return out


# ---------------------------------------------------------------- concept and random image sets


def _soft_masks(maps: torch.Tensor, size: tuple[int, int], fraction: float, sigma: float) -> torch.Tensor:
    maps = upsample(maps.float(), size)
    region = top_region(maps, fraction).float()[:, None]
    if sigma > 0:
        region = gaussian_blur(region, int(4 * sigma) | 1, sigma).clamp(0, 1)
    return region


def concept_images(
    images: torch.Tensor,
    maps: torch.Tensor,
    fraction: float = 0.13,
    baseline: str | torch.Tensor = "blur",
    sigma: float | None = None,
) -> torch.Tensor:
    """The images (N, 3, H, W) kept only on the top ``fraction`` of their maps (N, h, w) and
    replaced by ``baseline`` elsewhere (blur, black, mean or a tensor); the mask edge is softened
    with a Gaussian of ``sigma`` pixels (default H / 64)."""
    if images.dim() != 4 or maps.dim() != 3 or images.shape[0] != maps.shape[0]:
        raise NetrevealError("concept_images needs images (N, 3, H, W) and one map (N, h, w) each")
    size = (int(images.shape[-2]), int(images.shape[-1]))
    sigma = size[0] / 64 if sigma is None else float(sigma)
    mask = _soft_masks(maps.to(images.device), size, fraction, sigma)
    base = make_baseline(images, baseline)
    return images * mask + base * (1 - mask)


def random_region_images(
    pool: torch.Tensor,
    n: int,
    fraction: float = 0.13,
    baseline: str | torch.Tensor = "blur",
    seed: int = 0,
    grid: int = 4,
) -> torch.Tensor:
    """``n`` random images of ``pool`` (M, 3, H, W), each kept on the top ``fraction`` of a
    random smooth map (uniform noise on a ``grid`` x ``grid`` lattice, upsampled): the random
    counterpart of :func:`concept_images`."""
    if pool.dim() != 4 or pool.shape[0] == 0:
        raise NetrevealError("the random pool must be a non-empty (M, 3, H, W) tensor")
    gen = torch.Generator().manual_seed(int(seed))
    pick = torch.randint(pool.shape[0], (n,), generator=gen)
    maps = torch.rand(n, grid, grid, generator=gen)
    return concept_images(pool[pick.to(pool.device)], maps.to(pool.device), fraction, baseline)


# ---------------------------------------------------------------- activations, gradients, CAVs


def layer_activations(model: nn.Module, images: torch.Tensor, layers: Sequence[str],
                      batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Flattened activations (N, D) of ``images`` at each named layer, in batches."""
    out: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    for start in range(0, images.shape[0], batch_size):
        cap = capture(model, images[start : start + batch_size], layers, backward=False)
        for name in layers:
            out[name].append(cap.activations[name].flatten(1))
    return {name: torch.cat(parts) for name, parts in out.items()}


def layer_gradients(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layers: Sequence[str],
                    batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Flattened gradients (N, D) of each image's ``targets`` logit at each named layer."""
    out: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    for start in range(0, images.shape[0], batch_size):
        stop = start + batch_size
        cap = capture(model, images[start:stop], layers, target=targets[start:stop])
        for name in layers:
            out[name].append(cap.gradients[name].flatten(1))
    return {name: torch.cat(parts) for name, parts in out.items()}


def _given(tensors: Mapping[str, torch.Tensor] | None, names: Sequence[str], rows: int,
           what: str) -> dict[str, torch.Tensor] | None:
    """Precomputed per-layer tensors, checked to cover ``names`` with ``rows`` rows each."""
    if tensors is None:
        return None
    missing = [n for n in names if n not in tensors]
    if missing:
        raise NetrevealError(f"{what} has no layer {missing[0]!r}")
    wrong = [n for n in names if tensors[n].dim() != 2 or tensors[n].shape[0] != rows]
    if wrong:
        raise NetrevealError(f"{what}[{wrong[0]!r}] must be ({rows}, D), got {tuple(tensors[wrong[0]].shape)}")
    return {n: tensors[n] for n in names}


def train_cav(
    positives: torch.Tensor,
    negatives: torch.Tensor,
    l2: float = 0.01,
    test_fraction: float = 0.33,
    seed: int = 0,
    max_iter: int = 200,
) -> tuple[torch.Tensor, float]:
    """A unit CAV (dim,) separating ``positives`` (n, dim) from ``negatives`` (m, dim): L2
    regularised logistic regression (L-BFGS) on a random ``1 - test_fraction`` of each set, and
    its accuracy on the rest (NaN when nothing is held out)."""
    x = torch.cat([positives, negatives]).double()
    y = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))]).double().to(x.device)
    gen = torch.Generator().manual_seed(int(seed))
    test = torch.zeros(len(x), dtype=torch.bool)
    for lo, hi in ((0, len(positives)), (len(positives), len(x))):
        k = round((hi - lo) * test_fraction)
        if 0 < k < hi - lo:
            test[lo + torch.randperm(hi - lo, generator=gen)[:k]] = True
    test = test.to(x.device)
    scale = x[~test].norm(dim=1).mean().clamp_min(1e-12)  # a scalar: the CAV direction is unchanged
    xs = x / scale
    w = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device, requires_grad=True)
    b = torch.zeros((), dtype=x.dtype, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")
    train_x, train_y = xs[~test], y[~test]

    def closure():
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(train_x @ w + b, train_y)
        loss = loss + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w = w.detach()
    acc = math.nan
    if bool(test.any()):
        acc = float((((xs[test] @ w + b.detach()) > 0).double() == y[test]).double().mean())
    return (w / w.norm().clamp_min(1e-12)).float(), acc


def _ttest(a: torch.Tensor, b: torch.Tensor) -> float:
    from scipy.stats import ttest_ind

    a_np, b_np = a.double().numpy(), b.double().numpy()
    if a_np.std() == 0 and b_np.std() == 0:
        return 1.0 if a_np.mean() == b_np.mean() else 0.0
    with warnings.catch_warnings():  # one constant sample (e.g. all scores 1) is a valid case
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ttest_ind(a_np, b_np).pvalue)


def _sets(n_pool: int, size: int, rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """``count`` random index sets of ``size`` from the pool, disjoint when the pool allows."""
    if size * count <= n_pool:
        perm = rng.permutation(n_pool)
        return [perm[i * size : (i + 1) * size] for i in range(count)]
    return [rng.choice(n_pool, size=size, replace=False) for _ in range(count)]


def tcav(
    model: nn.Module,
    concept: torch.Tensor,
    randoms: torch.Tensor,
    images: torch.Tensor,
    targets: Sequence[int] | torch.Tensor,
    layers: str | nn.Module | Sequence[str | nn.Module],
    *,
    name: str = "concept",
    n_runs: int = 10,
    set_size: int | None = None,
    alpha: float = 0.05,
    bonferroni: bool = False,
    l2: float = 0.01,
    test_fraction: float = 0.33,
    batch_size: int = 32,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    random_activations: Mapping[str, torch.Tensor] | None = None,
    image_gradients: Mapping[str, torch.Tensor] | None = None,
    random_cavs: dict | None = None,
    progress: bool = False,
) -> TcavResult:
    """TCAV of a concept for every class in ``targets`` at every layer.

    ``concept`` (N, 3, H, W): images of the concept; ``randoms`` (M, 3, H, W): the pool random sets
    are drawn from (``set_size`` images each, default N; best M >= 2 * set_size * n_runs for
    disjoint sets); ``images`` (K, 3, H, W) with their class ``targets`` (K,): the images TCAV
    scores are computed on, per class. ``layers``: any layer spec of
    :func:`netreveal.model.hooks.capture`. Activations and gradients are captured once, in batches
    of ``batch_size``. ``bonferroni`` divides ``alpha`` by the number of (layer, class) tests.

    Several concepts tested against one random pool on one image set can share that work: pass
    ``random_activations`` (of ``randoms``) and ``image_gradients`` (of ``images`` for ``targets``)
    from :func:`layer_activations` / :func:`layer_gradients`, keyed by every tested layer's name,
    and one ``random_cavs`` dict: random-vs-random CAVs are trained once per layer and pair of
    random sets and reused from it (pass it only to calls that share the random pool).
    """
    if n_runs < 2:
        raise NetrevealError("TCAV needs at least two runs for its significance test")
    for what, t in (("concept", concept), ("randoms", randoms), ("images", images)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[0] == 0:
            raise NetrevealError(f"{what} must be a non-empty (N, 3, H, W) tensor")
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if targets.numel() != images.shape[0]:
        raise NetrevealError(f"got {targets.numel()} targets for {images.shape[0]} images")
    set_size = concept.shape[0] if set_size is None else int(set_size)
    if not 2 <= set_size <= randoms.shape[0]:
        raise NetrevealError(f"set_size must be in 2..{randoms.shape[0]} (the random pool), got {set_size}")
    device = model_device(model)
    names = [n for n, _ in resolve_layers(model, layers, example=images[:1].to(device))]
    acts_c = layer_activations(model, concept.to(device), names, batch_size)
    acts_r = _given(random_activations, names, randoms.shape[0], "random_activations")
    if acts_r is None:
        acts_r = layer_activations(model, randoms.to(device), names, batch_size)
    grads = _given(image_gradients, names, images.shape[0], "image_gradients")
    if grads is None:
        grads = layer_gradients(model, images.to(device), targets.to(device), names, batch_size)
    classes = sorted(set(targets.tolist()))
    rng = np.random.default_rng(seed)
    run_sets = [_sets(randoms.shape[0], set_size, rng, 2) for _ in range(n_runs)]
    n_layers, n_cls = len(names), len(classes)
    scores = torch.zeros(n_layers, n_cls, n_runs)
    rscores = torch.zeros(n_layers, n_cls, n_runs)
    acc = torch.zeros(n_layers, n_runs)
    racc = torch.zeros(n_layers, n_runs)
    masks = [(targets == c).to(device) for c in classes]
    steps = tqdm(total=n_layers * n_runs, desc="TCAV", disable=not progress)
    for li, layer in enumerate(names):
        for r, (set_a, set_b) in enumerate(run_sets):
            ra = acts_r[layer][torch.as_tensor(set_a, device=device)]
            rb = acts_r[layer][torch.as_tensor(set_b, device=device)]
            cav, acc[li, r] = train_cav(acts_c[layer], ra, l2, test_fraction, seed + r)
            key = (layer, tuple(set_a.tolist()), tuple(set_b.tolist()), l2, test_fraction, seed + r)
            if random_cavs is not None and key in random_cavs:
                rcav, racc[li, r] = random_cavs[key]
            else:
                rcav, racc[li, r] = trained = train_cav(ra, rb, l2, test_fraction, seed + r)
                if random_cavs is not None:
                    random_cavs[key] = trained
            deriv = grads[layer] @ cav.to(grads[layer].dtype)
            rderiv = grads[layer] @ rcav.to(grads[layer].dtype)
            for ci, m in enumerate(masks):
                scores[li, ci, r] = (deriv[m] > 0).float().mean().cpu()
                rscores[li, ci, r] = (rderiv[m] > 0).float().mean().cpu()
            steps.update()
    steps.close()
    level = alpha / (n_layers * n_cls) if bonferroni else alpha
    p = torch.tensor([[_ttest(scores[li, ci], rscores[li, ci]) for ci in range(n_cls)]
                      for li in range(n_layers)], dtype=torch.float64)
    if class_names is not None:
        class_names = [str(class_names[c]) for c in classes]
    return TcavResult(
        concept=name,
        layers=names,
        classes=classes,
        scores=scores,
        random_scores=rscores,
        p_values=p,
        significant=p < level,
        cav_accuracy=acc,
        random_accuracy=racc,
        params={
            "n_runs": n_runs,
            "set_size": set_size,
            "alpha": alpha,
            "bonferroni": bonferroni,
            "level": level,
            "l2": l2,
            "test_fraction": test_fraction,
            "concept_images": int(concept.shape[0]),
            "random_pool": int(randoms.shape[0]),
            "classifier": "logistic regression (L-BFGS, L2), activations scaled by their mean norm",
            "test": "two-sided t-test (scipy.stats.ttest_ind) of concept vs random-vs-random scores",
        },
        provenance=provenance(seed=seed),
        class_names=class_names,
    )
