"""Integrated gradients, occlusion, LIME, KernelSHAP and RISE read their targets like every other
method (netreveal.targets.resolve_targets): None is the predicted class, an int is used for every
image, one index per image, out-of-range indices and callables are one-line errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netreveal.attribution.baselines import integrated_gradients
from netreveal.attribution.captum_baselines import kernel_shap, lime, occlusion
from netreveal.attribution.rise import rise
from netreveal.errors import NetrevealError

SIZE = 16
METHODS = {
    "ig": lambda m, x, t: integrated_gradients(m, x, t, steps=2),
    "occlusion": lambda m, x, t: occlusion(m, x, t, window=8, stride=8),
    "lime": lambda m, x, t: lime(m, x, t, n_samples=8, segments=4),
    "kernelshap": lambda m, x, t: kernel_shap(m, x, t, n_samples=8, segments=4),
    "rise": lambda m, x, t: rise(m, x, t, n_masks=8, cell=2),
}


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3)).eval()


@pytest.fixture(scope="module")
def model_and_images():
    model = small_cnn()
    images = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        probs = model(images).softmax(1)
    return model, images, probs


@pytest.mark.parametrize("name", sorted(METHODS))
def test_targets_are_resolved_like_every_other_method(name, model_and_images):
    model, images, probs = model_and_images
    explain = METHODS[name]
    predicted = explain(model, images, None)
    assert predicted.targets.tolist() == probs.argmax(1).tolist()
    torch.testing.assert_close(predicted.target_probs, probs.max(1).values, rtol=1e-4, atol=1e-6)
    assert explain(model, images, 2).targets.tolist() == [2, 2, 2]
    given = explain(model, images, [1, 0, 2])
    assert given.targets.tolist() == [1, 0, 2]
    torch.testing.assert_close(given.target_probs, probs[[0, 1, 2], [1, 0, 2]], rtol=1e-4, atol=1e-6)
    with pytest.raises(NetrevealError, match="class index 3 out of range"):
        explain(model, images, [0, 3, 1])
    with pytest.raises(NetrevealError, match="got 2 targets for a batch of 3 images"):
        explain(model, images, [0, 1])
    with pytest.raises(NetrevealError, match="callable target is not supported"):
        explain(model, images, lambda logits: logits[:, 0])
