"""InfoDisent and XNN as CLI/report methods: demo assets, maps on the parts, report sections,
train-head end to end, bad input."""

import argparse
import re
import shutil

import pytest
import torch

from netreveal import pipeline
from netreveal.cli.train_head import add_parser as add_train_head_parser
from netreveal.cli.train_head import cmd_train_head
from netreveal.concepts import (
    InfoDisentExplanation,
    XNNExplanation,
    load_head,
    load_xnn,
    signed_pool,
)
from netreveal.concepts.components import component_maps
from netreveal.concepts.demo_assets import demo_weights_sha256, load_demo_infodisent, load_demo_xnn
from netreveal.concepts.infodisent import extractor_for
from netreveal.concepts.training_images import TrainingImages
from netreveal.concepts.xnn import read_activations
from netreveal.data.partsworld import PART_TYPES, PartsWorld
from netreveal.data.partsworld_truth import partsworld_inputs
from netreveal.errors import NetrevealError
from netreveal.methods import METHODS, MethodOptions
from netreveal.model.adapter import ModelAdapter, load_model
from netreveal.report.render import draw_box
from netreveal.report.sections.infodisent import weights_svg
from netreveal.results import load

OPTS = {"progress": False, "batch_size": 16}


def run_infodisent(adapter, images, targets, options):
    method = METHODS["infodisent"]
    return method.run(adapter, images, targets, method.options(options))


def run_xnn(adapter, images, targets, options):
    method = METHODS["xnn"]
    return method.run(adapter, images, targets, method.options(options))


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def demo():
    return load_model("demo")


@pytest.fixture(scope="module")
def inputs(demo):
    return partsworld_inputs(demo, 24)


@pytest.fixture(scope="module")
def explained(demo, inputs):
    targets = torch.tensor(inputs.labels)
    return {
        name: METHODS[name].run(demo, inputs.images, targets, METHODS[name].options(OPTS))
        for name in ("infodisent", "xnn")
    }


def test_methods_registered():
    assert METHODS["infodisent"].title == "InfoDisent" and METHODS["xnn"].title == "XNN"
    assert METHODS["infodisent"].heatmaps is not None and METHODS["xnn"].heatmaps is not None


@pytest.mark.parametrize("name", ["infodisent", "xnn"])
def test_demo_maps_point_at_the_defining_parts(name, inputs, explained):
    result = explained[name]
    maps = METHODS[name].heatmaps(result)
    assert maps.shape == (24, 64, 64)
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1
    # each map is scaled to [0, 1]; it is all zero only when no unit adds to the class (XNN: a
    # class the model recognises by the absence of the other x-features)
    top = maps.flatten(1).amax(1)
    speaks = (result.contributions > 0).any(1)
    assert torch.equal(top == 1, speaks) and bool((top[~speaks] == 0).all())
    assert speaks.float().mean() >= 0.8
    masks = torch.stack(inputs.masks).float()
    peak = maps.flatten(1).argmax(1)
    hits = masks.flatten(1)[torch.arange(24), peak].mean()
    chance = masks.mean()  # a uniformly random peak hits with this probability
    assert chance < 0.1
    assert hits >= 5 * chance, (float(hits), float(chance))
    # with the usual pointing-game tolerance (15 px at 224 px, here 3 px): most peaks are on a part
    near = torch.nn.functional.max_pool2d(masks[:, None], 7, stride=1, padding=3)[:, 0]
    near_hits = near.flatten(1)[torch.arange(24), peak].mean()
    assert near_hits >= 0.7 and near_hits >= 3 * near.mean(), (float(near_hits), float(near.mean()))
    assert torch.equal(result.targets, torch.tensor(inputs.labels))


def test_infodisent_contributions_rank_components(explained):
    result = explained["infodisent"]
    head = load_demo_infodisent()
    w = head.class_weights().detach()
    for i in range(3):
        c = int(result.targets[i])
        ks = result.components[i]
        assert torch.allclose(result.contributions[i], w[c, ks] * result.values[i], atol=1e-5)
        assert bool((result.contributions[i][:-1] >= result.contributions[i][1:]).all())
    entries = component_maps(result)
    assert len(entries) == 24 * result.components.shape[1]
    first = entries[0]
    assert first["image_index"] == 0 and first["component"] == int(result.components[0, 0])
    assert first["weight"] == pytest.approx(float(result.contributions[0, 0]))
    assert first["heatmap"].shape == (64, 64) and float(first["heatmap"].max()) == 1.0
    xs = component_maps(explained["xnn"])
    assert len(xs) == 24 * explained["xnn"].xfeatures.shape[1]
    assert xs[1]["weight"] == pytest.approx(float(explained["xnn"].contributions[0, 1]))


def test_demo_assets_regenerate_their_training_images(demo):
    """The recorded source renders exactly the images the prototypes / top images were mined on:
    their recomputed scores equal the stored ones."""
    head = load_demo_infodisent()
    assert head.info["backbone"]["sha256"] == demo_weights_sha256()
    assert head.class_names == demo.class_names
    protos, images = head.prototypes, TrainingImages.of(head)
    extractor = extractor_for(head, demo.model)
    for k in (0, 7):
        for side in (0, 1):
            index = int(protos.indices[side, k, 0])
            image, sample = images.get(index)
            assert sample.split == "train" and sample.index == index
            with torch.no_grad():
                v = signed_pool(head.components(extractor(image[None])))[0, k]
            assert float(v if side == 0 else -v) == pytest.approx(
                float(protos.scores[side, k, 0]), abs=1e-4
            )
    xnn = load_demo_xnn()
    tops = TrainingImages.of(xnn)
    for j in range(xnn.num_features):
        index = int(xnn.top_images[j, 0])
        f, _ = read_activations(demo.model, xnn.layer, tops.get(index)[0][None])
        with torch.no_grad():
            x = xnn.encode(f)[0, j]
        assert float(x) == pytest.approx(float(xnn.top_scores[j, 0]), abs=1e-4)


def test_report_sections_end_to_end(tmp_path, demo):
    inputs = partsworld_inputs(demo, 3)
    out = tmp_path / "report"
    opts = {"progress": False, "batch_size": 8}
    index = pipeline.explain(
        demo,
        inputs,
        [METHODS["infodisent"].configure(opts), METHODS["xnn"].configure(opts)],
        MethodOptions.from_values(opts),
        out,
        steps=5,
    )
    page = index.read_text()
    assert page.count("<h3>InfoDisent</h3>") == 3 and page.count("<h3>XNN</h3>") == 3
    assert page.count("what each class weighs") == 1 and "<svg" in page
    assert (
        "each class&#39;s strongest components" in page
        or "each class's strongest components" in page
    )
    assert "component #" in page and "x-feature x" in page
    from netreveal.report.sections import infodisent as infodisent_section
    from netreveal.report.sections import xnn as xnn_section

    assert page.count(xnn_section.NAMES_NOTE) == 3  # no names reach the report: the pictures stand for them
    assert page.count(infodisent_section.NAMES_NOTE) == 3
    assert '<td class="name">pointing game ↑</td>' in page  # the pipeline scored the concept maps
    srcs = re.findall(r'src="(img/[^"]+)"', page)
    assert srcs and all((out / s).is_file() for s in srcs)
    protos = {s for s in srcs if "-proto-" in s}
    assert len(protos) >= 5 and len({s for s in srcs if "-xnn-top-" in s}) >= 5
    # prototypes from the parts world are captioned with the part under their box
    parts = re.findall(r"train #\d+<br>([a-z]+)</figcaption>", page)
    assert parts and set(parts) <= set(PART_TYPES) | {"background"}
    assert isinstance(load(out / "results" / "infodisent.pt"), InfoDisentExplanation)
    assert isinstance(load(out / "results" / "xnn.pt"), XNNExplanation)


def test_draw_box_outlines_exactly():
    pic = torch.zeros(64, 64, 3, dtype=torch.uint8).numpy()
    boxed = draw_box(pic, (8, 16, 24, 40), colour=(255, 0, 0))
    red = boxed[..., 0] == 255
    assert (
        red[16, 8:24].all() and red[39, 8:24].all() and red[16:40, 8].all() and red[16:40, 23].all()
    )
    assert not red[17:39, 9:23].any() and red.sum() == 2 * 16 + 2 * 24 - 4
    assert not pic.any()  # the input is not changed


def test_thumbnails_of_large_images_are_shrunk():
    from netreveal.report.render import shrink

    big = torch.randint(0, 255, (448, 300, 3), dtype=torch.uint8).numpy()
    assert shrink(big, 192).shape == (287, 192, 3)
    small = big[:100, :100]
    assert shrink(small, 192) is small


def test_weights_svg_escapes_and_shades():
    w = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    svg = weights_svg(w, ["<b>x</b>", "y&z"], per_class=1)
    assert "<b>x</b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg and "y&amp;z" in svg
    assert "#2" not in svg  # a component no class weighs is left out
    opacities = [float(x) for x in re.findall(r'fill-opacity="([0-9.]+)"', svg)]
    assert max(opacities) == pytest.approx(1.0) and min(opacities) == pytest.approx(0.05)


# ---------------------------------------------------------------- train-head


def parse(*argv):
    parser = argparse.ArgumentParser(prog="netreveal")
    add_train_head_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train-head", *argv])


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    PartsWorld(size=64, seed=0, split="train").write_folder(root, n_per_class=2, split="train")
    return root


def test_train_head_infodisent_end_to_end(tmp_path, tiny_folder, capsys):
    out = tmp_path / "heads" / "head.pt"
    assert (
        cmd_train_head(
            parse(
                "infodisent",
                "--data",
                str(tiny_folder),
                "--epochs",
                "1",
                "--out",
                str(out),
                "--quiet",
                "--batch-size",
                "8",
            )
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "infodisent epoch 1/1" in printed and "val_accuracy" in printed
    head = load_head(out)
    assert head.class_names == PartsWorld().class_names and head.prototypes is not None
    assert (
        head.info["source"]["kind"] == "folder" and head.info["evaluation"]["split"] == "validation"
    )
    assert not out.with_name("head.pt.checkpoint").exists()  # own checkpoint removed when done
    keys = head.prototypes.keys
    assert len(keys) == 14 and all((tiny_folder / k).is_file() for k in keys)
    image, _ = TrainingImages.of(head).get(int(head.prototypes.indices[0, 0, 0]))
    assert image.shape == (3, 64, 64)


def test_train_head_xnn_and_explain_with_a_file(tmp_path, tiny_folder, demo, capsys):
    out = tmp_path / "x.pt"
    ckpt = tmp_path / "ckpt"
    assert (
        cmd_train_head(
            parse(
                "xnn",
                "--data",
                str(tiny_folder),
                "--epochs",
                "1",
                "--out",
                str(out),
                "--checkpoint-dir",
                str(ckpt),
                "--quiet",
                "--x-features",
                "3",
            )
        )
        == 0
    )
    assert "val_faithfulness" in capsys.readouterr().out
    assert (ckpt / "checkpoint.pt").is_file()  # a checkpoint dir the user named is kept
    xnn = load_xnn(out)
    assert xnn.num_features == 3 and xnn.class_names == demo.class_names
    other = ModelAdapter(
        model=demo.model, name="custom", input_size=64, class_names=demo.class_names
    )
    images = partsworld_inputs(demo, 2).images
    result = run_xnn(other, images, torch.tensor([0, 1]), _with(xnn=str(out)))
    assert result.xfeatures.shape == (2, 3) and result.extras["xnn"] == str(out)


def _with(**fields):
    return {"progress": False, **fields}


def test_head_with_own_classes_explains_its_prediction_and_escapes(tmp_path, tiny_folder, demo):
    """A head trained on folders that are not the model's classes (one with HTML in its name):
    it explains its own prediction, its prototypes are read from the folder, names are escaped."""
    root = tmp_path / "odd"
    shutil.copytree(tiny_folder, root)
    (root / "cart").rename(root / "<cart>&")
    out = tmp_path / "odd.pt"
    assert (
        cmd_train_head(
            parse("infodisent", "--data", str(root), "--epochs", "1", "--out", str(out), "--quiet")
        )
        == 0
    )
    head = load_head(out)
    assert "<cart>&" in head.class_names
    other = ModelAdapter(
        model=demo.model, name="custom", input_size=64, class_names=demo.class_names
    )
    inputs = partsworld_inputs(demo, 2)
    report_dir = tmp_path / "rep"
    opts = _with(head=str(out), batch_size=4)
    pipeline.explain(
        other,
        inputs,
        [METHODS["infodisent"].configure(opts)],
        MethodOptions.from_values(opts),
        report_dir,
        steps=4,
    )
    page = (report_dir / "index.html").read_text()
    assert "<cart>" not in page and "&lt;cart&gt;&amp;" in page
    result = load(report_dir / "results" / "infodisent.pt")
    assert result.extras["explains"] == "the head's prediction"
    assert torch.equal(result.targets, result.logits.argmax(1))
    assert len(re.findall(r'src="(img/[^"]*-proto-[^"]*)"', page)) >= 1  # read back from the folder


def test_bad_input_is_one_line_error(tmp_path, tiny_folder, demo):
    with pytest.raises(NetrevealError, match="--data folder not found"):
        cmd_train_head(parse("infodisent", "--data", str(tmp_path / "nope"), "--quiet"))
    with pytest.raises(NetrevealError, match="unknown kind 'protopnet'"):
        cmd_train_head(parse("protopnet", "--data", str(tiny_folder), "--quiet"))
    with pytest.raises(NetrevealError, match="--epochs must be at least 1"):
        cmd_train_head(parse("xnn", "--data", str(tiny_folder), "--epochs", "0", "--quiet"))
    other = ModelAdapter(
        model=demo.model, name="custom", input_size=64, class_names=demo.class_names
    )
    images = torch.rand(1, 3, 64, 64)
    with pytest.raises(
        NetrevealError, match="--head is required for infodisent with a non-demo model"
    ):
        run_infodisent(other, images, torch.tensor([0]), _with())
    with pytest.raises(NetrevealError, match="--xnn is required for xnn with a non-demo model"):
        run_xnn(other, images, torch.tensor([0]), _with())
    import torchvision

    from netreveal.concepts.demo_assets import DEMO_INFODISENT, DEMO_XNN

    resnet = ModelAdapter(
        model=torchvision.models.resnet18(num_classes=8).eval(),
        name="resnet18",
        input_size=64,
        class_names=demo.class_names,
    )
    with pytest.raises(NetrevealError, match="reads layer .* which this model does not have"):
        run_infodisent(resnet, images, torch.tensor([0]), _with(head=str(DEMO_INFODISENT)))
    with pytest.raises(NetrevealError, match="reads layer .* which this model does not have"):
        run_xnn(resnet, images, torch.tensor([0]), _with(xnn=str(DEMO_XNN)))
    with pytest.raises(NetrevealError, match="--head file not found"):
        run_infodisent(other, images, torch.tensor([0]), _with(head=str(tmp_path / "missing.pt")))
