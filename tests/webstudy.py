"""A tiny reveal study for the web app tests: real PNGs, items with six reveal frames each."""

from __future__ import annotations

import io

from PIL import Image

from netreveal.store.models import REVEAL_PERCENTS, Item, Media, RevealFrame, Study, StudyImage

CLASSES = ["cat", "dog", "fish"]
# image key -> (true class, predicted class); each image gets one item per layer
IMAGES = {"img0": ("cat", "cat"), "img1": ("dog", "cat"), "img2": ("fish", "fish")}
LAYERS = ["block1", "block2"]


def png(seed: int, size: int = 16, grey: bool = False) -> bytes:
    """A small PNG whose colour depends on ``seed``."""
    mode = "L" if grey else "RGB"
    colour = (seed * 37) % 256 if grey else ((seed * 67) % 256, (seed * 131 + 80) % 256, (seed * 29 + 160) % 256)
    out = io.BytesIO()
    Image.new(mode, (size, size), colour).save(out, format="PNG")
    return out.getvalue()


def make_web_study(store, name: str = "tiny", images: dict | None = None, layers: list | None = None) -> dict:
    """Insert a study with one item per (image, layer) and six reveal frames per item.

    Returns ids: {"study", "items": [item ids], "answer": {item_id: class}, "frames": {item_id: [media ids]},
    "image_media": {item_id: media id}, "map_media": {item_id: media id}}.
    """
    images = images or IMAGES
    layers = layers or LAYERS
    seed = 0
    with store.session() as s:
        study = Study(name=name, model="tiny", classes=list(CLASSES), layers=list(layers), params={})
        s.add(study)
        s.flush()
        ids = {"study": study.id, "items": [], "answer": {}, "frames": {}, "image_media": {}, "map_media": {}}
        for key, (true_class, predicted) in images.items():
            seed += 1
            media = Media(study_id=study.id, png=png(seed))
            s.add(media)
            s.flush()
            image = StudyImage(study_id=study.id, key=key, true_class=true_class, predicted_class=predicted,
                               probability=0.8, media_id=media.id)
            s.add(image)
            s.flush()
            for depth, layer in enumerate(layers):
                seed += 1
                map_media = Media(study_id=study.id, png=png(seed, grey=True))
                s.add(map_media)
                s.flush()
                item = Item(study_id=study.id, image_id=image.id, layer=layer, depth=depth, cluster=0,
                            weight=50.0, channels=[0, 1], map_media_id=map_media.id)
                s.add(item)
                s.flush()
                frames = []
                for step, percent in enumerate(REVEAL_PERCENTS, start=1):
                    seed += 1
                    frame_media = Media(study_id=study.id, png=png(seed))
                    s.add(frame_media)
                    s.flush()
                    s.add(RevealFrame(item_id=item.id, step=step, percent=percent, media_id=frame_media.id))
                    frames.append(frame_media.id)
                ids["items"].append(item.id)
                ids["answer"][item.id] = true_class
                ids["frames"][item.id] = frames
                ids["image_media"][item.id] = media.id
                ids["map_media"][item.id] = map_media.id
        return ids
