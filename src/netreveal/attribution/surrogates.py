"""LIME and KernelSHAP coefficients with batched perturbations: captum's samples, our own batching.

captum's ``Lime`` / ``KernelShap`` (with ``perturbations_per_eval``) batch only the forward passes:
each perturbed image is still built in Python one sample at a time (an index into the superpixel
labels, two products and a sum over the image, and a similarity per sample), and each image's
samples go through the model on their own, ending in a part-filled pass. On a CPU shared by other
work those small per-sample steps cost about as much as the forward passes, so here:

- the 0/1 samples are drawn exactly as captum draws them (torch's global generator, seeded per
  image, one sample at a time: the draw order is what lets a seed give captum's samples);
- the perturbed images of all images form one stream, ``batch_size`` model inputs per pass, each
  pass built in one step (image where the sample keeps a superpixel, baseline elsewhere);
- the distinct samples of an image are evaluated once (KernelSHAP draws coalitions of one or of all
  but one superpixel many times);
- the surrogate is the scikit-learn model captum fits (ridge for LIME, least squares for
  KernelSHAP) on the same samples, scores and weights.

:func:`reference_coefficients` runs captum one image at a time as netreveal did before: the
per-sample reference the batched version must equal.
"""

from __future__ import annotations

import bisect

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.attribution.captum_baselines import LIME_KERNEL_WIDTH, LIME_RIDGE_ALPHA, _lime_similarity
from netreveal.attribution.perturb import conv_layout, probabilities, seeded, target_probs

SHAP_ENDPOINT_WEIGHT = 1e6  # captum's weight of the empty and the full coalition (all others weigh 1)


def lime_samples(n_samples: int, features: int) -> torch.Tensor:
    """``n_samples`` LIME samples (n, K) of 0/1: each superpixel kept with probability 1/2, drawn from
    torch's global generator one sample at a time as captum's default sampler draws them."""
    half = torch.full((1, features), 0.5)
    return torch.cat([torch.bernoulli(half) for _ in range(n_samples)]).long()


def kernel_shap_samples(n_samples: int, features: int) -> torch.Tensor:
    """``n_samples`` KernelSHAP coalitions (n, K) of 0/1, as captum draws them: all kept, none kept,
    then a size k with probability (K - 1) / (k (K - k)) and the k largest of K normal draws."""
    rows = [torch.ones(1, features, dtype=torch.long), torch.zeros(1, features, dtype=torch.long)][:n_samples]
    sizes = torch.arange(features, dtype=torch.float)
    probs = torch.tensor(features - 1) / (sizes * (features - sizes))
    probs[0] = 0.0
    size_of = torch.distributions.Categorical(probs)
    while len(rows) < n_samples:
        size = size_of.sample()
        draws = torch.randn(1, features)
        threshold = torch.kthvalue(draws, features - size).values.item()
        rows.append((draws > threshold).long())
    return torch.cat(rows)


def sample_weights(method: str, samples: torch.Tensor) -> torch.Tensor:
    """Regression weights (n,): LIME's exponential kernel on the cosine distance to the all-kept
    sample (as :func:`netreveal.attribution.captum_baselines._lime_similarity`), or KernelSHAP's
    :data:`SHAP_ENDPOINT_WEIGHT` for the empty and full coalitions and 1 elsewhere."""
    kept = samples.float().sum(dim=1)
    features = samples.shape[1]
    if method == "lime":
        distance = 1.0 - torch.sqrt(kept / features)
        return torch.exp(-(distance ** 2) / (2 * LIME_KERNEL_WIDTH ** 2))
    ends = (kept == 0) | (kept == features)
    return torch.where(ends, torch.tensor(SHAP_ENDPOINT_WEIGHT), torch.tensor(1.0))


def fit_surrogate(method: str, samples: torch.Tensor, scores: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Coefficients (K,) of the weighted linear surrogate: ridge (alpha :data:`LIME_RIDGE_ALPHA`) for
    LIME, least squares for KernelSHAP, fitted as captum fits them (float32 data, an intercept)."""
    from sklearn.linear_model import LinearRegression, Ridge

    model = Ridge(alpha=LIME_RIDGE_ALPHA) if method == "lime" else LinearRegression()
    model.fit(samples.float().cpu().numpy(), scores.float().cpu().numpy(), sample_weight=weights.float().cpu().numpy())
    return torch.from_numpy(np.asarray(model.coef_, dtype=np.float32)).reshape(-1)


@torch.no_grad()
def _scores(model: nn.Module, images: torch.Tensor, bases: torch.Tensor, labels: torch.Tensor,
            targets: torch.Tensor, distinct: list[torch.Tensor], batch_size: int, layout: torch.memory_format,
            bar: tqdm) -> list[torch.Tensor]:
    """Target probability of every distinct sample of every image, all images' perturbed copies in
    one stream of ``batch_size`` model inputs per pass."""
    device = images.device
    counts = [len(d) for d in distinct]
    firsts = np.cumsum([0, *counts]).tolist()  # where each image's samples start in the stream
    owner = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(counts)]).to(device)  # one copy
    distinct = [d.to(device).bool() for d in distinct]
    images, bases = images.contiguous(memory_format=layout), bases.contiguous(memory_format=layout)
    flat = torch.empty(len(owner), device=device)
    for start in range(0, len(owner), batch_size):
        stop = min(start + batch_size, len(owner))
        parts, pos = [], start
        while pos < stop:  # the images this pass covers, as ranges known on the host (no device read)
            i = bisect.bisect_right(firsts, pos) - 1
            end = min(stop, firsts[i + 1])
            parts.append(distinct[i][pos - firsts[i]:end - firsts[i]][:, labels[i]])
            pos = end
        keep, who = torch.cat(parts), owner[start:stop]  # (c, H, W), (c,)
        inputs = torch.where(keep[:, None], images[who], bases[who])  # in the layout the model reads
        flat[start:stop] = target_probs(model, inputs, targets[who], layout).float()
        bar.update(stop - start)
    return list(flat.split([len(d) for d in distinct]))


def surrogate_coefficients(
    method: str,
    model: nn.Module,
    images: torch.Tensor,
    bases: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    *,
    n_samples: int,
    seed: int,
    batch_size: int,
    progress: bool = False,
) -> list[torch.Tensor]:
    """Each image's surrogate coefficients (K_i,) for ``method`` ("lime" or "kernelshap"): images
    (B, 3, H, W), their baselines, superpixel labels (B, H, W) numbered 0..K_i-1 and target classes
    (B,); ``n_samples`` samples per image, drawn under ``seed`` for every image."""
    draw = lime_samples if method == "lime" else kernel_shap_samples
    samples, distinct, inverse = [], [], []
    for seg in labels:
        with seeded(seed):
            drawn = draw(n_samples, int(seg.max()) + 1)
        unique, back = torch.unique(drawn, dim=0, return_inverse=True)
        samples.append(drawn)
        distinct.append(unique)
        inverse.append(back)
    layout = conv_layout(model)
    with tqdm(total=sum(len(d) for d in distinct), desc=method, unit="eval", disable=not progress) as bar:
        scores = _scores(model, images, bases, labels, targets, distinct, batch_size, layout, bar)
    return [fit_surrogate(method, s, score[back], sample_weights(method, s))
            for s, score, back in zip(samples, scores, inverse)]


def reference_coefficients(
    method: str,
    model: nn.Module,
    images: torch.Tensor,
    bases: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    *,
    n_samples: int,
    seed: int,
    batch_size: int,
    progress: bool = False,
) -> list[torch.Tensor]:
    """:func:`surrogate_coefficients` through captum's ``Lime`` / ``KernelShap``, one image at a time
    and one perturbed sample at a time, ``batch_size`` perturbations per forward pass."""
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import KernelShap, Lime

    layout = conv_layout(model)

    def forward(z: torch.Tensor) -> torch.Tensor:
        return probabilities(model, z, layout)

    if method == "lime":
        attributor = Lime(forward, interpretable_model=SkLearnRidge(alpha=LIME_RIDGE_ALPHA),
                          similarity_func=_lime_similarity)
    else:
        attributor = KernelShap(forward)
    coefs = []
    with torch.no_grad():
        for i in tqdm(range(len(images)), desc=method, unit="img", disable=not progress):
            with seeded(seed):
                coef = attributor.attribute(images[i:i + 1], baselines=bases[i:i + 1], target=int(targets[i]),
                                            feature_mask=labels[i][None, None], n_samples=n_samples,
                                            perturbations_per_eval=batch_size, return_input_shape=False)
            coefs.append(coef.reshape(-1).float().cpu())
    return coefs
