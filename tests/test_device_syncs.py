"""Every registered method on a GPU, checked without one: run on the demo model under
:class:`device_audit.DeviceAudit` (a stand-in for the model's device), no operation mixes host and
device tensors, and the host reads and host-to-device copies do not grow with a method's inner loop
(iterations, path steps, samples, masks, windows): none happens per iteration. With CUDA, each
method also runs on the GPU and agrees with the CPU. A new method must say which loop it has
(``LOOPS``) or that it has none (``ONE_PASS``), or ``test_every_method_is_classified`` fails."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from device_audit import DeviceAudit

from netreveal import results
from netreveal.data.partsworld_truth import partsworld_inputs
from netreveal.methods import METHODS
from netreveal.metrics.perturbation import deletion_insertion
from netreveal.model import passes
from netreveal.model.adapter import load_model

NAMES = sorted(METHODS)
SMALL = {  # every method's cost knobs, small (unknown names are ignored by each method)
    "ig_steps": 16,
    "mask_size": 4,
    "igos_iterations": 1,
    "igos_steps": 2,
    "grid": 2,
    "sag_saliency_iterations": 1,
    "sag_saliency_steps": 2,
    "layers": "last:2",
    "occlusion_window": 16,
    "occlusion_stride": 16,
    "samples": 16,
    "segments": 8,
    "rise_masks": 32,
    "smooth_samples": 2,
    "batch_size": 2,
    "progress": False,
}
LOOPS = {  # (settings, settings that run the method's inner loop more often); SAG: its beam search in more batches
    "ig": ({}, {"ig_steps": 32}),
    "igos": ({}, {"igos_iterations": 2, "igos_steps": 4}),
    "igos++": ({}, {"igos_iterations": 2, "igos_steps": 4}),
    "kernelshap": ({}, {"samples": 64}),
    "lime": ({}, {"samples": 64}),
    "occlusion": ({}, {"occlusion_stride": 8}),
    "rise": ({}, {"rise_masks": 64}),
    "sag": ({"grid": 4, "batch_size": 16}, {"grid": 4, "batch_size": 1}),
    "smoothgrad": ({}, {"smooth_samples": 4}),
}
IMAGES = {"sag": 1}  # SAG searches image by image: one is enough (default: all three)
ONE_PASS = {"gradcam", "gradcam++", "gradient", "infodisent", "inv", "layercam", "xnn"}  # one pass per batch
# captum's integrated gradients copies its n step weights to the device once per internal batch of
# model inputs (torch.tensor(step_sizes).to(grad.device)); netreveal cannot avoid that copy.
ALLOWED = {"ig": "integrated_gradients.py"}


@pytest.fixture(scope="module")
def demo():
    return load_model("demo")


@pytest.fixture(scope="module")
def inputs(demo):
    return partsworld_inputs(demo, 3)


@pytest.fixture(scope="module")
def targets(demo, inputs):
    with torch.no_grad():
        return demo.model(inputs.images).argmax(dim=1)


def audited(name: str, adapter, images: torch.Tensor, targets: torch.Tensor, settings: dict):
    """The method run under a device audit, and how many times it called the model."""
    method = METHODS[name]
    options = method.options({**SMALL, **settings})
    audit = DeviceAudit(adapter.model)
    audit.host(images, targets)
    calls = []
    hook = adapter.model.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        # the audit stands in for a GPU, which takes a whole batch per pass (a CPU takes a few images)
        with audit, mock.patch.object(passes, "CPU_PIXELS_PER_PASS", 1 << 62):
            method.check(adapter, images[:1], options)
            method.run(adapter, images, targets, options)
    finally:
        hook.remove()
    return audit, len(calls)


def counted(audit: DeviceAudit, allowed: str | None) -> dict:
    events = {("sync", *key): n for key, n in audit.syncs.items()}
    events.update({("transfer", *key): n for key, n in audit.transfers.items()})
    return {key: n for key, n in events.items() if not (allowed and allowed in key[2])}


def test_the_audit_sees_mixes_reads_and_copies():
    model = torch.nn.Linear(4, 2)
    images = torch.rand(3, 4)
    audit = DeviceAudit(model)
    audit.host(images)
    with audit, torch.no_grad():
        device = next(model.parameters()).device
        model(images)  # (mix) host images into a device model: fails on a GPU
        x = images.to(device)  # (copy once)
        total = torch.zeros(2, device=device)
        for step in range(3):
            total = total + model(x).sum(0)
            float(total[0])  # (read per step)
            torch.tensor([step], device=device)  # (copy per step)
        on_device = torch.arange(4, device=device) + x[0]
        host = torch.arange(4) + 1  # stays on the host: no event
        on_device.cpu()  # (read once)
    assert list(audit.mixes) == [("linear", line_of("(mix)"))]
    assert audit.syncs == {("__float__", line_of("(read per step)")): 3, ("cpu", line_of("(read once)")): 1}
    assert audit.transfers == {("to", line_of("(copy once)")): 1, ("tensor", line_of("(copy per step)")): 3}
    assert host.sum() == 10


def line_of(marker: str) -> str:
    """How the audit names the line of this file that holds ``marker``."""
    lines = open(__file__, encoding="utf-8").read().splitlines()
    (number,) = [i + 1 for i, line in enumerate(lines) if f"# {marker}" in line]
    return f"{__file__}:{number}"


def test_a_model_off_the_cpu_copies_a_host_batch_over():
    from netreveal.model.adapter import _finish

    on_cpu = load_model("demo")
    assert not on_cpu.model._forward_pre_hooks  # nothing changes on the CPU
    elsewhere = _finish(load_model("demo"), torch.device("meta"))  # "meta": a device that is not the host
    out = elsewhere.model(torch.rand(2, 3, 64, 64))
    assert out.device.type == "meta" and out.shape == (2, len(elsewhere.class_names))


def test_only_targets_netreveal_checked_skip_the_check():
    from netreveal.errors import NetrevealError
    from netreveal.targets import mark_checked, resolve_targets, slice_targets

    logits = torch.zeros(2, 5)
    with pytest.raises(NetrevealError, match="class index 7 out of range"):
        resolve_targets(torch.tensor([1, 7]), logits)  # a caller's tensor is always checked
    checked = mark_checked(torch.tensor([1, 2, 3]), 5)
    audit = DeviceAudit(torch.nn.Linear(1, 1))
    with audit:
        idx = resolve_targets(slice_targets(checked, 1, 3), logits)
    assert idx.tolist() == [2, 3] and not audit.syncs  # its slices are not read again
    with pytest.raises(NetrevealError, match="out of range"):
        resolve_targets(checked[:2] + 4, logits)  # a new tensor made from it is checked again


def test_every_method_is_classified():
    assert set(LOOPS) | ONE_PASS == set(NAMES), "name the new method's inner loop in LOOPS, or add it to ONE_PASS"
    assert not set(LOOPS) & ONE_PASS


@pytest.mark.parametrize("name", NAMES)
def test_no_operation_mixes_host_and_device_tensors(name, demo, inputs, targets):
    audit, _ = audited(name, demo, inputs.images, targets, {})
    assert not audit.mixes, f"{name} mixes host and device tensors (an error on a GPU):\n{audit.report()}"


@pytest.mark.parametrize("name", sorted(LOOPS))
def test_host_syncs_do_not_grow_with_the_inner_loop(name, demo, inputs, targets):
    settings, more_settings = LOOPS[name]
    n = IMAGES.get(name, len(targets))
    once, calls_once = audited(name, demo, inputs.images[:n], targets[:n], settings)
    more, calls_more = audited(name, demo, inputs.images[:n], targets[:n], more_settings)
    assert calls_more > calls_once, f"{more_settings} should call the model more often than {settings}"
    allowed = ALLOWED.get(name)
    assert counted(more, allowed) == counted(once, allowed), (
        f"{name}: host reads or copies grow with {more_settings}\n-- before:\n{once.report()}\n"
        f"-- after:\n{more.report()}")


def test_deletion_insertion_reads_nothing_per_step(demo, inputs, targets):
    maps = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    audits = []
    for steps in (6, 12):
        audit = DeviceAudit(demo.model)
        audit.host(inputs.images, targets, maps)
        with audit:
            deletion_insertion(demo.model, inputs.images, maps, targets, steps=steps, batch_size=4)
        audits.append(audit)
    assert not audits[1].mixes, audits[1].report()
    assert counted(audits[0], None) == counted(audits[1], None), audits[1].report()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", NAMES)
def test_a_method_on_the_gpu_agrees_with_the_cpu(name, demo, inputs, targets):
    """What the batch size must not change must not change on a GPU either (full-precision float32:
    TF32 off for the comparison)."""
    method = METHODS[name]
    options = method.options(SMALL)
    gpu = load_model("demo", device="cuda")
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        method.check(gpu, inputs.images[:1], options)
        on_gpu = method.run(gpu, inputs.images, targets.cuda(), options)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    on_cpu = method.run(demo, inputs.images, targets, options)
    expected = results._encode(method.batch_invariants(on_cpu))
    got = results._encode(method.batch_invariants(on_gpu))  # on the CPU, as results are saved
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3, equal_nan=True)
    if method.heatmaps is not None:
        torch.testing.assert_close(method.heatmaps(on_gpu).cpu(), method.heatmaps(on_cpu).cpu(), atol=1e-3, rtol=0)
