"""Vision transformers and Swin for every method: token sequences and channels-last maps become
feature grids at the tap, last:N counts transformer blocks, and the default layer is the last
block whose patch tokens reach the class score. Every registered method runs on a small random
ViT (torchvision and timm), Swin (timm) and BN-ResNet (torchvision) with finite maps of the input
size and the targets asked for."""

from __future__ import annotations

import pytest
import torch
from small_models import SMALL, adapter, concept_heads

from netreveal.concepts.layer_reading import find_feature_layer
from netreveal.concepts.tcav import tcav
from netreveal.errors import NetrevealError
from netreveal.methods import METHODS
from netreveal.model.hooks import capture
from netreveal.model.layers import check_feature_maps, resolve_layers

NAMES = sorted(METHODS)
FAMILIES = ["vit-torchvision", "vit-timm", "swin-timm", "resnet18"]
TARGETS = torch.tensor([1, 3])


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    """Per family, lazily: the adapter, two images and the concept-head options."""
    cache: dict[str, tuple] = {}

    def get(family: str):
        if family not in cache:
            ad = adapter(family)
            size = ad.input_size
            images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(3))
            cache[family] = ad, images, concept_heads(ad, tmp_path_factory.mktemp(family))
        return cache[family]

    return get


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", NAMES)
def test_every_method_runs_on_every_family(name, family, families):
    ad, images, heads = families(family)
    method = METHODS[name]
    options = method.options({**SMALL, **heads, "batch_size": 2})
    method.check(ad, images[:1], options)
    result = method.run(ad, images, TARGETS, options)
    assert result.targets.tolist() == TARGETS.tolist()
    layer_option = hasattr(options, "layer") or hasattr(options, "layers")
    tapped = result.params.get("layers") or [result.params.get("layer")]
    if layer_option and family != "resnet18":  # layer-reading methods tap transformer blocks, not the patch embedding
        blocks = [n for n, _ in resolve_layers(ad.model, "all:block", example=images[:1])]
        assert set(tapped) <= set(blocks), tapped
    if method.heatmaps is not None:
        maps = method.heatmaps(result)
        assert maps.shape == (2, ad.input_size, ad.input_size)
        assert bool(torch.isfinite(maps).all())


@pytest.mark.parametrize("family", FAMILIES)
def test_tcav_runs_at_the_default_layer(family, families):
    ad, _, _ = families(family)
    size = ad.input_size
    gen = torch.Generator().manual_seed(5)
    concept, randoms, images = (torch.rand(n, 3, size, size, generator=gen) for n in (4, 8, 4))
    result = tcav(ad.model, concept, randoms, images, [0, 0, 1, 1], "auto:1", n_runs=2, set_size=4)
    assert result.scores.shape == (1, 2, 2) and bool(torch.isfinite(result.scores).all())


def _vit(family: str):
    ad = adapter(family)
    return ad, torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize(("family", "blocks"), [
    ("vit-torchvision", ["encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1"]),
    ("vit-timm", ["blocks.0", "blocks.1"]),
    ("swin-timm", ["layers.0.blocks.0", "layers.1.blocks.0"]),
])
def test_last_n_counts_transformer_blocks(family, blocks):
    ad, images = _vit(family)
    assert [n for n, _ in resolve_layers(ad.model, "last:2", example=images)] == blocks
    assert [n for n, _ in resolve_layers(ad.model, "last:1", example=images)] == blocks[-1:]
    assert [n for n, _ in resolve_layers(ad.model, "last:2:block", example=images)] == blocks


@pytest.mark.parametrize(("family", "default"), [
    # a class-token head ignores the last block's patch tokens: the default is the block before
    ("vit-torchvision", "encoder.layers.encoder_layer_0"),
    ("vit-timm", "blocks.0"),
    # Swin pools all positions: its last block (= the last stage's output)
    ("swin-timm", "layers.1.blocks.0"),
])
def test_default_cam_layer_is_the_last_block_that_reaches_the_score(family, default):
    ad, images = _vit(family)
    run = METHODS["gradcam"].configure(progress=False)
    result = run.run(ad, images, TARGETS)
    assert result.params["layer"] == default
    assert result.params["tap"].startswith("transformer block output")


def test_default_is_the_last_block_when_patch_tokens_are_pooled():
    from small_models import MEAN, STD, timm_vit

    from netreveal.model.adapter import NormalizedModel

    torch.manual_seed(0)
    model = NormalizedModel(timm_vit(global_pool="avg", class_token=False), MEAN, STD).eval()
    images = torch.rand(1, 3, 32, 32)
    assert [n for n, _ in resolve_layers(model, "auto:1", example=images)] == ["blocks.1"]
    assert [n for n, _ in resolve_layers(model, "auto:9", example=images)] == ["blocks.0", "blocks.1"]


@pytest.mark.parametrize("family", ["vit-torchvision", "vit-timm"])
def test_last_block_of_a_class_token_vit_has_no_patch_gradient_and_cam_refuses_it(family):
    ad, images = _vit(family)
    (last,) = [n for n, _ in resolve_layers(ad.model, "last:1", example=images)]
    cap = capture(ad.model, images, last, TARGETS)
    assert float(cap.gradients[last].abs().sum()) == 0.0
    with pytest.raises(NetrevealError, match="no gradient on the patch tokens"):
        check_feature_maps(ad.model, last, images[:1], "Grad-CAM", gradient=True)
    check_feature_maps(ad.model, last, images[:1], "INV")  # a grid all the same


def _hand_tokens(model, module, images):
    """The module's output recorded by a plain forward hook."""
    seen = {}
    handle = module.register_forward_hook(lambda m, a, out: seen.setdefault("out", out.detach().clone()))
    try:
        with torch.no_grad():
            model(images)
    finally:
        handle.remove()
    return seen["out"]


@pytest.mark.parametrize("family", ["vit-torchvision", "vit-timm"])
def test_gradcam_on_vit_equals_the_definition(family):
    """Grad-CAM at the default ViT layer = ReLU(sum_k mean_xy(dS/dA_k) A_k) on the patch-token grid,
    computed here by hand from a forward hook and autograd."""
    ad, images = _vit(family)
    result = METHODS["gradcam"].configure(progress=False).run(ad, images, TARGETS)
    name = result.params["layer"]
    module = dict(ad.model.netreveal_inner.named_modules())[name]
    kept = {}

    def hook(m, a, out):
        kept["tokens"] = out
        out.retain_grad()

    handle = module.register_forward_hook(hook)
    try:
        logits = ad.model(images)
    finally:
        handle.remove()
    logits.gather(1, TARGETS[:, None]).sum().backward()
    tokens, grads = kept["tokens"].detach(), kept["tokens"].grad
    patches, patch_grads = tokens[:, 1:], grads[:, 1:]  # drop the class token
    b, n, c = patches.shape
    side = int(n ** 0.5)
    act = patches.transpose(1, 2).reshape(b, c, side, side)
    grad = patch_grads.transpose(1, 2).reshape(b, c, side, side)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    raw = (weights * act).sum(dim=1)
    torch.testing.assert_close(result.raw, raw, atol=1e-5, rtol=1e-4)
    expected = torch.nn.functional.interpolate(raw.clamp_min(0)[:, None], size=(32, 32), mode="bilinear",
                                               align_corners=False)[:, 0]  # ReLU at the grid, then upsample
    lo = expected.flatten(1).min(1).values[:, None, None]
    hi = expected.flatten(1).max(1).values[:, None, None]
    torch.testing.assert_close(result.maps, (expected - lo) / (hi - lo), atol=1e-4, rtol=1e-4)


def test_token_tap_drops_prefix_tokens_on_the_patch_grid():
    import timm
    from small_models import MEAN, STD

    from netreveal.model.adapter import NormalizedModel

    torch.manual_seed(0)
    net = timm.create_model("deit_tiny_distilled_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=5)
    model = NormalizedModel(net, MEAN, STD).eval()
    images = torch.rand(2, 3, 32, 32)
    tokens = _hand_tokens(model, net.blocks[0], images)
    assert tokens.shape[1] == 2 + 16  # class and distillation tokens, then a 4x4 patch grid
    cap = capture(model, images, "blocks.0", backward=False)
    expected = tokens[:, 2:].transpose(1, 2).reshape(2, tokens.shape[2], 4, 4)
    torch.testing.assert_close(cap.activations["blocks.0"], expected)
    assert cap.layouts["blocks.0"].prefix_tokens == 2


def test_swin_tap_is_channels_first_and_concept_layers_read_it_channels_last():
    ad, images = _vit("swin-timm")
    block = ad.model.netreveal_inner.layers[1].blocks[0]
    out = _hand_tokens(ad.model, block, images)  # (B, H, W, C)
    cap = capture(ad.model, images, "layers.1.blocks.0", TARGETS)
    torch.testing.assert_close(cap.activations["layers.1.blocks.0"], out.permute(0, 3, 1, 2))
    assert cap.gradients["layers.1.blocks.0"].shape == (2, out.shape[3], out.shape[1], out.shape[2])
    assert find_feature_layer(ad.model, images[:1]).layout == "nhwc"


def test_a_layer_inside_windows_is_not_a_batch_of_maps():
    ad, images = _vit("swin-timm")
    with pytest.raises(NetrevealError, match="maps for 2 images"):
        capture(ad.model, images, "layers.0.blocks.0.attn.qkv", TARGETS)


def test_a_vector_layer_is_refused_with_one_line():
    ad, images = _vit("vit-timm")
    with pytest.raises(NetrevealError, match="outputs a vector"):
        check_feature_maps(ad.model, "head", images[:1], "Grad-CAM")


def test_cli_explains_a_timm_vit_at_a_transformer_block(tmp_path):
    from PIL import Image

    from netreveal.cli import main
    from netreveal.results import load

    image = tmp_path / "a.png"
    Image.effect_noise((224, 224), 40).convert("RGB").save(image)
    out = tmp_path / "out"
    assert main(["explain", "--model", "timm:vit_tiny_patch16_224", "--images", str(image), "--method",
                 "gradcam,layercam", "--out", str(out), "--quiet"]) == 0
    result = load(out / "results" / "gradcam.pt")
    assert result.params["layer"] == "blocks.10"  # the last block's patch tokens do not reach the class token
    assert result.params["tap"] == ("transformer block output, patch tokens on a 14x14 grid, "
                                    "1 prefix token(s) dropped")
    assert result.raw.shape == (1, 14, 14)
    assert "layer blocks.10 (transformer block output, patch tokens on a 14x14 grid" in (out / "index.html").read_text()
