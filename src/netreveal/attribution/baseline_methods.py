"""Occlusion, LIME, KernelSHAP and RISE as methods the CLI and reports know ("occlusion", "lime",
"kernelshap", "rise"). Importing this module registers them.

They run each function's defaults scaled to the image size, on ``opts.batch_size * 4`` perturbed
images per forward pass (at least 32), with ``opts.seed`` for the sampled ones. Occlusion, LIME and
KernelSHAP hide pixels with ``opts.baseline`` (blur by default); RISE keeps the paper's black.
"""

from __future__ import annotations

import torch

from netreveal.methods import Method, Options, register_method
from netreveal.model.adapter import ModelAdapter
from netreveal.report import Report


def _forward_batch(opts: Options) -> int:
    return max(opts.batch_size * 4, 32)


def _run_occlusion(adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, opts: Options):
    from netreveal.attribution.captum_baselines import occlusion

    return occlusion(adapter.model, images, targets, baseline=opts.baseline, batch_size=_forward_batch(opts),
                     progress=opts.progress)


def _run_lime(adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, opts: Options):
    from netreveal.attribution.captum_baselines import lime

    return lime(adapter.model, images, targets, seed=opts.seed, baseline=opts.baseline,
                batch_size=_forward_batch(opts), progress=opts.progress)


def _run_kernel_shap(adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, opts: Options):
    from netreveal.attribution.captum_baselines import kernel_shap

    return kernel_shap(adapter.model, images, targets, seed=opts.seed, baseline=opts.baseline,
                       batch_size=_forward_batch(opts), progress=opts.progress)


def _run_rise(adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, opts: Options):
    from netreveal.attribution.rise import rise

    return rise(adapter.model, images, targets, seed=opts.seed, batch_size=_forward_batch(opts),
                progress=opts.progress)


def describe(result) -> str:
    """A one-line summary of the settings behind a perturbation method's heatmap."""
    p = result.params
    if result.method == "occlusion":
        (wh, ww), (sh, sw) = p["window"], p["stride"]
        return f"{wh}x{ww} px window, stride {sh}x{sw}, {p['baseline']} baseline"
    if result.method in ("lime", "kernelshap"):
        return f"{p['n_samples']} samples over {p['segments']} SLIC superpixels, {p['baseline']} baseline, seed {p['seed']}"
    if result.method == "rise":
        return f"{p['n_masks']} masks, {p['cell']}x{p['cell']} grid, p {p['p']}, {p['baseline']} baseline, seed {p['seed']}"
    return ""


def _report(title: str):
    def add(report: Report, keys: list[str], images: torch.Tensor, result, opts: Options) -> None:
        caption = describe(result)
        for i, key in enumerate(keys):
            report.add_heatmap(key, title, images[i], result.maps[i], caption=caption)

    return add


register_method(Method("occlusion", "Occlusion", _run_occlusion, lambda r: r.maps, _report("Occlusion")))
register_method(Method("lime", "LIME", _run_lime, lambda r: r.maps, _report("LIME")))
register_method(Method("kernelshap", "KernelSHAP", _run_kernel_shap, lambda r: r.maps, _report("KernelSHAP")))
register_method(Method("rise", "RISE", _run_rise, lambda r: r.maps, _report("RISE")))
