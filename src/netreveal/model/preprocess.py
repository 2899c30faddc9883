"""A model's input preparation as plain settings: picklable, so image-reading worker processes
prepare images exactly as :meth:`netreveal.model.adapter.ModelAdapter.preprocess` does without a
copy of the model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image


@dataclass(frozen=True)
class Preprocessor:
    """Resize to ``input_size / resize_ratio`` (the short side; both sides for ``crop_mode="squash"``;
    the long side, padded with the ``mean`` colour, for ``"border"``), then centre crop to
    ``input_size`` square: a PIL image becomes a (3, S, S) tensor in [0, 1]."""

    input_size: int
    resize_ratio: float = 1.0
    interpolation: str = "bilinear"
    crop_mode: str = "center"
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        image = image.convert("RGB")
        scale = round(self.input_size / self.resize_ratio)
        mode = InterpolationMode(self.interpolation)
        if self.crop_mode == "squash":
            image = TF.resize(image, [scale, scale], interpolation=mode, antialias=True)
        elif self.crop_mode == "border":
            width, height = image.size
            factor = scale / max(width, height)
            image = TF.resize(image, [max(1, round(height * factor)), max(1, round(width * factor))],
                              interpolation=mode, antialias=True)
            pad_w, pad_h = max(0, self.input_size - image.size[0]), max(0, self.input_size - image.size[1])
            fill = tuple(round(255 * v) for v in self.mean) if len(self.mean) == 3 else 0
            image = TF.pad(image, [pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=fill)
        else:
            image = TF.resize(image, scale, interpolation=mode, antialias=True)
        image = TF.center_crop(image, [self.input_size, self.input_size])
        return TF.to_tensor(image)


__all__ = ["Preprocessor"]
