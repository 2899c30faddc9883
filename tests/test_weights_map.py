"""Loading a checkpoint saved by another code base: --weights-map rules and by-order matching.

The foreign checkpoint is timm's efficientnet_lite0 (random weights) saved under names in the
style of the EfficientNet-PyTorch package: flat block indices (``_blocks.7``) and its own layer
names (``_depthwise_conv``, ``_bn0`` ...), in the order that package saves them.
"""

import re
from collections import OrderedDict

import pytest
import timm
import torch
from cli_checks import fails_with_one_line
from PIL import Image
from safetensors.torch import save_file

from netreveal.cli import main
from netreveal.errors import NetrevealError
from netreveal.model.adapter import load_model
from netreveal.model.keymap import BY_ORDER, Rule, apply_rules, parse_rules

ARCH = "timm:efficientnet_lite0"
TOP = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
FIRST_BLOCK = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}
EXPANDING_BLOCK = {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1",
                   "conv_pwl": "_project_conv", "bn3": "_bn2"}

# EfficientNet-PyTorch names -> timm names, written as a user would (not derived from the above)
RULES = r"""
# top level
rename:_conv_stem.=conv_stem.
rename:_bn0.=bn1.
rename:_conv_head.=conv_head.
rename:_bn1.=bn2.
rename:_fc.=classifier.
# flat block index -> stage.block (stage depths 1, 2, 2, 3, 3, 4, 1)
rename:_blocks.0.=blocks.0.0.
rename:_blocks.1.=blocks.1.0.
rename:_blocks.2.=blocks.1.1.
rename:_blocks.3.=blocks.2.0.
rename:_blocks.4.=blocks.2.1.
rename:_blocks.5.=blocks.3.0.
rename:_blocks.6.=blocks.3.1.
rename:_blocks.7.=blocks.3.2.
rename:_blocks.8.=blocks.4.0.
rename:_blocks.9.=blocks.4.1.
rename:_blocks.10.=blocks.4.2.
rename:_blocks.11.=blocks.5.0.
rename:_blocks.12.=blocks.5.1.
rename:_blocks.13.=blocks.5.2.
rename:_blocks.14.=blocks.5.3.
rename:_blocks.15.=blocks.6.0.
# the first block does not expand
regex:^blocks\.0\.0\._depthwise_conv\.=blocks.0.0.conv_dw.
regex:^blocks\.0\.0\._project_conv\.=blocks.0.0.conv_pw.
regex:^(blocks\.0\.0)\._bn(\d)\.=\1.bn\2.
# the other blocks
regex:\._expand_conv\.=.conv_pw.
regex:\._depthwise_conv\.=.conv_dw.
regex:\._project_conv\.=.conv_pwl.
regex:\._bn2\.=.bn3.
regex:\._bn1\.=.bn2.
regex:\._bn0\.=.bn1.
"""


def foreign_name(key: str, flat: dict[tuple[int, int], int]) -> str:
    if key.startswith("blocks."):
        _, stage, block, layer, param = key.split(".", 4)
        names = FIRST_BLOCK if stage == "0" else EXPANDING_BLOCK
        return f"_blocks.{flat[int(stage), int(block)]}.{names[layer]}.{param}"
    layer, param = key.split(".", 1)
    return f"{TOP[layer]}.{param}"


def foreign_state(net: torch.nn.Module, counters: bool = True) -> "OrderedDict[str, torch.Tensor]":
    """``net``'s state dict under EfficientNet-PyTorch-style names (optionally without BN counters)."""
    state = net.state_dict()
    blocks = sorted({tuple(int(v) for v in k.split(".")[1:3]) for k in state if k.startswith("blocks.")})
    flat = {sb: i for i, sb in enumerate(blocks)}
    return OrderedDict((foreign_name(k, flat), v.clone()) for k, v in state.items()
                       if counters or not k.endswith("num_batches_tracked"))


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(1)
    net = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=10)
    with torch.no_grad():  # make the BN statistics distinguishable from a fresh model's
        for name, tensor in net.state_dict().items():
            if name.endswith(("running_mean", "running_var")):
                tensor.copy_(torch.rand_like(tensor) + 0.5)
            elif name.endswith("num_batches_tracked"):
                tensor.fill_(7)
    return net


def assert_same_tensors(loaded: torch.nn.Module, source: torch.nn.Module, skip_counters: bool = False):
    got, want = loaded.state_dict(), source.state_dict()
    assert list(got) == list(want)
    for key in want:
        if skip_counters and key.endswith("num_batches_tracked"):
            continue
        assert torch.equal(got[key], want[key]), key


def test_foreign_names_really_differ(source):
    names = list(foreign_state(source))
    assert "_blocks.0._depthwise_conv.weight" in names and "_blocks.15._project_conv.weight" in names
    assert not set(names) & set(source.state_dict())


def test_by_order_loads_a_foreign_checkpoint(tmp_path, source):
    path = tmp_path / "foreign.pth"
    torch.save(foreign_state(source), path)
    adapter = load_model(ARCH, path, num_classes=10, weights_map="by-order")
    assert_same_tensors(adapter.model.netreveal_inner, source)
    own = list(source.state_dict())
    assert list(adapter.key_mapping) == list(foreign_state(source))
    assert sorted(adapter.key_mapping.values()) == sorted(own)  # every tensor, counters included
    assert adapter.key_mapping["_blocks.3._expand_conv.weight"] == "blocks.2.0.conv_pw.weight"
    assert adapter.info["weights_map"] == BY_ORDER and "warning" not in adapter.info


def test_by_order_without_batchnorm_counters_keeps_the_models_own(tmp_path, source):
    path = tmp_path / "foreign.pth"
    torch.save(foreign_state(source, counters=False), path)
    adapter = load_model(ARCH, path, num_classes=10, weights_map=["by-order"])
    assert_same_tensors(adapter.model.netreveal_inner, source, skip_counters=True)
    assert int(adapter.model.netreveal_inner.bn1.num_batches_tracked) == 0


def test_rename_rules_from_a_file_load_a_foreign_checkpoint(tmp_path, source):
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": foreign_state(source)}, path)
    rules = tmp_path / "effnet.rules"
    rules.write_text(RULES)
    adapter = load_model(ARCH, path, num_classes=10, weights_map=f"@{rules}")
    assert_same_tensors(adapter.model.netreveal_inner, source)
    assert adapter.key_mapping["_blocks.0._bn1.weight"] == "blocks.0.0.bn1.weight"
    assert adapter.key_mapping["_bn1.running_var"] == "bn2.running_var"
    assert adapter.info["weights_map"][0] == "rename:_conv_stem.=conv_stem."


def test_rename_rules_work_on_safetensors_too(tmp_path, source):
    path = tmp_path / "foreign.safetensors"
    save_file({k: v.contiguous() for k, v in foreign_state(source).items()}, str(path))
    rules = [line for line in RULES.splitlines() if line and not line.startswith("#")]
    adapter = load_model(ARCH, path, num_classes=10, weights_map=rules)
    assert_same_tensors(adapter.model.netreveal_inner, source)


def test_by_order_shape_mismatch_is_one_line(tmp_path, source):
    state = foreign_state(source)
    state.move_to_end("_conv_stem.weight")  # the first tensor now comes last: order and shapes disagree
    path = tmp_path / "shuffled.pth"
    torch.save(state, path)
    with pytest.raises(NetrevealError) as err:
        load_model(ARCH, path, num_classes=10, weights_map="by-order")
    message = str(err.value)
    assert "\n" not in message
    assert re.search(r"by-order: tensor #0 differs in shape: checkpoint _bn0.weight \(32,\) vs .* conv_stem.weight "
                     r"\(32, 3, 3, 3\)", message), message


def test_by_order_count_mismatch_is_one_line(tmp_path, source):
    state = foreign_state(source)
    del state["_fc.bias"]
    n = sum(not k.endswith("num_batches_tracked") for k in state)
    path = tmp_path / "short.pth"
    torch.save(state, path)
    with pytest.raises(NetrevealError,
                       match=rf"^[^\n]*the checkpoint has {n} tensors but efficientnet_lite0 has {n + 1}"):
        load_model(ARCH, path, num_classes=10, weights_map="by-order")


def test_rules_shape_mismatch_names_file_and_model_keys(tmp_path, source):
    path = tmp_path / "foreign.pth"
    torch.save(foreign_state(source), path)
    with pytest.raises(NetrevealError) as err:
        load_model(ARCH, path, num_classes=4, weights_map=f"@{_rules_file(tmp_path)}")
    message = str(err.value)
    assert "\n" not in message
    assert ("after --weights-map: 2 shape mismatch(es), e.g. classifier.weight (file: _fc.weight): "
            "file (10, 1280) vs model (4, 1280)") in message


def test_incomplete_rules_say_which_keys_are_left(tmp_path, source):
    path = tmp_path / "foreign.pth"
    torch.save(foreign_state(source), path)
    with pytest.raises(NetrevealError, match=r"missing key\(s\), e\.g\. conv_stem\.weight; .*unexpected key\(s\), "
                                             r"e\.g\. _conv_stem\.weight"):
        load_model(ARCH, path, num_classes=10, weights_map="rename:_fc.=classifier.")


def test_by_order_refuses_safetensors(tmp_path, source):
    path = tmp_path / "foreign.safetensors"
    save_file({k: v.contiguous() for k, v in foreign_state(source).items()}, str(path))
    with pytest.raises(NetrevealError, match="keep their keys sorted"):
        load_model(ARCH, path, num_classes=10, weights_map="by-order")


def test_by_order_never_unpickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": Evil()}, path)
    with pytest.raises(NetrevealError, match="not a checkpoint"):
        load_model(ARCH, path, weights_map="by-order")


@pytest.mark.parametrize("rules, message", [
    ("flip:a=b", "unknown --weights-map rule"),
    ("rename:abc", "needs the form rename:OLD=NEW"),
    ("regex:([a-z=x", "bad regular expression"),
    ("strip:", "strips nothing"),
    (["by-order", "strip:module."], "cannot be combined"),
    ("@no-such-rules.txt", "rules file not found"),
])
def test_bad_rules(rules, message):
    with pytest.raises(NetrevealError, match=message):
        parse_rules(rules)


def test_rule_semantics():
    rules = parse_rules(["strip:module.", "rename:_blocks.1.=blocks.1.0.", r"regex:\.bn(\d)\.=.norm\1."])
    keys = ["module._blocks.1.bn0.w", "module._blocks.10.bn0.w", "head.bn2.b", "x.module.y"]
    state = {k: torch.zeros(1) for k in keys}
    _, mapping = apply_rules(state, rules)
    assert mapping == {"module._blocks.1.bn0.w": "blocks.1.0.norm0.w", "module._blocks.10.bn0.w": "_blocks.10.norm0.w",
                       "head.bn2.b": "head.norm2.b", "x.module.y": "x.module.y"}
    assert str(Rule("rename", "a.", "b.")) == "rename:a.=b." and str(Rule("strip", "m.")) == "strip:m."
    with pytest.raises(NetrevealError, match="two checkpoint tensors the name b.w: a.w and b.w"):
        apply_rules({"a.w": torch.zeros(1), "b.w": torch.zeros(1)}, parse_rules("rename:a.=b."))


def test_weights_map_needs_a_checkpoint_file():
    with pytest.raises(NetrevealError, match="--weights-map renames the keys of a checkpoint file"):
        load_model("resnet18", "IMAGENET1K_V1", weights_map="by-order")
    with pytest.raises(NetrevealError, match="--weights-map renames the keys of a checkpoint file"):
        load_model("resnet18", None, weights_map="strip:module.")
    with pytest.raises(NetrevealError, match="demo model takes none"):
        load_model("demo", weights_map="by-order")


def _rules_file(tmp_path):
    path = tmp_path / "effnet.rules"
    path.write_text(RULES)
    return path


def _image_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (80, 60), (200, 30, 30)).save(folder / "red.png")
    return folder


def test_cli_by_order_prints_every_pair_and_explains(tmp_path, capsys, source):
    path = tmp_path / "foreign.pth"
    state = foreign_state(source)
    torch.save(state, path)
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(f"thing {i}" for i in range(10)))
    out = tmp_path / "report"
    code = main(["explain", "--model", ARCH, "--weights", str(path), "--weights-map", "by-order",
                 "--class-names", str(names), "--images", str(_image_folder(tmp_path)), "--out", str(out),
                 "--method", "gradcam", "--steps", "2", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.err.splitlines()
    start = lines.index(f"netreveal: --weights-map by-order matched {len(state)} tensors (file key -> model key):")
    pairs = lines[start + 1:start + 1 + len(state)]
    assert [p.split(" -> ")[0].strip() for p in pairs] == list(state)
    assert "  _blocks.0._depthwise_conv.weight -> blocks.0.0.conv_dw.weight" in pairs
    assert "warning" not in captured.err
    assert (out / "index.html").is_file()


def test_cli_mismatch_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, source):
    path = tmp_path / "foreign.pth"
    torch.save(foreign_state(source), path)
    out = tmp_path / "report"
    fails_with_one_line(capsys, ["explain", "--model", ARCH, "--weights", str(path), "--weights-map",
                                 f"@{_rules_file(tmp_path)}", "--images", str(_image_folder(tmp_path)),
                                 "--out", str(out)],
                        "shape mismatch(es), e.g. classifier.weight (file: _fc.weight): "
                        "file (10, 1280) vs model (1000, 1280)")
    assert not out.exists()


def test_a_checkpoint_without_batchnorm_counters_loads_by_name(tmp_path):
    source = load_model("resnet18", num_classes=3).model.netreveal_inner
    path = tmp_path / "old.pt"
    torch.save({k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}, path)
    loaded = load_model("resnet18", path, num_classes=3).model.netreveal_inner
    assert_same_tensors(loaded, source)


@pytest.mark.parametrize("argv", [
    ["explain", "--images", "x", "--out", "o"],
    ["evaluate"],
    ["study", "create", "--name", "x", "--images", "x"],
    ["train-head", "xnn", "--data", "x"],
])
def test_every_command_that_loads_a_model_takes_the_same_model_arguments(argv):
    from netreveal.cli import build_parser

    args = build_parser().parse_args([*argv, "--weights-map", "strip:module.", "--weights-map", "by-order",
                                      "--class-names", "c.txt", "--input-size", "32", "--device", "cpu"])
    assert args.weights_map == ["strip:module.", "by-order"]
    assert (args.model, args.class_names, args.input_size, args.device) == ("demo", "c.txt", 32, "cpu")
