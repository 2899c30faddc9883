"""Typed method options: every setting is a dataclass field whose metadata is its CLI flag.

A method declares its own options dataclass, deriving from :class:`MethodOptions` (the settings
every method takes: batch size, seed, progress). A setting that several methods read (the CAM
layer, the INV layers, the "nothing here" baseline, the surrogate sample counts) is declared once
here as a field factory and used by each of them, so it is one flag with one default and one help.

This module imports no torch: the CLI builds its flags from these classes without loading models.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from netreveal.errors import NetrevealError

BASELINE_CHOICES = ("blur", "black", "mean")  # the names netreveal.imaging.make_baseline knows

# Perturbation methods push many perturbed copies of an image through the model at once:
# PERTURBED_PER_BATCH times --batch-size per forward pass, and never fewer than MIN_PERTURBED.
PERTURBED_PER_BATCH = 4
MIN_PERTURBED = 32
# Deletion/insertion scoring also runs this many times --batch-size images per forward pass.
SCORING_PER_BATCH = 4


def perturbed_batch(batch_size: int) -> int:
    """Model inputs per forward pass for methods that score perturbed copies of images."""
    return max(batch_size * PERTURBED_PER_BATCH, MIN_PERTURBED)


def scoring_batch(batch_size: int) -> int:
    """Model inputs per forward pass for the deletion/insertion metrics."""
    return batch_size * SCORING_PER_BATCH


def option(default: Any, help: str, *, minimum: float | None = None, choices: tuple | None = None,
           cli: bool = True, sweep: str | None = None) -> Any:
    """A dataclass field that is also a CLI flag ``--<name-with-dashes>``.

    ``minimum`` / ``choices`` are checked whenever options are made; ``cli=False`` keeps the
    setting out of the command line; ``sweep`` (a noun such as "size") lets ``evaluate`` take a
    comma-separated list and run the method once per value.
    """
    meta = {"help": help, "minimum": minimum, "choices": choices, "cli": cli, "sweep": sweep}
    return dataclasses.field(default=default, metadata=meta)


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def check_value(field: dataclasses.Field, value: Any) -> None:
    """Raise :class:`NetrevealError` when ``value`` breaks the field's minimum or choices."""
    minimum, choices = field.metadata.get("minimum"), field.metadata.get("choices")
    if value is None:
        return
    if minimum is not None and value < minimum:
        raise NetrevealError(f"{flag_name(field.name)} must be at least {minimum}, got {value!r}")
    if choices is not None and value not in choices:
        raise NetrevealError(f"{flag_name(field.name)} must be one of {', '.join(map(str, choices))}, got {value!r}")


@dataclasses.dataclass
class MethodOptions:
    """Settings every method takes. Subclass it to declare a method's own settings."""

    batch_size: int = option(16, "images per forward/backward pass", minimum=1)
    seed: int = option(0, "seed of every random draw (sampled masks, noise, t-SNE)")
    progress: bool = option(True, "show progress bars", cli=False)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            check_value(field, getattr(self, field.name))

    @property
    def perturbed_batch(self) -> int:
        """Perturbed images per forward pass (see :func:`perturbed_batch`)."""
        return perturbed_batch(self.batch_size)

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None = None, **overrides: Any) -> MethodOptions:
        """Options from any mapping of setting names to values (others are ignored), then ``overrides``."""
        merged = {**(values or {}), **overrides}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"{cls.__name__} has no setting {min(unknown)!r}")
        return cls(**{k: v for k, v in merged.items() if k in names})


def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of every field of an options dataclass."""
    return typing.get_type_hints(cls)


# ---------------------------------------------------------------- settings several methods read


def layer_option() -> Any:
    return option("auto:1", "layer of the CAM methods (Grad-CAM, Grad-CAM++, LayerCAM): dotted name or selector "
                  "(auto:1: the last conv of a plain CNN, the last residual block of a ResNet, the last transformer "
                  "block whose patch tokens reach the head)")


def layers_option() -> Any:
    return option("auto:9", "layers of the layer-wise methods (INV): names or a selector such as last:9, "
                  "last:9:block, last:3:relu (auto:9: the model's nine default layers, as for auto:1)")


def baseline_option() -> Any:
    return option("blur", "'nothing here' image of deletion/insertion, SAG, occlusion, LIME and KernelSHAP",
                  choices=BASELINE_CHOICES)


def samples_option() -> Any:
    return option(None, "perturbed samples per image for LIME and KernelSHAP (default: ten per superpixel, "
                  "at least 256)", minimum=2)


def segments_option() -> Any:
    return option(None, "SLIC superpixels per image for LIME and KernelSHAP (default: one per ~80 pixels, "
                  "16 to 100)", minimum=1)


def inference_option() -> Any:
    return option("torch", "how the forward-only methods (LIME, KernelSHAP, RISE, occlusion, SAG's patch scoring) "
                  "run the model: torch, or onnxruntime (CPU; the model exported to ONNX once per run and checked; "
                  "1.2x-2.3x faster than torch in the benchmarks, most on depthwise-conv models; scores agree "
                  "within float rounding; needs the onnx extra)",
                  choices=("torch", "onnxruntime"))
