"""Model access: layer selection, activation/gradient taps, loading models and their preprocessing."""

from netreveal.model.hooks import Capture, capture
from netreveal.model.layers import resolve_layers, trace_order

__all__ = ["Capture", "capture", "resolve_layers", "trace_order"]
