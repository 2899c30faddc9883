"""``--inference onnxruntime``: the forward-only methods score images with the model's ONNX Runtime
twin, which returns the model's logits within float rounding at any batch size, is exported once
per model and input shape, and gives the same explanations as PyTorch."""

from __future__ import annotations

import pytest
import torch
from small_models import adapter
from torch import nn

from netreveal.errors import NetrevealError
from netreveal.methods.registry import get_methods
from netreveal.model.onnx_runtime import scoring_model
from netreveal.sag import structured_attention_graph


@pytest.fixture(scope="module")
def resnet():
    return adapter("resnet18")


def images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", ["demo-cnn", "resnet18", "vit-timm"])
def test_the_twin_returns_the_models_logits_at_every_batch_size(family):
    a = adapter(family)
    x = images(37, a.input_size)
    twin = scoring_model(a.model, x[:1], "onnxruntime")
    assert twin is not a.model
    with torch.inference_mode():
        expected = a.model(x)
    for n in (1, 3, 37):
        got = twin(x[:n])
        assert got.shape == expected[:n].shape
        torch.testing.assert_close(got, expected[:n], rtol=1e-4, atol=1e-4)


class RecordingSession:
    """An ONNX Runtime session stand-in that records the batch size of every run."""

    def __init__(self, session):
        self.session, self.batches = session, []

    def run(self, names, feeds):
        self.batches.extend(len(v) for v in feeds.values())
        return self.session.run(names, feeds)


def test_the_twin_runs_a_batch_in_chunks_with_the_same_logits(resnet):
    x = images(21, resnet.input_size)
    twin = scoring_model(resnet.model, x[:1], "onnxruntime")
    whole = twin(x)
    recorder, default = RecordingSession(twin._session), twin.chunk_size
    twin._session, twin.chunk_size = recorder, 5
    try:
        chunked = twin(x)
    finally:
        twin._session, twin.chunk_size = recorder.session, default
    assert recorder.batches == [5, 5, 5, 5, 1]
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)


def test_one_export_per_model_and_input_shape(resnet):
    x = images(2, resnet.input_size)
    twin = scoring_model(resnet.model, x, "onnxruntime")
    assert scoring_model(resnet.model, images(5, resnet.input_size, seed=1), "onnxruntime") is twin
    other = scoring_model(resnet.model, images(1, 32), "onnxruntime")
    assert other is not twin
    with pytest.raises(NetrevealError, match=r"takes images of shape \(3, 64, 64\), got \(3, 32, 32\)"):
        twin(images(1, 32))
    assert scoring_model(resnet.model, x, "torch") is resnet.model


def test_bad_choices_and_devices_are_one_clear_error(resnet):
    with pytest.raises(NetrevealError, match="--inference must be one of torch, onnxruntime, got 'tensorrt'"):
        scoring_model(resnet.model, images(1, 64), "tensorrt")
    on_meta = nn.Linear(4, 2, device="meta")
    with pytest.raises(NetrevealError, match="runs on the CPU, and the model is on meta"):
        scoring_model(on_meta, torch.zeros(1, 4), "onnxruntime")


class Eigenvalues(nn.Module):
    """An operator ONNX has no translation for."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        return torch.linalg.eigvalsh(flat @ flat.transpose(1, 2))


class CountsCalls(nn.Module):
    """A forward pass that reads Python state: the export bakes the count into a constant."""

    calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x.mean((2, 3)) * self.calls


def test_a_model_that_cannot_be_exported_is_one_clear_error():
    with pytest.raises(NetrevealError, match=r"cannot be exported to ONNX .*\(No ONNX function found for .*eigh.*"
                                             r"run with --inference torch"):
        scoring_model(Eigenvalues(), torch.rand(1, 3, 8, 8), "onnxruntime")


def test_an_export_that_does_not_reproduce_the_model_is_one_clear_error():
    with pytest.raises(NetrevealError, match="ONNX export does not reproduce its outputs .*run with --inference torch"):
        scoring_model(CountsCalls(), torch.rand(1, 3, 8, 8), "onnxruntime")


@pytest.mark.parametrize("name", ["lime", "kernelshap", "rise", "occlusion"])
def test_forward_only_methods_give_the_same_maps_and_record_the_runtime(resnet, name):
    (method,) = get_methods(name)
    x = images(2, resnet.input_size, seed=3)
    targets = torch.tensor([1, 4])
    settings = {"samples": 64, "segments": 12, "rise_masks": 64, "batch_size": 4, "progress": False}
    plain = method.run(resnet, x, targets, method.options(settings))
    twin = method.run(resnet, x, targets, method.options(settings, inference="onnxruntime"))
    assert plain.params["inference"] == "torch" and twin.params["inference"] == "onnxruntime"
    torch.testing.assert_close(twin.maps, plain.maps, rtol=0, atol=2e-3)
    torch.testing.assert_close(twin.target_probs, plain.target_probs, rtol=1e-4, atol=1e-5)


def test_sag_scores_patch_sets_with_the_twin_and_finds_the_same_graph(resnet):
    image = images(1, resnet.input_size, seed=5)[0]
    saliency = torch.rand(4, 4, generator=torch.Generator().manual_seed(6))
    settings = {"grid": 4, "beam_width": 2, "saliency": saliency, "baseline": "black", "threshold": 0.2}
    plain = structured_attention_graph(resnet.model, image, 2, **settings)
    twin = structured_attention_graph(resnet.model, image, 2, inference="onnxruntime", **settings)
    assert twin.params["inference"] == "onnxruntime" and plain.params["inference"] == "torch"
    assert twin.roots == plain.roots and twin.shown == plain.shown
    assert [n.patches for n in twin.nodes] == [n.patches for n in plain.nodes]
    assert twin.forward_passes == plain.forward_passes
    torch.testing.assert_close(torch.tensor(twin.root_probs), torch.tensor(plain.root_probs), rtol=0, atol=1e-5)
