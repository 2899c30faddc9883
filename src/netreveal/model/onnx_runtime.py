"""Forward passes through ONNX Runtime for the methods that only score images (no gradients).

LIME, KernelSHAP, RISE, occlusion and SAG's patch scoring push thousands of perturbed images
through the model and never need a gradient. On a CPU, ONNX Runtime makes these methods 1.4x
(ResNet-50) to 2.3x (EfficientNet-Lite0) faster than eager PyTorch fed in passes
(``benchmarks/bench_onnx_inference.py``), with one export per model and input size
and no recompilation per batch size (``torch.compile`` recompiles; TorchScript freezing is
deprecated). Outputs agree with PyTorch within float rounding (about 1e-5 on logits), so a
result can differ from the PyTorch one only where a score sits that close to a threshold.

The model is exported once per (model, input shape) with the ``torch.export``-based exporter,
batch size left free, and the session is kept for the life of the model object.
"""

from __future__ import annotations

import io
import re
import weakref
from typing import Any

import numpy as np
import torch
from torch import nn

from netreveal.errors import NetrevealError

INFERENCE_CHOICES = ("torch", "onnxruntime")
ONNX_CHUNK_SIZE = 8  # images per session run (see OnnxRuntimeModel)
CHECK_TOLERANCE = 1e-3  # largest |logit difference| allowed, relative to the largest |logit| (at least 1)

# (model -> {input shape: OnnxRuntimeModel}); weak so a session dies with its model.
_SESSIONS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], OnnxRuntimeModel]] = weakref.WeakKeyDictionary()


class OnnxRuntimeModel(nn.Module):
    """``model``'s forward pass (images in, logits out) run by an ONNX Runtime CPU session.

    Inference only: inputs are detached, outputs carry no graph. ``threads`` defaults to
    PyTorch's intra-op thread count, so both runtimes use the same cores. A batch is run
    ``chunk_size`` images at a time: before it did, ONNX Runtime's CPU kernels cost 1.3x
    (EfficientNet-Lite0, 224 px) to 1.9x (demo CNN, 64 px) more per image at batch 64 than at
    batch 4 (forward table of ``benchmarks/bench_onnx_inference.py``), even on small images where
    PyTorch's cost is flat, so :func:`netreveal.model.passes.forward_in_passes`'s cap is not enough.
    """

    def __init__(self, model: nn.Module, example: torch.Tensor, threads: int | None = None,
                 chunk_size: int = ONNX_CHUNK_SIZE) -> None:
        super().__init__()
        ort = _import_onnxruntime()
        if chunk_size < 1:
            raise NetrevealError(f"chunk_size must be at least 1, got {chunk_size}")
        self.chunk_size = chunk_size
        self.input_shape = tuple(example.shape[1:])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        self._session = ort.InferenceSession(export_onnx(model, example), options,
                                             providers=["CPUExecutionProvider"])
        self._input_name = self._session.get_inputs()[0].name
        self._check_against(model, example)

    def _check_against(self, model: nn.Module, example: torch.Tensor) -> None:
        """Raise when the twin does not return ``model``'s logits on ``example`` and on three
        other images (an export can bake a value computed outside the graph into a constant)."""
        generator = torch.Generator().manual_seed(0)
        probe = example[:1].detach().to("cpu", torch.float32)
        probe = torch.cat([probe, torch.rand((3, *probe.shape[1:]), generator=generator)])
        with torch.inference_mode():
            expected = model(probe.to(next((p.device for p in model.parameters()), probe.device))).float().cpu()
            got = self(probe)
        gap = float((got - expected).abs().max()) if got.shape == expected.shape else float("inf")
        if not gap <= CHECK_TOLERANCE * max(1.0, float(expected.abs().max())):
            raise NetrevealError(f"the model's ONNX export does not reproduce its outputs (largest difference "
                                 f"{gap:.3g}); run with --inference torch")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[1:]) != self.input_shape:
            raise NetrevealError(f"this ONNX Runtime model takes images of shape {self.input_shape}, "
                                 f"got {tuple(images.shape[1:])}")
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        parts = [self._session.run(None, {self._input_name: array[i : i + self.chunk_size]})[0]
                 for i in range(0, max(len(array), 1), self.chunk_size)]
        logits = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return torch.from_numpy(logits).to(images.device)


def export_onnx(model: nn.Module, example: torch.Tensor) -> bytes:
    """``model`` as an ONNX graph (bytes) whose batch size is free; ``example`` fixes the rest of
    the input shape. One clear :class:`NetrevealError` when the model cannot be exported."""
    _import_onnxruntime()
    sample = example[:1].detach().to("cpu", torch.float32).expand(2, *example.shape[1:]).contiguous()
    batch = torch.export.Dim("batch", min=1, max=65536)
    training = model.training
    model.eval()
    try:
        program = torch.onnx.export(model, (sample,), dynamo=True, dynamic_shapes=({0: batch},),
                                    verbose=False, report=False)
    except Exception as error:  # the exporter raises many types; the user needs the root cause's first line
        raise NetrevealError(f"the model cannot be exported to ONNX for --inference onnxruntime "
                             f"({_root_cause(error)}); "
                             f"run with --inference torch") from error
    finally:
        model.train(training)
    buffer = io.BytesIO()
    program.save(buffer)
    return buffer.getvalue()


def scoring_model(model: nn.Module, example: torch.Tensor, inference: str = "torch") -> nn.Module:
    """The module forward-only methods call: ``model`` itself (``inference="torch"``) or its ONNX
    Runtime twin (``"onnxruntime"``, made once per model and input shape; CPU models only)."""
    if inference == "torch":
        return model
    if inference != "onnxruntime":
        raise NetrevealError(f"--inference must be one of {', '.join(INFERENCE_CHOICES)}, got {inference!r}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if device.type != "cpu":
        raise NetrevealError(f"--inference onnxruntime runs on the CPU, and the model is on {device}; "
                             f"run with --inference torch")
    shape = tuple(example.shape[1:])
    sessions = _SESSIONS.setdefault(model, {})
    if shape not in sessions:
        sessions[shape] = OnnxRuntimeModel(model, example)
    return sessions[shape]


def _root_cause(error: BaseException) -> str:
    """The first line of the innermost cause of ``error``, without terminal colour codes."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _import_onnxruntime() -> Any:
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise NetrevealError("--inference onnxruntime needs the onnx extra: "
                             "pip install -c constraints.txt 'netreveal[onnx]'") from error
    return onnxruntime
