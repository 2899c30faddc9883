"""Model loading: torchvision names, local checkpoints, factories, and the errors for bad input."""

import pytest
import torch
from safetensors.torch import save_file

from netreveal.errors import NetrevealError
from netreveal.model.adapter import NormalizedModel, load_model
from netreveal.model.layers import resolve_layers


def test_torchvision_name_with_local_state_dict_round_trips(tmp_path):
    first = load_model("resnet18", num_classes=4)
    path = tmp_path / "r18.pt"
    torch.save({"state_dict": first.model.netreveal_inner.state_dict()}, path)
    second = load_model("torchvision:resnet18", path, num_classes=4)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(first.model(x), second.model(x), atol=1e-6)
    assert second.class_names == [f"class_{i}" for i in range(4)]


def test_safetensors_checkpoint_and_class_names_file(tmp_path):
    base = load_model("resnet18", num_classes=3)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in base.model.netreveal_inner.state_dict().items()}, str(path))
    names = tmp_path / "classes.txt"
    names.write_text("cat\ndog\nfox\n")
    adapter = load_model("resnet18", path, class_names=str(names))
    assert adapter.class_names == ["cat", "dog", "fox"]


def test_normalisation_is_inside_the_model():
    adapter = load_model("resnet18", num_classes=2)
    assert isinstance(adapter.model, NormalizedModel)
    x = torch.rand(1, 3, 32, 32)
    inner = adapter.model.netreveal_inner.eval()
    mean = torch.tensor(adapter.mean).view(1, 3, 1, 1)
    std = torch.tensor(adapter.std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(adapter.model(x), inner((x - mean) / std), atol=1e-6)


def test_layer_names_are_those_of_the_wrapped_network():
    adapter = load_model("resnet18", num_classes=2)
    assert resolve_layers(adapter.model, "layer4.1.conv2")[0][0] == "layer4.1.conv2"
    names = [n for n, _ in resolve_layers(adapter.model, "last:2", torch.rand(1, 3, 64, 64))]
    assert names == ["layer4.1.conv1", "layer4.1.conv2"]


def test_factory_spec():
    adapter = load_model("torchvision.models:resnet18", num_classes=5)
    assert len(adapter.class_names) == 5


def test_preprocess_resizes_and_crops():
    from PIL import Image

    adapter = load_model("resnet18", num_classes=2, input_size=64)
    tensor = adapter.preprocess(Image.new("RGB", (200, 100), (255, 0, 0)))
    assert tensor.shape == (3, 64, 64)
    assert torch.allclose(tensor[0], torch.ones(64, 64))


@pytest.mark.parametrize(
    "spec, weights, message",
    [
        ("resnet18", "MISSING.pt", "checkpoint not found"),
        ("no_such_net", None, "unknown model"),
        ("resnet18", "NOT_A_WEIGHT_NAME", "neither a file nor a weight name"),
    ],
)
def test_load_errors(spec, weights, message):
    with pytest.raises(NetrevealError, match=message):
        load_model(spec, weights)


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(NetrevealError, match="not a checkpoint"):
        load_model("resnet18", bad)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x00" * 20)
    with pytest.raises(NetrevealError, match="safetensors"):
        load_model("resnet18", bad_st)


def test_architecture_mismatch_names_the_difference(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(load_model("resnet18", num_classes=4).model.netreveal_inner.state_dict(), path)
    with pytest.raises(NetrevealError, match=r"does not match resnet34.*missing key"):
        load_model("resnet34", path, num_classes=4)
    with pytest.raises(NetrevealError, match=r"shape mismatch.*fc.weight"):
        load_model("resnet18", path, num_classes=7)


def test_pickled_objects_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": Evil()}, path)
    with pytest.raises(NetrevealError, match="not a checkpoint"):
        load_model("resnet18", path)
