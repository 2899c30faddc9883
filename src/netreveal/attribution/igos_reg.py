"""Mask resampling and the regularisers of I-GOS / iGOS++, with closed-form gradients.

Masks are (B, h, w) with 1 = keep the image, 0 = replace it by the baseline. The optimisation needs
the gradient of every regulariser at every step; computing them in closed form keeps autograd for
the model alone.

- ``l1_term``: mean |1 - M| over mask cells (small salient regions).
- ``tv_term``: mean squared difference of vertical neighbours plus that of horizontal neighbours.
- ``bilateral_tv_term``: the same on the upsampled mask, each pair weighted by
  ``exp(-d^2 / sigma)`` where ``d^2`` is the squared colour difference of the two image pixels
  (averaged over channels), so the mask may change freely across image edges. Differences of the
  upsampled mask are measured per mask cell (multiplied by the upsampling factor), so on a flat
  image it is close to ``tv_term`` of the low-resolution mask and one weight means the same at
  every mask and image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Upsampler:
    """Bilinear upsampling (h, w) -> (H, W) as two interpolation matrices, with its exact adjoint.

    ``up(M) = A_h M A_w^T`` is the same operator as ``F.interpolate(mode="bilinear",
    align_corners=False)``; ``adjoint(G) = A_h^T G A_w`` carries a gradient at the image size back
    to the mask cells.
    """

    def __init__(
        self, low: tuple[int, int], high: tuple[int, int], device=None, dtype=torch.float32
    ):
        self.low, self.high = tuple(low), tuple(high)
        self.a_h = self._matrix(low[0], high[0], device, dtype)  # (H, h)
        self.a_w = self._matrix(low[1], high[1], device, dtype)  # (W, w)

    @staticmethod
    def _matrix(n_low: int, n_high: int, device, dtype) -> torch.Tensor:
        eye = torch.eye(n_low, device=device, dtype=dtype)[:, None, :]  # (n_low, 1, n_low) signals
        if n_low == n_high:
            return torch.eye(n_low, device=device, dtype=dtype)
        cols = F.interpolate(
            eye, size=n_high, mode="linear", align_corners=False
        )  # (n_low, 1, n_high)
        return cols[:, 0, :].t().contiguous()

    def up(self, masks: torch.Tensor) -> torch.Tensor:
        """(..., h, w) -> (..., H, W)."""
        return self.a_h @ masks @ self.a_w.t()

    def adjoint(self, grads: torch.Tensor) -> torch.Tensor:
        """(..., H, W) -> (..., h, w): the transpose of :meth:`up`."""
        return self.a_h.t() @ grads @ self.a_w

    @property
    def factor(self) -> tuple[float, float]:
        return self.high[0] / self.low[0], self.high[1] / self.low[1]


def l1_term(masks: torch.Tensor) -> torch.Tensor:
    """Mean |1 - M| per mask, (B,)."""
    return (1 - masks).abs().flatten(1).mean(dim=1)


def l1_grad(masks: torch.Tensor) -> torch.Tensor:
    """Gradient of :func:`l1_term` (the subgradient 0 where M = 1, as autograd takes it)."""
    n = masks.shape[-1] * masks.shape[-2]
    return -torch.sign(1 - masks) / n


def _weighted_sq_diffs(
    x: torch.Tensor,
    wv: torch.Tensor | None,
    wh: torch.Tensor | None,
    sv: float = 1.0,
    sh: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    dv = (x[..., 1:, :] - x[..., :-1, :]) * sv
    dh = (x[..., :, 1:] - x[..., :, :-1]) * sh
    ev = dv.square() if wv is None else wv * dv.square()
    eh = dh.square() if wh is None else wh * dh.square()
    return ev, eh


def _mean_or_zero(t: torch.Tensor) -> torch.Tensor:
    if t.shape[-1] == 0 or t.shape[-2] == 0:
        return t.new_zeros(t.shape[:-2])
    return t.flatten(-2).mean(dim=-1)


def _sq_diff_grad(
    x: torch.Tensor,
    wv: torch.Tensor | None,
    wh: torch.Tensor | None,
    sv: float = 1.0,
    sh: float = 1.0,
) -> torch.Tensor:
    """Gradient of mean(wv * (sv*dv)^2) + mean(wh * (sh*dh)^2) with respect to x."""
    grad = torch.zeros_like(x)
    h, w = x.shape[-2:]
    if h > 1:
        dv = x[..., 1:, :] - x[..., :-1, :]
        gv = 2 * sv * sv * dv / ((h - 1) * w)
        if wv is not None:
            gv = gv * wv
        grad[..., 1:, :] += gv
        grad[..., :-1, :] -= gv
    if w > 1:
        dh = x[..., :, 1:] - x[..., :, :-1]
        gh = 2 * sh * sh * dh / (h * (w - 1))
        if wh is not None:
            gh = gh * wh
        grad[..., :, 1:] += gh
        grad[..., :, :-1] -= gh
    return grad


def tv_term(masks: torch.Tensor) -> torch.Tensor:
    """Total variation (squared neighbour differences) of (B, h, w) masks, (B,)."""
    ev, eh = _weighted_sq_diffs(masks, None, None)
    return _mean_or_zero(ev) + _mean_or_zero(eh)


def tv_grad(masks: torch.Tensor) -> torch.Tensor:
    """Gradient of :func:`tv_term`, (B, h, w)."""
    return _sq_diff_grad(masks, None, None)


def bilateral_weights(images: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge weights exp(-d^2/sigma), vertical (B, H-1, W) and horizontal (B, H, W-1) pairs."""
    dv = (images[..., 1:, :] - images[..., :-1, :]).square().mean(dim=-3)
    dh = (images[..., :, 1:] - images[..., :, :-1]).square().mean(dim=-3)
    return torch.exp(-dv / sigma), torch.exp(-dh / sigma)


class BilateralTV:
    """Bilateral total variation of masks for fixed images: value and gradient at the mask size."""

    def __init__(self, images: torch.Tensor, upsampler: Upsampler, sigma: float):
        self.upsampler = upsampler
        self.wv, self.wh = bilateral_weights(images, sigma)
        self.sv, self.sh = upsampler.factor

    def value(self, masks: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) values for (B, h, w) masks (``rows`` picks the images they belong to)."""
        wv, wh = (self.wv, self.wh) if rows is None else (self.wv[rows], self.wh[rows])
        ev, eh = _weighted_sq_diffs(self.upsampler.up(masks), wv, wh, self.sv, self.sh)
        return _mean_or_zero(ev) + _mean_or_zero(eh)

    def grad(self, masks: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Gradient of :meth:`value` with respect to the low-resolution masks, (B, h, w)."""
        wv, wh = (self.wv, self.wh) if rows is None else (self.wv[rows], self.wh[rows])
        g_up = _sq_diff_grad(self.upsampler.up(masks), wv, wh, self.sv, self.sh)
        return self.upsampler.adjoint(g_up)


def bilateral_tv_term(
    images: torch.Tensor, masks: torch.Tensor, sigma: float = 0.01
) -> torch.Tensor:
    """Bilateral TV of (B, h, w) masks on (B, 3, H, W) images, (B,). See the module docstring."""
    up = Upsampler(masks.shape[-2:], images.shape[-2:], masks.device, masks.dtype)
    return BilateralTV(images, up, sigma).value(masks)
