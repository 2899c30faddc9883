"""TCAV (Kim et al. 2018): does a named concept drive a class? Validates label concepts.

A concept is a set of images showing it; here, typically, the regions its INV cluster maps reveal
(:func:`concept_images`: each image kept where its map is strongest, on a blurred background).
Per layer, a linear classifier separates the concept's activations from those of a random set;
its normal is the concept activation vector (CAV; :mod:`netreveal.concepts.cav`: a hinge-loss
linear SVM by SGD as tensorflow/tcav and captum train it, or logistic regression). The TCAV score
of a class is the share of the class's images whose class logit grows along the CAV (positive
directional derivative). The experiment runs ``n_runs`` times against different random sets, and
as many times for random sets against each other; a two-sided t-test between the two score samples
marks a concept as significant for a class and layer.

A class needs enough images for that verdict to speak for the class (:func:`min_class_images_for`: 6
at the usual level 0.05). With fewer, the score is reported with a warning and never marked
significant: the runs then only measure how stable the CAV is on those few images.

Random sets are drawn from a pool of images. For concepts built from map regions, build the pool
with :func:`random_region_images` (random regions of random images on the same background), so a
CAV can only tell the concept from chance by what the regions show, not by the masking itself.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.concepts.cav import check_classifier, describe_classifier, train_cav
from netreveal.errors import NetrevealError
from netreveal.imaging import gaussian_blur, make_baseline, upsample
from netreveal.metrics.alignment import top_region
from netreveal.model.hooks import capture, model_device
from netreveal.model.layers import resolve_layers
from netreveal.provenance import provenance
from netreveal.results import register


class TcavWarning(UserWarning):
    """A TCAV result that cannot say what it seems to (e.g. a class with too few images)."""


@register
@dataclasses.dataclass
class TcavResult:
    """TCAV of one concept.

    ``scores`` / ``random_scores`` (layers, classes, runs): TCAV scores with CAVs of the concept
    vs random sets and of random vs random sets; ``p_values`` and ``significant`` (layers,
    classes) from the two-sided t-test at ``params['level']``, never significant for a class with
    fewer than ``params['min_class_images']`` images; ``cav_accuracy`` / ``random_accuracy``
    (layers, runs): held-out accuracy of each linear classifier. ``class_counts``: images per
    class; ``warnings``: one line per class too small to test.
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
    class_counts: list[int] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    def too_few_images(self, class_index: int) -> bool:
        """True when the class at ``class_index`` has too few images to be tested."""
        minimum = self.params.get("min_class_images", 0)
        return bool(self.class_counts) and self.class_counts[class_index] < minimum

    def mean_scores(self) -> torch.Tensor:
        """(layers, classes) mean TCAV score over runs."""
        return self.scores.mean(dim=-1)

    def rows(self) -> list[dict]:
        """One plain row per layer and class (for tables and JSON); ``direction`` says whether
        the concept scores above (positive) or below (negative) the random runs; ``warning`` is
        non-empty for a class with too few images to test."""
        out = []
        for li, layer in enumerate(self.layers):
            for ci, cls in enumerate(self.classes):
                too_few = self.too_few_images(ci)
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
                    "class_images": self.class_counts[ci] if self.class_counts else None,
                    "warning": too_few_warning(self.class_counts[ci], self.params["min_class_images"])
                    if too_few else "",
                })
        return out


def min_class_images_for(level: float) -> int:
    """Fewest class images for which a TCAV verdict can be significant at ``level``: the smallest n
    with 2 * 0.5**n < level (6 at 0.05).

    Whether a class responds to a concept is a statement about its images. Under the null each
    image's directional derivative is as likely positive as negative, so even the most extreme
    outcome, all n images on one side, has probability 2 * 0.5**n (a two-sided sign test over the
    images); with fewer images than this no outcome is significant, however many runs agree. The
    t-test over runs cannot see this: its spread comes from the CAVs only (a 1-image class whose one
    image agreed with every CAV came out significant).
    """
    if not 0 < level < 1:
        raise NetrevealError(f"the test level must be in (0, 1), got {level}")
    n = 1
    while 2 * 0.5**n >= level:
        n += 1
    return n


def too_few_warning(count: int, minimum: int) -> str:
    """The warning for a class of ``count`` images below ``minimum``."""
    return (f"{count} class image(s), fewer than {minimum}: the score is shown but not tested "
            "(no outcome on so few images could be significant)")


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


def random_run_sets(n_pool: int, set_size: int, n_runs: int, seed: int) -> list[list[np.ndarray]]:
    """The two random index sets (into the pool) of each run, as :func:`tcav` draws them: the
    concept is trained against the first, and the first against the second for the random runs."""
    rng = np.random.default_rng(seed)
    return [_sets(n_pool, set_size, rng, 2) for _ in range(n_runs)]


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
    classifier: str = "hinge",
    min_class_images: int | None = None,
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
    ``classifier``: ``hinge`` (the reference SGD linear SVM, default) or ``logistic``, with L2
    strength ``l2`` (see :mod:`netreveal.concepts.cav`). ``min_class_images`` (default: from the
    test level, :func:`min_class_images_for`): a class with fewer images gets a warning and is never
    marked significant.

    Several concepts tested against one random pool on one image set can share that work: pass
    ``random_activations`` (of ``randoms``) and ``image_gradients`` (of ``images`` for ``targets``)
    from :func:`layer_activations` / :func:`layer_gradients`, keyed by every tested layer's name,
    and one ``random_cavs`` dict: random-vs-random CAVs are trained once per layer and pair of
    random sets and reused from it (pass it only to calls that share the random pool).
    """
    if n_runs < 2:
        raise NetrevealError("TCAV needs at least two runs for its significance test")
    check_classifier(classifier)
    if min_class_images is not None and min_class_images < 1:
        raise NetrevealError(f"min_class_images must be at least 1, got {min_class_images}")
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
    run_sets = random_run_sets(randoms.shape[0], set_size, n_runs, seed)
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
            cav, acc[li, r] = train_cav(acts_c[layer], ra, l2, test_fraction, seed + r, classifier)
            key = (layer, tuple(set_a.tolist()), tuple(set_b.tolist()), l2, test_fraction, seed + r, classifier)
            if random_cavs is not None and key in random_cavs:
                rcav, racc[li, r] = random_cavs[key]
            else:
                rcav, racc[li, r] = trained = train_cav(ra, rb, l2, test_fraction, seed + r, classifier)
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
    counts = [int(m.sum()) for m in masks]
    minimum = min_class_images_for(level) if min_class_images is None else int(min_class_images)
    too_few = torch.tensor([n < minimum for n in counts], dtype=torch.bool)
    names_out = class_names or [str(c) for c in classes]
    notes = [f"class {names_out[ci]}: {too_few_warning(n, minimum)}" for ci, n in enumerate(counts) if n < minimum]
    for note in notes:
        warnings.warn(f"TCAV of {name!r}: {note}", TcavWarning, stacklevel=2)
    return TcavResult(
        concept=name,
        layers=names,
        classes=classes,
        scores=scores,
        random_scores=rscores,
        p_values=p,
        significant=(p < level) & ~too_few[None, :],
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
            "cav_classifier": classifier,
            "classifier": describe_classifier(classifier, l2),
            "test": "two-sided t-test (scipy.stats.ttest_ind) of concept vs random-vs-random scores",
            "min_class_images": minimum,
        },
        provenance=provenance(seed=seed),
        class_names=class_names,
        class_counts=counts,
        warnings=notes,
    )

