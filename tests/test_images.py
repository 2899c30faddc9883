"""Reading user images: each kind of bad file gets its own clear error."""

import pytest
from PIL import Image

from netreveal.data.images import image_records, label_index, list_images, load_image
from netreveal.errors import NetrevealError


def test_class_layout(tmp_path):
    for cls in ["cat", "dog"]:
        (tmp_path / cls).mkdir()
        Image.new("RGB", (10, 10)).save(tmp_path / cls / "a.png")
    records = image_records(tmp_path)
    assert [r.label_name for r in records] == ["cat", "dog"]
    assert label_index("Dog", ["cat", "dog"]) == 1 and label_index("eel", ["cat"]) is None


def test_missing_and_empty(tmp_path):
    with pytest.raises(NetrevealError, match="path not found"):
        list_images(tmp_path / "nope")
    with pytest.raises(NetrevealError, match="no images found"):
        list_images(tmp_path)


def test_not_an_image(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_text("hello")
    with pytest.raises(NetrevealError, match="not an image file"):
        load_image(bad)


def test_truncated(tmp_path):
    path = tmp_path / "t.png"
    Image.effect_noise((64, 64), 50).convert("RGB").save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NetrevealError, match="truncated or corrupt"):
        load_image(path)


def test_decompression_bomb(tmp_path):
    path = tmp_path / "big.png"
    Image.new("1", (10_000, 5_000)).save(path)  # tiny file, 50 M pixels
    with pytest.raises(NetrevealError, match="image too large"):
        load_image(path)
