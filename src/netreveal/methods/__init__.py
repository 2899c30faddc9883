"""Explanation methods, one file each, behind one interface (:class:`Method`).

    from netreveal.methods import get_methods
    (gradcam,) = get_methods("gradcam")
    run = gradcam.configure(layer="layer4", batch_size=8)
    result = run.run(adapter, images, targets)          # an Explanation

Add a method: one module in this package with a ``@register_method`` class (see the README).
"""

from netreveal.methods.base import Evaluation, Explanation, Method, MethodRun, as_runs
from netreveal.methods.options import MethodOptions, option
from netreveal.methods.registry import METHODS, get_methods, method_names, register_method

__all__ = [
    "METHODS",
    "Evaluation",
    "Explanation",
    "Method",
    "MethodOptions",
    "MethodRun",
    "as_runs",
    "get_methods",
    "method_names",
    "option",
    "register_method",
]
