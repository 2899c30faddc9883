"""Grad-CAM++ (Chattopadhyay et al., WACV 2018) at ``--layer``: a CAM whose channel weights count
every positive gradient, weighted per position.

The paper's closed form, for the exponential score Y = exp(S) of the class logit S and taking S
locally linear in the activation A (exact for ReLU networks, whose higher derivatives vanish):

    alpha_ij = g_ij^2 / (2 g_ij^2 + (sum_ab A_ab) g_ij^3),   g = dS/dA   (0 where the denominator is 0)
    w_k      = sum_ij alpha_ij ReLU(g_ij)

The common factor exp(S) of an image's weights is left out (it only scales the image's map, and
maps are min-max normalised). This is the form common implementations use.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from netreveal.attribution.cam import CAM
from netreveal.methods.cam import CAMMethod
from netreveal.methods.registry import register_method


class GradCAMPlusPlus(CAM):
    name = "gradcam++"
    params: ClassVar[dict] = {
        "weights": "sum_ij alpha_ij ReLU(g_ij), alpha = g^2 / (2 g^2 + sum(A) g^3), score exp(logit)"
    }

    def weights(self, activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        g2 = gradient.pow(2)
        denominator = 2 * g2 + activation.sum(dim=(2, 3), keepdim=True) * gradient.pow(3)
        zero = denominator == 0
        alpha = torch.where(zero, torch.zeros_like(g2), g2 / torch.where(zero, torch.ones_like(g2), denominator))
        return (alpha * gradient.clamp_min(0)).sum(dim=(2, 3), keepdim=True)


@register_method
class GradCAMPlusPlusMethod(CAMMethod):
    name = "gradcam++"
    title = "Grad-CAM++"
    cam = GradCAMPlusPlus()
