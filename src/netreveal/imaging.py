"""Image tensor helpers shared by methods, metrics and reports. Images are (B, 3, H, W) in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from netreveal.errors import NetrevealError

BASELINES = ("blur", "black", "mean")


def gaussian_kernel1d(kernel_size: int, sigma: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd length ``kernel_size``."""
    half = kernel_size // 2
    x = torch.arange(-half, half + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(images: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (kernel clipped to the image size)."""
    _, c, h, w = images.shape
    kernel_size = int(kernel_size) | 1
    limit = 2 * (min(h, w) - 1) + 1  # reflect padding needs pad < size
    kernel_size = max(1, min(kernel_size, limit if limit % 2 else limit - 1))
    if kernel_size == 1 or sigma <= 0:
        return images.clone()
    k = gaussian_kernel1d(kernel_size, sigma, images.device, images.dtype)
    pad = kernel_size // 2
    out = F.pad(images, (pad, pad, 0, 0), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    out = F.pad(out, (0, 0, pad, pad), mode="reflect")
    return F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def blur_params(size: int, kernel_at_224: int = 51, sigma_at_224: float = 50.0) -> tuple[int, float]:
    """Kernel size and sigma for a blurred baseline, scaled from the 224 px reference."""
    scale = size / 224.0
    kernel = max(3, round(kernel_at_224 * scale) | 1)
    return kernel, sigma_at_224 * scale


def make_baseline(images: torch.Tensor, kind: str | torch.Tensor = "blur") -> torch.Tensor:
    """The 'nothing here' image: heavy Gaussian blur (default), black, each image's mean colour, or
    a given tensor broadcast to the images' shape (a (3, H, W) image or a full batch)."""
    if isinstance(kind, torch.Tensor):
        base = kind.to(images.device, images.dtype)
        try:
            return base.expand_as(images).contiguous()
        except RuntimeError as exc:
            raise NetrevealError(
                f"baseline of shape {tuple(kind.shape)} does not match images {tuple(images.shape)}"
            ) from exc
    if kind == "blur":
        kernel, sigma = blur_params(min(images.shape[-2:]))
        return gaussian_blur(images, kernel, sigma)
    if kind == "black":
        return torch.zeros_like(images)
    if kind == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images).clone()
    raise NetrevealError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, h, w) or (B, C, h, w) maps to ``size``."""
    squeeze = maps.dim() == 3
    x = maps[:, None] if squeeze else maps
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x[:, 0] if squeeze else x


def minmax(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale each map (over its last two dims) to [0, 1]; a constant map becomes all zeros."""
    flat = maps.flatten(-2)
    lo = flat.min(dim=-1, keepdim=True).values
    hi = flat.max(dim=-1, keepdim=True).values
    span = hi - lo
    out = torch.where(span > eps, (flat - lo) / span.clamp_min(eps), torch.zeros_like(flat))
    return out.view_as(maps)
