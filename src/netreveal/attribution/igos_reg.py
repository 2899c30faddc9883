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
- :class:`ReferenceBilateralTV`: the smoothness term of the iGOS++ reference code, half the sum of
  ``tv_term`` of the low-resolution mask and a bilateral TV of the upsampled mask whose pixel
  differences are not rescaled and whose weights compare pixels in the model's standardised
  units (see :func:`reference_bilateral_weights`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Upsampler:
    """Bilinear upsampling (h, w) -> (H, W) as two interpolation matrices, with its exact adjoint.

    ``up(M) = A_h M A_w^T`` is the same operator as ``F.interpolate(mode="bilinear",
    align_corners=align_corners)``; ``adjoint(G) = A_h^T G A_w`` carries a gradient at the image
    size back to the mask cells. ``align_corners=True`` (the I-GOS and iGOS++ reference code's
    ``UpsamplingBilinear2d``) puts the corner cells' centres on the corner pixels, so border cells
    reach the image edge at full weight; False treats cells as squares tiling the image.
    """

    def __init__(
        self,
        low: tuple[int, int],
        high: tuple[int, int],
        device=None,
        dtype=torch.float32,
        align_corners: bool = False,
    ):
        self.low, self.high = tuple(low), tuple(high)
        self.align_corners = bool(align_corners)
        self.a_h = self._matrix(low[0], high[0], device, dtype, self.align_corners)  # (H, h)
        self.a_w = self._matrix(low[1], high[1], device, dtype, self.align_corners)  # (W, w)

    @staticmethod
    def _matrix(n_low: int, n_high: int, device, dtype, align_corners: bool) -> torch.Tensor:
        eye = torch.eye(n_low, device=device, dtype=dtype)[:, None, :]  # (n_low, 1, n_low) signals
        if n_low == n_high:
            return torch.eye(n_low, device=device, dtype=dtype)
        cols = F.interpolate(
            eye, size=n_high, mode="linear", align_corners=align_corners
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


def reference_bilateral_weights(
    images: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge weights of the iGOS++ reference code for images in the model's standardised units.

    Vertical pairs (B, H-1, W): ``exp(-(channel mean of the difference)^2 / sigma)``; horizontal
    pairs (B, H, W-1): the channel mean of ``exp(-difference^2 / sigma)``. The two directions are
    weighted differently there, and so they are here.
    """
    dv = images[..., 1:, :] - images[..., :-1, :]
    dh = images[..., :, 1:] - images[..., :, :-1]
    wv = torch.exp(-dv.mean(dim=-3).square() / sigma)
    wh = torch.exp(-dh.square() / sigma).mean(dim=-3)
    return wv, wh


class ReferenceBilateralTV:
    """The iGOS++ reference smoothness term, value and gradient at the mask size.

    ``0.5 * (tv_term(M) + mean(wv * dv^2) + mean(wh * dh^2))`` where ``dv``, ``dh`` are neighbour
    differences of the upsampled mask (not rescaled) and ``wv``, ``wh`` come from
    :func:`reference_bilateral_weights` on ``images / std`` (the standardised pixels the reference
    compares).
    """

    def __init__(self, images: torch.Tensor, std: torch.Tensor, upsampler: Upsampler, sigma: float):
        self.upsampler = upsampler
        self.wv, self.wh = reference_bilateral_weights(images / std, sigma)

    def value(self, masks: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) values for (B, h, w) masks (``rows`` picks the images they belong to)."""
        wv, wh = (self.wv, self.wh) if rows is None else (self.wv[rows], self.wh[rows])
        ev, eh = _weighted_sq_diffs(self.upsampler.up(masks), wv, wh)
        return 0.5 * (tv_term(masks) + _mean_or_zero(ev) + _mean_or_zero(eh))

    def grad(self, masks: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Gradient of :meth:`value` with respect to the low-resolution masks, (B, h, w)."""
        wv, wh = (self.wv, self.wh) if rows is None else (self.wv[rows], self.wh[rows])
        g_up = _sq_diff_grad(self.upsampler.up(masks), wv, wh)
        return 0.5 * (tv_grad(masks) + self.upsampler.adjoint(g_up))
