"""Pictures as PNG bytes and back (how the store keeps images, cluster maps and reveal frames)."""

from __future__ import annotations

import io

import numpy as np
import torch


def png_bytes(picture: torch.Tensor) -> bytes:
    """A (3, H, W) RGB or (H, W) grey tensor in [0, 1] as PNG bytes."""
    return encode_pngs(picture[None])[0]


def png_tensor(data: bytes) -> torch.Tensor:
    """PNG bytes back to a (3, H, W) or (H, W) float tensor in [0, 1]."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        array = np.asarray(image.convert("RGB" if image.mode not in ("L", "I;16") else "L"))
    tensor = torch.from_numpy(array.copy()).float() / 255.0
    return tensor.permute(2, 0, 1) if tensor.dim() == 3 else tensor


def encode_pngs(pictures: torch.Tensor) -> list[bytes]:
    """PNG bytes of a batch of (3, H, W) or (H, W) pictures in [0, 1] (one conversion, then PIL)."""
    from PIL import Image

    array = (pictures.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()
    if array.dim() == 4:
        array = array.permute(0, 2, 3, 1)
    out = []
    for one in array.numpy():
        buffer = io.BytesIO()
        Image.fromarray(one, mode="RGB" if one.ndim == 3 else "L").save(buffer, format="PNG", compress_level=3)
        out.append(buffer.getvalue())
    return out


__all__ = ["encode_pngs", "png_bytes", "png_tensor"]
