"""What InfoDisent and XNN share: provenance, one save / load path, files written before the
provenance field existed, and the feature source both train from."""

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from netreveal import results
from netreveal.concepts import (
    XNN,
    InfoDisentHead,
    load_head,
    load_xnn,
    save_head,
    save_xnn,
    train_infodisent,
    train_xnn,
)
from netreveal.concepts.backbone import FeatureExtractor, FeatureSource
from netreveal.concepts.demo_assets import DEMO_INFODISENT, DEMO_XNN
from netreveal.concepts.xnn import mine_top_images
from netreveal.errors import NetrevealError


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Pairs(Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        self.targets = [int(y) for y in labels]
        self.reads = 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        self.reads += 1
        return self.images[i], int(self.labels[i])


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 8, 8, generator=g)
    with torch.no_grad():
        labels = Tiny().eval()(images).argmax(1)
    return Pairs(images, labels)


@pytest.fixture(scope="module")
def trained():
    net = Tiny().eval()
    train, val = data(24, 0), data(12, 1)
    head = train_infodisent(net, train, val, epochs=1, batch_size=8, prototypes=2, seed=3)
    xnn = train_xnn(net, train, val, num_features=2, epochs=1, batch_size=8, top_images=2, seed=3)
    return net, head, xnn


def test_trained_models_record_their_provenance_and_keep_it_through_a_file(trained, tmp_path):
    _, head, xnn = trained
    for model, save, load in ((head, save_head, load_head), (xnn, save_xnn, load_xnn)):
        prov = model.provenance
        assert prov["seed"] == 3 and prov["method"] == model.kind
        assert prov["versions"]["torch"] == str(torch.__version__) and prov["created"]
        path = save(model, tmp_path / f"{model.kind}.pt")
        back = load(path)
        assert back.provenance == prov and back.info == model.info
        assert back.layer == model.layer and back.class_names == model.class_names
        assert back.history == model.history and back.image_size == model.image_size


def test_each_loader_refuses_the_other_model(trained, tmp_path):
    _, head, xnn = trained
    save_head(head, tmp_path / "head.pt")
    save_xnn(xnn, tmp_path / "xnn.pt")
    with pytest.raises(NetrevealError, match="is not a saved XNN .*InfoDisentRecord"):
        load_xnn(tmp_path / "head.pt")
    with pytest.raises(NetrevealError, match="is not a saved InfoDisent head .*XNNRecord"):
        load_head(tmp_path / "xnn.pt")


def _without_provenance(record, path):
    """Write ``record`` as files were written before concept models recorded their provenance."""
    payload = {"format": results.FORMAT_NAME, "version": 1, "result": results._encode(record)}
    del payload["result"]["fields"]["provenance"]
    torch.save(payload, path)
    return path


def test_files_without_provenance_still_load(trained, tmp_path):
    net, head, xnn = trained
    old_head = load_head(_without_provenance(head.record(), tmp_path / "old_head.pt"))
    assert old_head.provenance == {} and torch.equal(old_head.S, head.S)
    assert torch.equal(old_head.prototypes.indices, head.prototypes.indices)
    old_xnn = load_xnn(_without_provenance(xnn.record(), tmp_path / "old_xnn.pt"))
    assert old_xnn.provenance == {} and torch.equal(old_xnn.top_images, xnn.top_images)
    images = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        f = net.pool(net.features(images)).flatten(1)
        assert torch.equal(old_xnn(f)[1], xnn(f)[1])


@pytest.mark.parametrize(
    "path, load, kind", [(DEMO_INFODISENT, load_head, InfoDisentHead), (DEMO_XNN, load_xnn, XNN)]
)
def test_shipped_demo_files_load_safely(path, load, kind):
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["format"] == results.FORMAT_NAME
    model = load(path)
    assert isinstance(model, kind) and not model.training and model.layer is not None
    assert model.provenance == payload["result"]["fields"].get("provenance", {})


def test_feature_source_cached_and_on_demand_agree():
    net = Tiny().eval()
    pairs = data(10, 2)
    extractor = FeatureExtractor(net, "features", example=pairs.images[:1])

    def compute(images):
        return extractor(images), net(images)

    cached = FeatureSource(compute, pairs, batch_size=4, cache=True)
    assert pairs.reads == 10 and [t.shape[0] for t in cached.cached] == [10, 10, 10]
    lazy = FeatureSource(compute, pairs, batch_size=4, cache=False)
    assert lazy.cached is None and pairs.reads == 10  # nothing read up front
    idx = torch.tensor([7, 0, 3])
    for a, b in zip(cached.get(idx), lazy.get(idx)):
        assert torch.allclose(a, b, atol=1e-6)
    rows = list(lazy.in_order())
    assert [r[0] for r in rows] == [0, 4, 8] and [len(r[-1]) for r in rows] == [4, 4, 2]
    assert torch.equal(torch.cat([r[-1] for r in rows]), torch.tensor(pairs.targets))
    with pytest.raises(NetrevealError, match="the dataset is empty"):
        FeatureSource(compute, Pairs(torch.zeros(0, 3, 8, 8), torch.zeros(0)), cache=True)


def test_top_images_pad_empty_slots_when_the_set_is_small(trained):
    net, _, xnn = trained
    small = data(3, 4)
    source = FeatureSource(
        lambda x: (net.pool(net.features(x)).flatten(1),), small, batch_size=2, cache=True
    )
    top, scores = mine_top_images(xnn, source, m=5)
    assert top.shape == (2, 5) and scores.shape == (2, 5)
    assert (top[:, 3:] == -1).all() and torch.isinf(scores[:, 3:]).all()
    with torch.no_grad():
        x = xnn.encode(source.cached[0])
    for j in range(2):
        expected = torch.sort(x[:, j], descending=True, stable=True)
        assert top[j, :3].tolist() == expected.indices.tolist()
        assert torch.allclose(scores[j, :3], expected.values)
