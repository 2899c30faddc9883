"""What comes with a torchvision or timm model: ImageNet class names, its own preprocessing, and a
warning when it runs with random weights. Nothing here downloads."""

from types import SimpleNamespace

import pytest
import timm
import torch
import torchvision
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from netreveal.cli import main
from netreveal.errors import NetrevealError
from netreveal.model.adapter import ModelAdapter, load_model
from netreveal.model.imagenet import torchvision_defaults

IMAGENET = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]


def test_torchvision_model_has_imagenet_class_names():
    adapter = load_model("resnet18")
    assert adapter.class_names == IMAGENET and len(IMAGENET) == 1000
    assert adapter.class_names[:2] == ["tench", "goldfish"]


def test_explicit_class_names_still_win():
    names = [f"mine {i}" for i in range(1000)]
    assert load_model("resnet18", class_names=names).class_names == names
    assert load_model("resnet18", num_classes=3).class_names == ["class_0", "class_1", "class_2"]


def test_torchvision_preprocessing_is_the_models_own():
    adapter = load_model("efficientnet_b3", num_classes=2)  # trained at 300 px from 320 px, bicubic
    assert (adapter.input_size, adapter.interpolation, adapter.crop_mode) == (300, "bicubic", "center")
    assert adapter.resize_ratio == pytest.approx(300 / 320)
    image = Image.fromarray((torch.rand(240, 400, 3) * 255).byte().numpy())
    resized = TF.resize(image, 320, interpolation=InterpolationMode.BICUBIC, antialias=True)
    expected = TF.center_crop(resized, [300, 300])
    assert torch.equal(adapter.preprocess(image), TF.to_tensor(expected))


def test_torchvision_vit_without_weights_takes_the_size_it_was_built_for():
    # vit_h_14's DEFAULT weights are 518 px; a fresh vit_h_14 (632M parameters, too big to build here) is 224 px
    fresh, default = SimpleNamespace(image_size=224), SimpleNamespace(image_size=518)
    prep, names = torchvision_defaults("vit_h_14", None, fresh)
    assert (prep.input_size, prep.resize_ratio, prep.interpolation) == (224, 1.0, "bicubic") and names == IMAGENET
    assert torchvision_defaults("vit_h_14", None, default)[0].input_size == 518
    assert torchvision_defaults("vit_h_14", "IMAGENET1K_SWAG_E2E_V1", fresh)[0].input_size == 518  # named wins
    assert load_model("vit_b_16", num_classes=2).input_size == 224


def test_timm_vit_brings_its_data_config_and_imagenet_names():
    adapter = load_model("timm:vit_tiny_patch16_224")
    assert adapter.mean == (0.5, 0.5, 0.5) and adapter.std == (0.5, 0.5, 0.5)
    assert (adapter.input_size, adapter.interpolation) == (224, "bicubic")
    assert adapter.resize_ratio == pytest.approx(0.9)
    assert len(adapter.class_names) == 1000
    assert adapter.class_names[:3] == ["tench", "goldfish", "great white shark"]
    with torch.no_grad():
        assert adapter.model(torch.rand(1, 3, 224, 224)).shape == (1, 1000)


def test_timm_imagenet21k_names_and_custom_heads():
    adapter = load_model("timm:vit_tiny_patch16_224.augreg_in21k")
    assert len(adapter.class_names) == 21843
    assert adapter.class_names[:3] == ["organism", "benthos", "heterotroph"] and adapter.class_names[-1] == "knothole"
    assert load_model("timm:efficientnet_lite0", num_classes=4).class_names == [f"class_{i}" for i in range(4)]


def test_timm_squash_crop_mode_is_kept():
    name = next(n for n in timm.list_pretrained()
                if getattr(timm.models.get_pretrained_cfg(n), "crop_mode", "center") == "squash"
                and n.startswith(("resnet", "efficientnet", "mobilenet", "convnext_atto", "regnet")))
    adapter = load_model(f"timm:{name}", num_classes=2)
    assert adapter.crop_mode == "squash"


def _adapter(crop_mode: str, ratio: float = 1.0) -> ModelAdapter:
    return ModelAdapter(torch.nn.Identity(), "toy", 32, ["a"], resize_ratio=ratio, crop_mode=crop_mode)


def _left_red_image() -> Image.Image:
    image = Image.new("RGB", (100, 50), (0, 255, 0))  # wide, green, the left fifth red
    image.paste((255, 0, 0), (0, 0, 20, 50))
    return image


def test_crop_modes():
    center = _adapter("center").preprocess(_left_red_image())
    assert center.shape == (3, 32, 32) and center[0].max() < 0.1  # the red edge is cropped away
    squash = _adapter("squash").preprocess(_left_red_image())
    assert squash.shape == (3, 32, 32) and squash[0, :, :5].min() > 0.9 and squash[0, :, 8:].max() < 0.1
    border = _adapter("border").preprocess(_left_red_image())
    fill = torch.tensor([round(255 * v) / 255 for v in (0.485, 0.456, 0.406)]).view(3, 1)
    assert border.shape == (3, 32, 32)
    assert torch.allclose(border[:, 0, :], fill.expand(3, 32))  # padded with the mean colour above
    assert torch.allclose(border[:, -1, :], fill.expand(3, 32))  # ... and below
    assert border[0, 16, :5].min() > 0.9  # the whole width is kept


def test_random_weights_are_flagged_in_the_description(tmp_path):
    for spec in ("resnet18", "timm:efficientnet_lite0"):
        adapter = load_model(spec, num_classes=2)
        assert "random weights" in adapter.info["warning"] and spec in adapter.info["warning"]
        assert adapter.describe()["warning"] == adapter.info["warning"]
    path = tmp_path / "w.pt"
    torch.save(load_model("resnet18", num_classes=2).model.netreveal_inner.state_dict(), path)
    assert "warning" not in load_model("resnet18", path, num_classes=2).info
    assert "warning" not in load_model("torchvision.models:resnet18", num_classes=2).info  # a factory loads its own
    assert "warning" not in load_model("demo").info


def test_pretrained_asks_the_library_for_its_weights(monkeypatch):
    calls = []
    real_timm = timm.create_model

    def fake_timm(name, pretrained=False, **kw):
        calls.append(("timm", name, pretrained))
        return real_timm(name, pretrained=False, **kw)

    real_tv = torchvision.models.get_model

    def fake_tv(name, weights=None, **kw):
        calls.append(("torchvision", name, str(weights)))
        return real_tv(name, weights=None, **kw)

    monkeypatch.setattr(timm, "create_model", fake_timm)
    monkeypatch.setattr(torchvision.models, "get_model", fake_tv)
    timm_adapter = load_model("timm:efficientnet_lite0", "pretrained")
    tv_adapter = load_model("resnet18", "pretrained")
    assert ("timm", "efficientnet_lite0", True) in calls
    assert ("torchvision", "resnet18", "ResNet18_Weights.IMAGENET1K_V1") in calls
    assert "warning" not in timm_adapter.info and "warning" not in tv_adapter.info
    assert tv_adapter.class_names == IMAGENET


def test_timm_download_failure_is_one_line(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("could not reach the hub\nsecond line")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(NetrevealError,
                       match=r"^cannot download timm weights of efficientnet_lite0 \(no internet\?\): OSError$"):
        load_model("timm:efficientnet_lite0", "pretrained")


def test_timm_weights_must_be_a_file_or_pretrained():
    with pytest.raises(NetrevealError, match="timm models take a checkpoint file or 'pretrained'"):
        load_model("timm:efficientnet_lite0", "IMAGENET1K_V1")
    with pytest.raises(NetrevealError, match="unknown timm model 'no_such_net'"):
        load_model("timm:no_such_net")


def test_cli_warns_once_on_stderr_and_the_report_shows_it(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (80, 60), (30, 30, 200)).save(folder / "blue.png")
    out = tmp_path / "report"
    code = main(["explain", "--model", "resnet18", "--input-size", "64", "--images", str(folder), "--out", str(out),
                 "--method", "gradcam", "--steps", "2", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert warnings == [("netreveal: warning: resnet18 runs with random weights (no --weights given): its predictions "
                        "and explanations mean nothing; pass a checkpoint file or --weights pretrained")]
    assert "resnet18 runs with random weights" in (out / "index.html").read_text()
