"""What a torchvision or timm model brings along, read offline: its evaluation preprocessing
(input size, mean/std, interpolation, resize and crop) and the names of the classes it was made for.

torchvision: the transforms and ``meta["categories"]`` of the architecture's weight enum (the
weights named, else ``DEFAULT``); nothing is downloaded. timm: ``resolve_model_data_config`` and
the ImageNet subset that ``infer_imagenet_subset`` finds from the number of classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_MODES = ("center", "squash", "border")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")


@dataclass(frozen=True)
class Preprocessing:
    """Evaluation preprocessing: resize to ``input_size / resize_ratio`` (the short side for
    ``center``, both sides for ``squash``, the long side then pad for ``border``), then centre
    crop ``input_size``; normalise with ``mean``/``std``."""

    input_size: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize_ratio: float = 0.875
    interpolation: str = "bilinear"
    crop_mode: str = "center"


def torchvision_defaults(
    arch: str, weights_name: str | None = None, net: nn.Module | None = None
) -> tuple[Preprocessing, list[str] | None]:
    """Preprocessing and class names of torchvision's ``arch`` for ``weights_name`` (else ``DEFAULT``).

    A network with a fixed ``image_size`` (torchvision's ViTs) built without named weights takes
    the weights entry of that size (``vit_h_14``'s DEFAULT is 518 px, a fresh one 224 px)."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(arch)
        weights = enum.DEFAULT if weights_name in (None, "DEFAULT") else enum[weights_name]
    except (KeyError, ValueError):
        return Preprocessing(), None
    size = getattr(net, "image_size", None)
    if weights_name is None and isinstance(size, int):
        weights = next((w for w in [weights, *enum] if _crop_size(w.transforms()) == size), weights)
    categories = list(weights.meta.get("categories") or []) or None
    transform = weights.transforms()
    crop, resize = _crop_size(transform), getattr(transform, "resize_size", None)
    if not crop or not resize:  # detection, segmentation and video models preprocess otherwise
        return Preprocessing(), categories
    interpolation = getattr(transform, "interpolation", None)
    return Preprocessing(
        input_size=crop,
        mean=tuple(float(v) for v in transform.mean),
        std=tuple(float(v) for v in transform.std),
        resize_ratio=crop / float(resize[0]),
        interpolation=getattr(interpolation, "value", "bilinear"),
    ), categories


def _crop_size(transform) -> int | None:
    crop = getattr(transform, "crop_size", None)
    return int(crop[0]) if crop else None


def timm_defaults(net: nn.Module) -> tuple[Preprocessing, list[str] | None]:
    """Preprocessing and class names of a timm model, from its pretrained config."""
    from timm.data import ImageNetInfo, infer_imagenet_subset, resolve_model_data_config

    cfg = resolve_model_data_config(net)
    crop_mode, interpolation = cfg.get("crop_mode") or "center", cfg.get("interpolation")
    preprocessing = Preprocessing(
        input_size=int(cfg.get("input_size", (3, 224, 224))[-1]),
        mean=tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(float(v) for v in cfg.get("std", IMAGENET_STD)),
        resize_ratio=float(cfg.get("crop_pct") or 0.875),
        interpolation=interpolation if interpolation in INTERPOLATIONS else "bilinear",
        crop_mode=crop_mode if crop_mode in CROP_MODES else "center",
    )
    subset = infer_imagenet_subset(net)
    if subset is None:
        return preprocessing, None
    info = ImageNetInfo(subset)
    # "great white shark, white shark, man-eater, ..." -> "great white shark", as torchvision names them
    names = [info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes())]
    return preprocessing, names
