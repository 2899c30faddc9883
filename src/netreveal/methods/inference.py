"""The model a forward-only method scores images with (``--inference``), and the record of it."""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

from netreveal.model.adapter import ModelAdapter
from netreveal.model.onnx_runtime import scoring_model

R = TypeVar("R")


def scorer(adapter: ModelAdapter, images: torch.Tensor, inference: str) -> nn.Module:
    """``adapter.model``, or its ONNX Runtime twin for ``inference="onnxruntime"``."""
    return scoring_model(adapter.model, images[:1], inference)


def recorded(result: R, inference: str) -> R:
    """``result`` with the runtime that scored its images in its parameters."""
    result.params["inference"] = inference
    return result
