"""XNN: pull-away term, faithfulness, exact contributions, heatmaps, resume, save/load."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from netreveal import results
from netreveal.concepts import (
    XNN,
    explain_xnn,
    faithfulness,
    load_xnn,
    pull_away,
    save_xnn,
    train_xnn,
)
from netreveal.concepts.training import read_checkpoint
from netreveal.errors import NetrevealError
from netreveal.imaging import upsample


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread avoids thread start-up and contention costs on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TensorData(Dataset):
    def __init__(self, images, labels, fail_after=None):
        self.images, self.labels, self.fail_after, self.calls = images, labels, fail_after, 0
        self.targets = [int(y) for y in labels]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated crash")
        return self.images[i], int(self.labels[i])


class ToyNet(nn.Module):
    """1x1 conv features, ReLU, global average pooling, linear classifier (3 classes)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 6, 1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def toy_images(n, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 8, 8, generator=g) * 0.5
    for i in range(n):  # a bright blob of a random colour mix somewhere
        y, x = torch.randint(0, 5, (2,), generator=g).tolist()
        images[i, :, y : y + 3, x : x + 3] += torch.rand(3, 1, 1, generator=g)
    return images.clamp(0, 1)


def toy_data(n, seed):
    images = toy_images(n, seed)
    with torch.no_grad():
        labels = ToyNet().eval()(images).argmax(1)
    return TensorData(images, labels)


def test_pull_away_on_hand_built_bases():
    eye = torch.eye(4)[:3]
    assert pull_away(eye).item() == 0.0  # orthogonal
    assert pull_away(2.0 * eye).item() == 0.0  # scale does not matter
    v = torch.tensor([1.0, 2.0, -1.0])
    parallel = torch.stack([v, 3 * v, -0.5 * v])
    assert pull_away(parallel).item() == pytest.approx(1.0, abs=1e-6)  # all cos^2 = 1
    two = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # cos^2 = 1/2 for the one pair
    assert pull_away(two).item() == pytest.approx(0.5, abs=1e-6)
    three = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # pairs: 0, 1/2, 1/2 -> mean 1/3
    assert pull_away(three).item() == pytest.approx(1.0 / 3.0, abs=1e-6)
    assert pull_away(torch.tensor([[1.0, 2.0]])).item() == 0.0  # a single basis


def test_faithful_reconstruction_on_a_toy_model(tmp_path):
    net = ToyNet().eval()
    train, val = toy_data(240, 0), toy_data(120, 1)
    xnn = train_xnn(
        net, train, val, num_features=3, epochs=30, lr=0.01, batch_size=32, seed=0, top_images=4
    )
    assert (
        xnn.faithful == "head"
        and str(xnn.layer) == "fc@input"
        and str(xnn.map_layer) == "pool@input"
    )
    scores = faithfulness(xnn, net, val)
    assert scores["faithfulness"] >= 0.95
    assert scores["faithfulness"] == pytest.approx(xnn.history[-1]["val_faithfulness"])
    assert scores["model_accuracy"] == 1.0  # labels are the model's own predictions here
    # the pull-away term pushed the three bases towards orthogonality
    assert pull_away(xnn.bases.detach()).item() < 0.1

    images = val.images[:6]
    ex = explain_xnn(xnn, net, images)
    with torch.no_grad():
        f = net.pool(net.features(images)).flatten(1)
        x = torch.relu(xnn.encoder((f - xnn.mean) / xnn.scale))
        rec = net.fc(x @ torch.nn.functional.normalize(xnn.bases, dim=1) + xnn.decoder_bias)
    assert torch.allclose(ex.xfeatures, x, atol=1e-6)
    assert torch.allclose(ex.reconstructed, rec, atol=1e-5)
    assert torch.equal(ex.agreement, rec.argmax(1) == net(images).argmax(1))
    # contributions decompose the reconstructed logit exactly: sum_j x_j M[c, j] + constant
    const = net.fc(xnn.decoder_bias.detach()[None])[0]
    c = ex.targets
    assert torch.allclose(
        ex.contributions.sum(1) + const[c], rec.gather(1, c[:, None]).squeeze(1), atol=1e-5
    )
    # top images are the training images with the largest x-feature values
    with torch.no_grad():
        ft = net.pool(net.features(train.images)).flatten(1)
        xt = xnn.encode(ft)
    for j in range(3):
        expected = torch.sort(xt[:, j], descending=True, stable=True).indices[:4]
        assert torch.equal(xnn.top_images[j], expected)
    # save / load
    save_xnn(xnn, tmp_path / "xnn.pt")
    back = load_xnn(tmp_path / "xnn.pt")
    assert torch.equal(explain_xnn(back, net, images).reconstructed, ex.reconstructed)
    results.save(ex, tmp_path / "ex.pt")
    assert torch.equal(results.load(tmp_path / "ex.pt").heatmaps, ex.heatmaps)


def test_heatmap_is_the_spatial_projection_for_average_pooled_features():
    # f = mean_p A(p) and x_j = ReLU(e_j . (f - mu) / sigma + b_j): d x_j / d A_d(p) is
    # e_jd / (sigma_d h w) at every p, so the Grad-CAM map is ReLU(sum_d e_jd A_d / (sigma_d h w))
    net = ToyNet().eval()
    xnn = XNN(6, 3, 4, faithful="head", classifier=net.fc)
    with torch.no_grad():
        xnn.scale.uniform_(0.5, 2.0)
    from netreveal.concepts.layer_reading import LayerSpec

    xnn.layer = LayerSpec("fc", "input", "vector")
    xnn.map_layer = LayerSpec("pool", "input", "nchw")
    images = toy_images(5, 3)
    ex = explain_xnn(xnn, net, images)
    with torch.no_grad():
        A = net.features(images)  # (5, 6, 8, 8)
        w = xnn.encoder.weight / xnn.scale  # (4, 6)
        expected = torch.relu(torch.einsum("jd,bdhw->bjhw", w, A) / 64.0)
    assert torch.allclose(ex.heatmaps, upsample(expected, (8, 8)), atol=1e-6)
    assert ex.maps.shape == (5, 8, 8)


def test_linear_mode_for_a_layer_the_classifier_does_not_read():
    net = ToyNet().eval()
    train, val = toy_data(64, 0), toy_data(32, 1)
    xnn = train_xnn(
        net, train, val, layer="features.0", num_features=2, epochs=2, batch_size=32, top_images=0
    )
    assert xnn.faithful == "linear" and xnn.readout is not None
    assert torch.equal(xnn.concept_matrix(), xnn.readout.weight)
    with pytest.raises(NetrevealError, match="faithful='linear'"):
        train_xnn(net, train, val, layer="features.0", faithful="head", epochs=1)
    # the pooled final map is what the classifier reads: head mode works there
    on_map = train_xnn(net, train, val, layer="features", epochs=1, batch_size=32, top_images=0)
    assert on_map.faithful == "head"


def test_xnn_resume_gives_identical_weights(tmp_path):
    net = ToyNet().eval()
    images = toy_images(40, 0)
    with torch.no_grad():
        labels = net(images).argmax(1)
    val = toy_data(16, 1)
    kw = {
        "num_features": 3,
        "epochs": 4,
        "lr": 0.01,
        "batch_size": 8,
        "seed": 5,
        "cache_features": False,
        "top_images": 2,
    }
    full = train_xnn(net, TensorData(images, labels), val, checkpoint_dir=tmp_path / "a", **kw)
    # crash in epoch 3: 1 probe read + 2 epochs of 40 items + part of epoch 3
    crashing = TensorData(images, labels, fail_after=1 + 40 + 2 * 40 + 13)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_xnn(net, crashing, val, checkpoint_dir=tmp_path / "b", **kw)
    assert read_checkpoint(tmp_path / "b" / "checkpoint.pt")["epoch"] == 2
    resumed = train_xnn(net, TensorData(images, labels), val, checkpoint_dir=tmp_path / "b", **kw)
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert len(resumed.history) == 4
    assert torch.equal(resumed.top_images, full.top_images)
    assert math.isfinite(resumed.history[-1]["loss"])


def test_vit_heatmaps_use_the_last_block_input_norm():
    # the class token is all the classifier reads: patch tokens after the last attention never
    # reach it, so the heatmap map is the last block's ln_1 (its tokens meet in attention)
    import torchvision

    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        mlp_dim=32,
        num_classes=3,
    ).eval()
    images = torch.rand(12, 3, 32, 32)
    with torch.no_grad():
        labels = vit(images).argmax(1)
    data = TensorData(images, labels)
    xnn = train_xnn(vit, data, data, num_features=3, epochs=1, batch_size=6, top_images=0)
    assert str(xnn.layer) == "heads.head@input" and xnn.faithful == "head"
    assert str(xnn.map_layer) == "encoder.layers.encoder_layer_1.ln_1"
    ex = explain_xnn(xnn, vit, images[:4])
    assert ex.heatmaps.shape == (4, 3, 32, 32)
    assert (ex.heatmaps.flatten(2).amax(2) > 0).any()
