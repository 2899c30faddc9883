"""Image sources read shard by shard through a DataLoader: the same images as reading all at once,
in order, with worker processes or without, and a bad image is one line."""

import pytest
import torch
from PIL import Image

from netreveal.data.partsworld import PartsWorld
from netreveal.data.partsworld_truth import partsworld_inputs, partsworld_source
from netreveal.data.sources import FolderSource, ImageSource, Reading
from netreveal.data.stream import read_all, stream_shards
from netreveal.errors import NetrevealError
from netreveal.model.adapter import load_model


@pytest.fixture(scope="module")
def adapter():
    return load_model("demo")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pw")
    PartsWorld(size=64, seed=0, split="test").write_folder(root, n_per_class=2, split="test")
    return root


def test_parts_world_images_are_those_generated_today_whatever_the_shards(adapter):
    world = PartsWorld(size=adapter.input_size, seed=0, split="test")
    images, _, samples = world.batch(range(11))
    whole = partsworld_inputs(adapter, 11)
    assert torch.equal(whole.images, images) and whole.keys == [f"{s.class_name}-{s.index:03d}" for s in samples]
    source = partsworld_source(adapter, 11)
    assert isinstance(source, ImageSource)
    for workers in (0, 2):
        shards = list(stream_shards(source, Reading.for_model(adapter), 4, workers=workers))
        assert [len(s.keys) for s in shards] == [4, 4, 3]
        assert torch.equal(torch.cat([s.images for s in shards]), images)
        assert [k for s in shards for k in s.keys] == whole.keys
        parts = [p for s in shards for p in s.part_masks]
        assert all(torch.equal(p, x.masks) for p, x in zip(parts, samples))
    later = source.slice(4, 8)
    assert [later.item(i, Reading.for_model(adapter)).key for i in range(len(later))] == whole.keys[4:8]


def test_a_folder_streams_in_order_with_its_ground_truth(adapter, folder):
    source = FolderSource.from_folder(folder)
    reading = Reading.for_model(adapter)
    whole = read_all(source, reading, workers=0)
    shards = list(stream_shards(source, reading, 3, workers=2))
    assert [k for s in shards for k in s.keys] == whole.keys and len(whole.keys) == len(source)
    assert torch.equal(torch.cat([s.images for s in shards]), whole.images)
    assert all(m is not None for s in shards for m in s.masks)
    assert source.slice(3, 6).describe()["images"] == 3
    assert source.describe()["list_hash"] != source.slice(0, 5).describe()["list_hash"]


def test_a_bad_image_in_a_worker_is_one_line(adapter, tmp_path):
    Image.new("RGB", (64, 64), (10, 20, 30)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_text("not an image")
    source = FolderSource.from_folder(tmp_path, ground_truth="none")
    with pytest.raises(NetrevealError) as err:
        list(stream_shards(source, Reading.for_model(adapter), 2, workers=1))
    assert str(err.value) == f"not an image file: {tmp_path / 'b.png'}"
    with pytest.raises(NetrevealError, match="--shard-size must be at least 1"):
        list(stream_shards(source, Reading.for_model(adapter), 0))
