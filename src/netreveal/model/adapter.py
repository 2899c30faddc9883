"""Loading a classifier with its preprocessing and class names, from whatever the user has.

Every model netreveal returns takes RGB images in [0, 1]; the per-channel normalisation is the
first step inside the model (:class:`NormalizedModel`), so baselines such as "black" and blurring
happen in pixel space for every method alike. Layer names stay those of the wrapped network.

Model specs understood by :func:`load_model`:
- ``demo``: the shipped parts-world CNN;
- a torchvision name (``resnet50`` or ``torchvision:resnet50``);
- ``timm:NAME`` (when timm is installed);
- ``package.module:factory`` (a callable returning an ``nn.Module``).
Weights come from ``weights=``: a local ``.safetensors`` / state-dict file (read with
``weights_only=True``; ``weights_map=`` renames its keys, see :mod:`netreveal.model.keymap`), a
torchvision weight enum name such as ``IMAGENET1K_V2`` / ``DEFAULT``, or ``pretrained`` (the
library's default weights, torchvision or timm; these download, so need internet). Without
weights a torchvision or timm model is randomly initialised and says so (``info["warning"]``).
Preprocessing and ImageNet class names come with torchvision and timm models
(:mod:`netreveal.model.imagenet`); explicit arguments override them.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from netreveal.errors import NetrevealError
from netreveal.model.checkpoint import load_checkpoint
from netreveal.model.imagenet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocessing,
    timm_defaults,
    torchvision_defaults,
)
from netreveal.model.keymap import BY_ORDER, describe_mapping, parse_rules
from netreveal.model.preprocess import Preprocessor

CHECKPOINT_SUFFIXES = {".safetensors", ".pt", ".pth", ".bin", ".ckpt"}
PRETRAINED = "pretrained"


class NormalizedModel(nn.Module):
    """``net((x - mean) / std)`` for images ``x`` in [0, 1]."""

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.netreveal_inner = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.netreveal_inner((x - self.mean) / self.std)


@dataclass
class ModelAdapter:
    """A model ready to explain: takes (B, 3, S, S) images in [0, 1], returns logits."""

    model: nn.Module
    name: str
    input_size: int
    class_names: list[str]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize_ratio: float = 1.0
    info: dict = field(default_factory=dict)
    interpolation: str = "bilinear"
    crop_mode: str = "center"
    key_mapping: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def device(self) -> torch.device:
        from netreveal.model.hooks import model_device

        return model_device(self.model)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """A PIL image to a (3, S, S) tensor in [0, 1] (see :class:`~netreveal.model.preprocess.Preprocessor`)."""
        return self.preprocessor()(image)

    def preprocessor(self) -> Preprocessor:
        """This model's input preparation as plain, picklable settings (for image-reading workers)."""
        return Preprocessor(self.input_size, self.resize_ratio, self.interpolation, self.crop_mode, tuple(self.mean))

    def class_name(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else str(index)

    def describe(self) -> dict:
        """What to store with results about the model."""
        return {"model": self.name, "input_size": self.input_size, "classes": len(self.class_names), **self.info}


def _torchvision_builder(name: str):
    import torchvision

    available = set(torchvision.models.list_models())
    if name not in available:
        return None
    return lambda **kw: torchvision.models.get_model(name, **kw)


def _factory(spec: str):
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise NetrevealError(f"cannot import model module {module_name!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise NetrevealError(f"{module_name!r} has no callable {attr!r}")
    return factory


def _read_class_names(path: str | os.PathLike) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise NetrevealError(f"class-names file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        names = json.loads(text)
        if isinstance(names, dict):  # {"0": "tench", ...}
            names = [names[k] for k in sorted(names, key=lambda k: int(k))]
        return [str(n) for n in names]
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_model(
    spec: str = "demo",
    weights: str | os.PathLike | None = None,
    *,
    num_classes: int | None = None,
    class_names: list[str] | str | os.PathLike | None = None,
    input_size: int | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    device: str | torch.device = "cpu",
    weights_map: str | Sequence[str] | None = None,
) -> ModelAdapter:
    """Build the model named by ``spec`` with its weights, preprocessing and class names."""
    device = check_device(device)
    if spec == "demo":
        from netreveal.model.demo import load_demo_model

        if weights is not None:
            raise NetrevealError("the demo model ships its own weights; do not pass --weights")
        if weights_map:
            raise NetrevealError("--weights-map renames the keys of a --weights file; the demo model takes none")
        model, meta = load_demo_model()
        adapter = ModelAdapter(
            model=model,
            name="demo",
            input_size=int(meta["input_size"]),
            class_names=list(meta["class_names"]),
            mean=tuple(meta["mean"]),
            std=tuple(meta["std"]),
            info={"held_out_accuracy": meta.get("held_out_accuracy")},
        )
        return _finish(adapter, device)

    names = _read_class_names(class_names) if isinstance(class_names, (str, os.PathLike)) else class_names
    if num_classes is None and names:
        num_classes = len(names)
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    weights_file = _weights_file(weights)
    rules = parse_rules(weights_map)
    if rules and weights_file is None:
        raise NetrevealError(f"--weights-map renames the keys of a checkpoint file; --weights {weights} is not a file")

    named = None if weights is None or weights_file is not None else str(weights)
    arch = spec.split(":", 1)[1] if spec.startswith(("torchvision:", "timm:")) else spec
    factory = ":" in spec and not spec.startswith(("torchvision:", "timm:"))
    if spec.startswith("timm:"):
        net, prep, known_names = _build_timm(arch, kwargs, named)
    elif factory:
        if named is not None:
            raise NetrevealError(f"weights file not found: {weights}")
        net = _factory(spec)(**kwargs)
        if not isinstance(net, nn.Module):
            raise NetrevealError(f"{spec} did not return a torch.nn.Module")
        prep, known_names = Preprocessing(), None
    else:
        net, prep, known_names = _build_torchvision(spec, arch, kwargs, named)
    mapping = load_checkpoint(net, weights_file, arch, weights_map) if weights_file is not None else {}
    n_out = _count_outputs(net, input_size or prep.input_size)
    if names is None:
        names = known_names if known_names and len(known_names) == n_out else [f"class_{i}" for i in range(n_out)]
    elif len(names) != n_out:
        raise NetrevealError(f"{len(names)} class names given but the model has {n_out} outputs")
    info: dict = {"weights": str(weights) if weights is not None else None}
    if rules:
        info["weights_map"] = rules if isinstance(rules, str) else [str(rule) for rule in rules]
    if weights is None and not factory:
        info["warning"] = random_weights_warning(spec)
    adapter = ModelAdapter(
        model=NormalizedModel(net, mean or prep.mean, std or prep.std),
        name=spec,
        input_size=int(input_size or prep.input_size),
        class_names=list(names),
        mean=tuple(mean or prep.mean),
        std=tuple(std or prep.std),
        resize_ratio=prep.resize_ratio,
        info=info,
        interpolation=prep.interpolation,
        crop_mode=prep.crop_mode,
        key_mapping=mapping,
    )
    return _finish(adapter, device)


def random_weights_warning(spec: str) -> str:
    """The one-line warning for a model that runs with random weights."""
    return (f"{spec} runs with random weights (no --weights given): its predictions and explanations mean nothing;"
            f" pass a checkpoint file or --weights {PRETRAINED}")


def loading_notes(adapter: ModelAdapter) -> list[str]:
    """Lines for the command line's stderr: the random-weights warning, and the key mapping that
    ``by-order`` chose (every file key -> model key)."""
    lines = []
    if adapter.info.get("warning"):
        lines.append(f"netreveal: warning: {adapter.info['warning']}")
    if adapter.info.get("weights_map") == BY_ORDER:
        lines.append(f"netreveal: --weights-map by-order matched {len(adapter.key_mapping)} tensors "
                     "(file key -> model key):")
        lines.extend(f"  {line}" for line in describe_mapping(adapter.key_mapping))
    return lines


def _weights_file(weights: str | os.PathLike | None) -> Path | None:
    """``weights`` as a checkpoint path, or None when it names library weights (or is None)."""
    if weights is None:
        return None
    path = Path(weights)
    if path.suffix in CHECKPOINT_SUFFIXES or path.exists():
        return path
    return None


def _build_timm(arch: str, kwargs: dict, named: str | None):
    try:
        import timm
    except ImportError as exc:
        raise NetrevealError("timm is not installed: pip install 'netreveal[timm]'") from exc
    if not timm.is_model(arch):
        raise NetrevealError(f"unknown timm model {arch!r}")
    if named is not None and named != PRETRAINED:
        raise NetrevealError(f"weights file not found: {named} (timm models take a checkpoint file or '{PRETRAINED}')")
    try:
        net = timm.create_model(arch, pretrained=named == PRETRAINED, **kwargs)
    except RuntimeError as exc:
        raise NetrevealError(f"cannot build timm model {arch!r}: {exc}".splitlines()[0]) from exc
    except Exception as exc:  # hub and network errors come in many types
        raise NetrevealError(f"cannot download timm weights of {arch} (no internet?): {type(exc).__name__}") from exc
    prep, names = timm_defaults(net)
    return net, prep, names


def _build_torchvision(spec: str, arch: str, kwargs: dict, named: str | None):
    builder = _torchvision_builder(arch)
    if builder is None:
        raise NetrevealError(
            f"unknown model {spec!r}: not a torchvision model name, 'timm:NAME', 'demo' or 'module:factory'"
        )
    enum_name = "DEFAULT" if named == PRETRAINED else named
    if enum_name is not None:
        net = _torchvision_pretrained(arch, enum_name)
    else:
        try:
            net = builder(weights=None, **kwargs)
        except (TypeError, ValueError) as exc:
            raise NetrevealError(f"cannot build {arch}: {exc}") from exc
    prep, names = torchvision_defaults(arch, enum_name, net)
    return net, prep, names


def _torchvision_pretrained(arch: str, enum_name: str) -> nn.Module:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(arch)[enum_name] if enum_name != "DEFAULT" else (
            torchvision.models.get_model_weights(arch).DEFAULT
        )
    except (KeyError, ValueError) as exc:
        raise NetrevealError(f"weights not found: {enum_name!r} is neither a file nor a weight name of {arch}") from exc
    try:
        return torchvision.models.get_model(arch, weights=weights)
    except Exception as exc:  # network errors come in many types
        raise NetrevealError(
            f"cannot download {arch} weights {enum_name} (no internet?): {type(exc).__name__}"
        ) from exc


@torch.no_grad()
def _count_outputs(net: nn.Module, size: int) -> int:
    was = net.training
    net.eval()
    try:
        out = net(torch.zeros(1, 3, size, size))
    except Exception as exc:
        raise NetrevealError(f"the model does not run on a {size}x{size} RGB image: {exc}".splitlines()[0]) from exc
    finally:
        net.train(was)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise NetrevealError("the model must return logits of shape (batch, classes)")
    return int(out.shape[1])


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device this machine has; NetrevealError for an unknown or absent one."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise NetrevealError(f"unknown device {str(device)!r}: use cpu, cuda, cuda:N or mps") from None
    if dev.type == "meta":
        raise NetrevealError("device 'meta' holds no data: use cpu, cuda, cuda:N or mps")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise NetrevealError(f"device {str(device)!r} is not available: no CUDA GPU found (use --device cpu)")
        if dev.index is not None and dev.index >= count:
            raise NetrevealError(f"device {str(device)!r} is not available: {count} CUDA GPU(s) found")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise NetrevealError(f"device {str(device)!r} is not available: no Apple GPU found (use --device cpu)")
    try:
        torch.empty(1, device=dev)
    except Exception as exc:  # backends fail in many ways (no driver, not compiled in, no module)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0][:120]
        raise NetrevealError(f"device {str(device)!r} is not available: {reason}") from exc
    return dev


def _finish(adapter: ModelAdapter, device: torch.device) -> ModelAdapter:
    adapter.model.to(device).eval()
    if device.type != "cpu":  # images are read on the host: a batch given there is copied over first
        adapter.model.register_forward_pre_hook(_inputs_on_model_device)
    return adapter


def _inputs_on_model_device(model: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: tensor arguments on another device go to the model's (methods move their
    images once, before their loops; this serves any other caller)."""
    from netreveal.model.hooks import model_device

    device = model_device(model)
    return tuple(a.to(device) if isinstance(a, torch.Tensor) and a.device != device else a for a in args)
