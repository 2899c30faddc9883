"""Every entry point that hooks a model leaves no hook behind and restores ``model.training`` when
the model raises in the middle of its forward pass."""

import pytest
import torch
from torch import nn

from netreveal.concepts.layer_reading import LayerSpec, read_layers, trace_events
from netreveal.model.hook_list import HookList, hooks_on
from netreveal.model.hooks import LayerTaps, capture
from netreveal.model.layers import check_feature_maps, trace_order
from netreveal.studies.inv_study import forward_order

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


class Boom(RuntimeError):
    pass


class Tripwire(nn.Module):
    """Passes its input on, or raises once armed: an error in the middle of the forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.armed:
            raise Boom("fails mid-forward")
        return x


class Net(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(3, 4, 3, padding=1),  # 0: runs before the error
            nn.ReLU(),
            Tripwire(),  # 2
            nn.Conv2d(4, 4, 3, padding=1),  # 3: never runs once armed
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 3),
        )


def _hooks_left(model: nn.Module) -> list[str]:
    return [f"{name}.{kind}" for name, m in model.named_modules() for kind in HOOK_DICTS if getattr(m, kind, None)]


ENTRY_POINTS = {
    "capture": lambda m, x: capture(m, x, ["0", "3"]),
    "capture_no_backward": lambda m, x: capture(m, x, ["0", "3"], backward=False),
    "trace_order": lambda m, x: trace_order(m, x),
    "check_feature_maps": lambda m, x: check_feature_maps(m, ["0", "3"], x),
    "read_layers": lambda m, x: read_layers(m, x, [LayerSpec("0"), LayerSpec("3", "input")]),
    "read_layers_grad": lambda m, x: read_layers(m, x, [LayerSpec("0"), LayerSpec("3")], grad_from=0),
    "trace_events": lambda m, x: trace_events(m, x),
    "forward_order": lambda m, x: forward_order(m, ["3", "0"], x),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_an_error_mid_forward_leaves_no_hook_and_restores_training(entry):
    torch.manual_seed(0)
    model = Net()
    x = torch.randn(2, 3, 8, 8)
    run = ENTRY_POINTS[entry]
    run(model, x)  # works unarmed (and fills any trace cache before the failing call)
    model.train()
    model[2].armed = True
    with pytest.raises(Boom):
        run(model, torch.randn(2, 3, 10, 10))  # another shape, so no cached trace skips the forward pass
    assert _hooks_left(model) == []
    assert model.training and all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())


def test_trace_order_error_is_not_cached():
    model = Net()
    x = torch.randn(1, 3, 8, 8)
    model[2].armed = True
    with pytest.raises(Boom):
        trace_order(model, x)
    assert _hooks_left(model) == []
    model[2].armed = False
    assert trace_order(model, x) == ["0", "3"]


def test_layer_taps_remove_their_hooks_on_error():
    model = Net()
    model[2].armed = True
    with pytest.raises(Boom), LayerTaps([("0", model[0]), ("3", model[3])], track_grad=False) as taps:
        assert len(taps._hooks) == 2
        model(torch.randn(1, 3, 8, 8))
    assert _hooks_left(model) == []
    assert len(taps.outputs["0"]) == 1 and taps.outputs["3"] == []


def test_hook_list_owns_every_kind_and_removes_all_on_error():
    model = Net()
    with pytest.raises(Boom), HookList() as hooks:
        hooks.add(model[0], lambda m, a, o: None)
        hooks.add(model[0], lambda m, a: None, "forward_pre")
        hooks.add(model[3], lambda m, gi, go: None, "backward")
        assert sorted(_hooks_left(model)) == ["0._forward_hooks", "0._forward_pre_hooks", "3._backward_hooks"]
        raise Boom("error inside the block")
    assert _hooks_left(model) == [] and len(hooks) == 0


def test_hooks_on_removes_what_it_registered_when_one_registration_fails():
    model = Net()

    def factory(name: str):
        if name == "bad":
            raise Boom("cannot build this hook")
        return lambda m, a, o: None

    with pytest.raises(Boom):
        hooks_on([("0", model[0]), ("3", model[3]), ("bad", model[6])], factory)
    assert _hooks_left(model) == []
    with pytest.raises(ValueError, match="unknown hook kind"):
        HookList().add(model[0], factory("0"), "sideways")  # type: ignore[arg-type]
