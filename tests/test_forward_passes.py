"""On a CPU, perturbation methods feed the model at most ``CPU_PIXELS_PER_PASS`` pixels per forward
pass, with the outputs of one whole-batch pass; on a GPU the whole batch goes in one pass."""

from __future__ import annotations

import torch
from torch import nn

from netreveal.attribution.perturb import probabilities
from netreveal.model.passes import CPU_PIXELS_PER_PASS, cpu_pass_size, forward_in_passes


class RecordingNet(nn.Module):
    """A small conv net that records the batch size of every call."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.head = nn.Linear(4, 5)
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(x))
        return self.head(self.conv(x).mean(dim=(2, 3)))


def test_pass_size_follows_the_pixel_budget():
    assert CPU_PIXELS_PER_PASS == 4 * 224 * 224
    assert cpu_pass_size(torch.zeros(64, 3, 224, 224)) == 4
    assert cpu_pass_size(torch.zeros(64, 3, 64, 64)) == 49
    assert cpu_pass_size(torch.zeros(2, 3, 1024, 1024)) == 1
    assert cpu_pass_size(torch.zeros(64, 3, 224, 224, device="meta")) == 64


def test_a_large_batch_is_fed_in_passes_with_the_same_outputs():
    net = RecordingNet().eval()
    x = torch.rand(10, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = net(x)
        net.batches.clear()
        got = forward_in_passes(net, x, torch.channels_last)
        assert net.batches == [4, 4, 2]
        torch.testing.assert_close(got, whole, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(probabilities(net, x, torch.contiguous_format), whole.softmax(dim=1),
                                   rtol=1e-5, atol=1e-6)


def test_small_images_go_in_one_pass():
    net = RecordingNet().eval()
    with torch.no_grad():
        forward_in_passes(net, torch.rand(40, 3, 64, 64), torch.contiguous_format)
    assert net.batches == [40]
