"""InfoDisent: orthogonality, signed pooling, non-negative weights, token grids, prototypes, resume."""

import math

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import Dataset

from netreveal import results
from netreveal.concepts import (
    FeatureExtractor,
    InfoDisentHead,
    explain_infodisent,
    load_head,
    mine_prototypes,
    save_head,
    signed_pool,
    train_infodisent,
)
from netreveal.concepts.backbone import cell_boxes
from netreveal.concepts.infodisent import explanation_size, gumbel_max
from netreveal.concepts.layer_reading import LayerSpec
from netreveal.concepts.prototypes import box_part, part_purity
from netreveal.concepts.training import fit, read_checkpoint
from netreveal.errors import NetrevealError
from netreveal.model.demo import DemoCNN


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


def toy_data(n, size=16, seed=0, classes=3):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, size, size, generator=g) * 0.3
    labels = torch.arange(n) % classes
    for i in range(n):  # a bright square in a class-specific colour at a random place
        y, x = torch.randint(0, size - 6, (2,), generator=g).tolist()
        images[i, int(labels[i]), y : y + 6, x : x + 6] = 1.0
    return images, labels


def tiny_cnn(seed=0):
    torch.manual_seed(seed)
    return DemoCNN(num_classes=3, widths=(6, 8), depths=(1, 1)).eval()


def test_rotation_stays_orthogonal_while_training():
    torch.manual_seed(1)
    head = InfoDisentHead(24, 4, tau=0.5)
    assert torch.equal(head.rotation(), torch.eye(24))  # S = 0 -> U = I
    feats = torch.randn(32, 24, 3, 3)
    labels = torch.randint(0, 4, (32,))

    def step(idx, noise):
        return nn.functional.cross_entropy(head(feats[idx], noise), labels[idx])

    fit(
        head,
        step,
        dict,
        n_train=32,
        epochs=5,
        lr=0.05,
        batch_size=8,
        seed=0,
        kind="t",
        after_step=head.project_,
    )
    U = head.rotation().detach()
    assert (U - torch.eye(24)).abs().max() > 0.05  # it did move
    assert torch.allclose(U.T @ U, torch.eye(24), atol=1e-5)
    assert torch.allclose(U @ U.T, torch.eye(24), atol=1e-5)


def test_signed_pooling_on_hand_built_maps():
    maps = torch.tensor(
        [
            [
                [[1.0, -2.0], [3.0, 0.5]],  # max ReLU(J) = 3, max ReLU(-J) = 2 -> 1
                [[-1.0, -4.0], [-0.5, -2.0]],  # 0 - 4 -> -4
                [[0.0, 0.0], [0.0, 0.0]],  # 0
                [[2.5, 2.5], [0.25, 1.0]],  # 2.5 - 0
            ]
        ]
    )
    assert signed_pool(maps).tolist() == [[1.0, -4.0, 0.0, 2.5]]


def test_gumbel_relaxation_samples_positions_by_softmax():
    # Gumbel-max trick: with a tiny temperature the relaxed max picks position p with
    # probability softmax(values)_p
    values = torch.tensor([0.0, 1.0, 2.0]).expand(40000, 3).contiguous()
    picked = gumbel_max(values, tau=1e-4, generator=torch.Generator().manual_seed(0))
    freq = torch.stack([(picked - v).abs().lt(1e-3).float().mean() for v in (0.0, 1.0, 2.0)])
    assert torch.allclose(freq, torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0), atol=0.01)
    # seeded: the same generator state gives the same relaxation
    a = gumbel_max(values[:5], 0.5, torch.Generator().manual_seed(3))
    b = gumbel_max(values[:5], 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # a clear maximum is found at a low temperature
    far = torch.tensor([[0.0, 50.0, 1.0]])
    assert gumbel_max(far, 0.1, torch.Generator().manual_seed(0)).item() == pytest.approx(
        50.0, abs=1e-4
    )


def test_weights_stay_non_negative_under_negative_gradients():
    head = InfoDisentHead(6, 3)
    with torch.no_grad():
        head.weight.uniform_(0.0, 0.05)
    feats = torch.rand(16, 6, 2, 2) + 0.1  # positive features: v > 0, so d(logits)/dW > 0

    def step(idx, noise):
        return head(feats[idx], noise).sum()  # minimising the logits pushes every W negative

    fit(
        head,
        step,
        dict,
        n_train=16,
        epochs=3,
        lr=0.02,
        batch_size=4,
        seed=0,
        kind="t",
        after_step=head.project_,
    )
    assert head.weight.min().item() >= 0.0
    assert head.class_weights().min().item() >= 0.0
    assert (head.weight == 0).all()  # driven onto the constraint and held there
    # forgetting the projection still never uses a negative weight
    with torch.no_grad():
        head.weight.fill_(-1.0)
    assert head.class_weights().min().item() == 0.0
    # and a weight at 0 still receives its gradient (it can grow again)
    with torch.no_grad():
        head.weight.zero_()
        head.S.zero_()  # U = I: v = max of the positive features > 0
    head.zero_grad()
    (-head(feats)).sum().backward()
    assert (head.weight.grad < 0).all()


def test_vit_token_grid_drops_class_token_and_keeps_values():
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32
    ).eval()
    images = torch.rand(3, 3, 32, 32)
    ext = FeatureExtractor(vit, None, example=images[:1])
    assert ext.spec == LayerSpec("encoder", "output", "tokens", 1)
    grid = ext(images)
    assert grid.shape == (3, 16, 4, 4)
    tokens = {}
    handle = vit.encoder.register_forward_hook(
        lambda m, a, out: tokens.setdefault("t", out.detach())
    )
    with torch.no_grad():
        vit(images)
    handle.remove()
    t = tokens["t"]
    for i in range(4):
        for j in range(4):
            assert torch.equal(grid[:, :, i, j], t[:, 1 + 4 * i + j, :])
    # a named inner layer: same rule
    inner = FeatureExtractor(vit, "encoder.layers.encoder_layer_0", example=images[:1])
    assert inner.spec.layout == "tokens" and inner.spec.prefix_tokens == 1
    # patch boxes are the patches
    assert cell_boxes(torch.tensor([1, 2]), (4, 4), (32, 32)).tolist() == [16, 8, 24, 16]


def test_cnn_default_layer_is_the_map_before_global_pooling():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=5).eval()
    x = torch.rand(2, 3, 64, 64)
    ext = FeatureExtractor(net, None, example=x[:1])
    assert str(ext.spec) == "avgpool@input"
    seen = {}
    h = net.layer4.register_forward_hook(
        lambda m, a, out: seen.setdefault("x", out.detach().clone())
    )
    with torch.no_grad():
        net(x)
    h.remove()
    assert torch.equal(ext(x), seen["x"])
    demo = tiny_cnn()
    assert str(FeatureExtractor(demo, None, example=x[:1]).spec) == "pool@input"
    with pytest.raises(NetrevealError):
        FeatureExtractor(demo, "features.nope", example=x[:1])


@pytest.mark.parametrize(
    ("arch", "expected", "channels"),
    [("densenet121", "features", 1024), ("convnext_tiny", "avgpool@input", 768)],
)
def test_default_layer_of_torchvision_cnns(arch, expected, channels):
    torch.manual_seed(0)
    net = torchvision.models.get_model(arch, weights=None, num_classes=4).eval()
    ext = FeatureExtractor(net, None, example=torch.rand(1, 3, 64, 64))
    assert str(ext.spec) == expected
    assert ext(torch.rand(2, 3, 64, 64)).shape == (2, channels, 2, 2)


class PatchMeans(nn.Module):
    """A stand-in backbone whose feature map is the mean colour of each 8x8 patch."""

    def __init__(self):
        super().__init__()
        self.feat = nn.AvgPool2d(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(self.pool(self.feat(x)).flatten(1))


def test_prototype_mining_finds_planted_top_images():
    g = torch.Generator().manual_seed(0)
    n = 30
    images = torch.rand(n, 3, 32, 32, generator=g) * 0.2  # (4 x 4 grid of 8 px patches)
    strength = torch.rand(n, 3, generator=g)  # each image: planted patch strengths per channel
    cells = torch.randint(0, 4, (n, 3, 2), generator=g)
    for i in range(n):
        for k in range(3):
            r, c = cells[i, k].tolist()
            images[i, k, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8] = 0.3 + strength[i, k]
    data = TensorData(images, torch.zeros(n, dtype=torch.long))
    head = InfoDisentHead(3, 2)
    head.layer = FeatureExtractor(PatchMeans(), None, example=images[:1]).spec
    head.image_size = [32, 32]
    # with U = I, v_k = planted strength + 0.3 (negative side: -max(ReLU(-J)) = 0 everywhere)
    with torch.no_grad():
        head.S.zero_()
    protos = mine_prototypes(head, PatchMeans(), data, m=4, batch_size=7)
    expected = strength.argsort(dim=0, descending=True)[:4].T  # (3, 4)
    assert torch.equal(protos.indices[0], expected)
    for k in range(3):
        for rank, i in enumerate(expected[k].tolist()):
            r, c = cells[i, k].tolist()
            assert protos.cells[0, k, rank].tolist() == [r, c]
            assert protos.boxes[0, k, rank].tolist() == [8 * c, 8 * r, 8 * c + 8, 8 * r + 8]
            assert protos.scores[0, k, rank].item() == pytest.approx(
                0.3 + strength[i, k].item(), abs=1e-5
            )
    # a rotation by 90 degrees in the (0, 1) plane: J_0 = -x_1, so channel 1's top images become
    # component 0's negative prototypes
    with torch.no_grad():
        head.S.zero_()
        head.S[1, 0] = math.pi / 2  # exp of [[0, -pi/2], [pi/2, 0]]: a quarter turn
    assert torch.allclose(head.rotation()[0], torch.tensor([0.0, -1.0, 0.0]), atol=1e-6)
    protos = mine_prototypes(head, PatchMeans(), data, m=4, batch_size=7)
    assert torch.equal(protos.indices[1, 0], expected[1])
    # precomputed features give the same answer
    feats = FeatureExtractor(PatchMeans(), None, example=images[:1])(images)
    again = mine_prototypes(head, None, data, m=4, features=feats)
    assert torch.equal(again.indices, protos.indices)


def test_part_purity_counts_the_dominant_part():
    masks = torch.zeros(4, 2, 16, 16, dtype=torch.bool)
    masks[:, 0, 0:8, 0:8] = True  # part "wheel" top-left in every image
    masks[:, 1, 8:16, 8:16] = True  # part "star" bottom-right
    parts = [["wheel", "star"]] * 4
    assert box_part([0, 0, 8, 8], masks[0], parts[0]) == "wheel"
    assert box_part([8, 0, 16, 8], masks[0], parts[0]) == "background"
    maps = torch.zeros(4, 2, 2, 2)
    maps[:, 0, 0, 0] = 1.0  # component 0 always fires on the wheel
    maps[:3, 1, 1, 1] = 1.0  # component 1: star in three images, background in the fourth
    maps[3, 1, 0, 1] = 2.0
    res = part_purity(maps, list(masks), parts, top=4)
    assert res.purity.tolist() == [1.0, 0.75]
    assert res.dominant == ["wheel", "star"]


def test_training_resumes_to_identical_weights(tmp_path):
    images, labels = toy_data(36)
    val = TensorData(*toy_data(12, seed=1))
    net = tiny_cnn()
    kw = {
        "epochs": 4,
        "lr": 0.05,
        "batch_size": 8,
        "seed": 3,
        "cache_features": False,
        "prototypes": 2,
    }
    full = train_infodisent(
        net, TensorData(images, labels), val, checkpoint_dir=tmp_path / "a", **kw
    )
    # crash in epoch 3: 1 probe read + 2 epochs of 36 items + some of epoch 3
    crashing = TensorData(images, labels, fail_after=1 + 36 * 2 + 20)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_infodisent(net, crashing, val, checkpoint_dir=tmp_path / "b", **kw)
    assert read_checkpoint(tmp_path / "b" / "checkpoint.pt")["epoch"] == 2
    resumed = train_infodisent(
        net, TensorData(images, labels), val, checkpoint_dir=tmp_path / "b", **kw
    )
    assert torch.equal(resumed.S, full.S)
    assert torch.equal(resumed.weight, full.weight)
    assert [h["val_accuracy"] for h in resumed.history] == [h["val_accuracy"] for h in full.history]
    assert len(resumed.history) == 4
    assert torch.equal(resumed.prototypes.indices, full.prototypes.indices)
    # the head learned the task beyond chance, and W >= 0
    assert full.history[-1]["val_accuracy"] > 0.5
    assert full.weight.min() >= 0
    # other settings cannot resume from this checkpoint
    with pytest.raises(NetrevealError, match="other training settings"):
        train_infodisent(
            net,
            TensorData(images, labels),
            val,
            checkpoint_dir=tmp_path / "b",
            **{**kw, "lr": 0.01},
        )


def test_explanations_decompose_the_logit_and_round_trip(tmp_path):
    images, labels = toy_data(24)
    net = tiny_cnn()
    data = TensorData(images, labels)
    head = train_infodisent(net, data, data, epochs=3, lr=0.05, batch_size=8, seed=0, prototypes=3)
    ex = explain_infodisent(head, net, images[:5], top=8)
    # contributions of all components sum to the explained logit
    feats = FeatureExtractor(net, head.layer, example=images[:1])(images[:5])
    v = signed_pool(head.components(feats))
    w = head.class_weights().detach()
    full = w[ex.targets] * v
    assert torch.allclose(
        full.sum(1), ex.logits.gather(1, ex.targets[:, None]).squeeze(1), atol=1e-5
    )
    assert torch.equal(ex.targets, ex.logits.argmax(1))
    # shown components are the top contributions, in order
    assert torch.allclose(ex.contributions, full.sort(dim=1, descending=True).values[:, :8])
    assert torch.equal(ex.sizes, explanation_size(full, 0.2))
    for i in range(5):
        top = full[i].max()
        assert (
            int(ex.sizes[i]) == int((full[i] > 0.2 * top).sum())
            if top > 0
            else int(ex.sizes[i]) == 0
        )
        for t in range(8):
            k, side = int(ex.components[i, t]), int(ex.sides[i, t])
            assert side == int(v[i, k] < 0)
            assert ex.prototype_ids[i, t].tolist() == head.prototypes.indices[side, k].tolist()
    assert ex.heatmaps.shape == (5, 8, 16, 16) and ex.heatmaps.min() >= 0
    assert torch.equal(ex.class_weights, w)
    # explaining another class
    other = explain_infodisent(head, net, images[:5], target=2)
    assert (other.targets == 2).all()
    # save and load the head and the explanation
    save_head(head, tmp_path / "head.pt")
    back = load_head(tmp_path / "head.pt")
    assert torch.equal(back.S, head.S) and torch.equal(back.weight, head.weight)
    assert back.layer == head.layer and torch.equal(
        back.prototypes.indices, head.prototypes.indices
    )
    again = explain_infodisent(back, net, images[:5], top=8)
    assert torch.equal(again.components, ex.components)
    results.save(ex, tmp_path / "ex.pt")
    loaded = results.load(tmp_path / "ex.pt")
    assert torch.equal(loaded.heatmaps, ex.heatmaps) and loaded.class_names == ex.class_names
