"""XNN: an explanation network that embeds a deep layer's activation into a few x-features.

The activation f (B, D) of a chosen layer (default: the input of the model's final linear
classifier, i.e. the pooled final feature map or penultimate vector; a named spatial layer is
average-pooled over positions, a token layer over its patch tokens) is embedded by a sparse
reconstruction autoencoder:
- encoder: x = ReLU(E (f - mu) / sigma + b), K x-features (default 5), non-negative;
- decoder: f_hat = x B_unit + d, the rows of B_unit (unit-norm concept bases) spanning the concepts;
- prediction from the x-features (``faithful``):
  ``head``   y_hat = classifier(f_hat), the model's own final linear layer (frozen), so the
             x-features explain the model in its own feature space;
  ``linear`` y_hat = A x + a, a learned linear map (for layers the classifier does not read).
  Either way y_hat is affine in x, so the contribution of x-feature j to class c is exactly
  x_j * M[c, j] (M = W_classifier B_unit^T, or A) and the logits are their sum plus a constant.

Loss = KL(softmax(y) || softmax(y_hat))            faithfulness to the original prediction
     + sparsity * mean_i sum_j x_ij / s             L1 on x-features (s: the features' RMS spread)
     + pull_away * mean_{i != j} cos^2(b_i, b_j)    concept bases pushed towards orthogonality
     + reconstruction * ||f - f_hat||^2 / s^2       optional (default 0)

Faithfulness is reported as the agreement of argmax y_hat with the model's argmax y. Each
x-feature is shown by a Grad-CAM style heatmap (gradient of its pre-activation with respect to
the final feature map, averaged over positions, weighting that map's channels) and by its
top-activating training images.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from netreveal import results as result_io
from netreveal.concepts.backbone import (
    LayerSpec,
    batches,
    find_classifier,
    find_feature_layer,
    layer_spec,
    prefix_token_count,
    read_layers,
    to_feature_map,
    trace_events,
)
from netreveal.concepts.prototypes import TopImages
from netreveal.concepts.training import class_names_of, fit, plain
from netreveal.errors import NetrevealError
from netreveal.imaging import minmax, upsample
from netreveal.model.hooks import model_device
from netreveal.provenance import provenance
from netreveal.results import register
from netreveal.targets import Target, resolve_targets

FAITHFUL = ("auto", "head", "linear")


def pull_away(bases: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine similarity between distinct rows of ``bases`` (K, D); 0 for K < 2."""
    k = bases.shape[0]
    if k < 2:
        return bases.new_zeros(())
    unit = F.normalize(bases, dim=1)
    gram = unit @ unit.T
    off = gram.pow(2).sum() - gram.diagonal().pow(2).sum()
    return off / (k * (k - 1))


class XNN(nn.Module):
    """The explanation network on activations f (B, D): ``forward(f) -> (x (B, K), y_hat (B, C))``."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        num_features: int = 5,
        *,
        faithful: str = "head",
        classifier: nn.Linear | None = None,
        class_names: list[str] | None = None,
    ):
        super().__init__()
        if faithful not in ("head", "linear"):
            raise NetrevealError(f"faithful must be 'head' or 'linear', got {faithful!r}")
        if num_features < 1:
            raise NetrevealError("XNN needs at least one x-feature")
        self.faithful = faithful
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("scale", torch.ones(in_features))
        self.register_buffer("spread", torch.ones(()))
        self.encoder = nn.Linear(in_features, num_features)
        self.bases = nn.Parameter(torch.randn(num_features, in_features) / math.sqrt(in_features))
        self.decoder_bias = nn.Parameter(torch.zeros(in_features))
        if faithful == "head":
            if classifier is None:
                raise NetrevealError("faithful='head' needs the model's classifier layer")
            if classifier.in_features != in_features or classifier.out_features != num_classes:
                raise NetrevealError(
                    f"classifier is {classifier.in_features}->{classifier.out_features}, "
                    f"activation has {in_features} features and {num_classes} classes"
                )
            self.register_buffer("head_weight", classifier.weight.detach().clone())
            bias = (
                classifier.bias.detach().clone()
                if classifier.bias is not None
                else torch.zeros(num_classes)
            )
            self.register_buffer("head_bias", bias)
            self.readout = None
        else:
            self.readout = nn.Linear(num_features, num_classes)
        self.class_names = (
            list(class_names)
            if class_names is not None
            else [f"class_{i}" for i in range(num_classes)]
        )
        self.layer: LayerSpec | None = None
        self.map_layer: LayerSpec | None = None
        self.image_size: list[int] | None = None
        self.history: list[dict] = []
        self.top_images: torch.Tensor | None = None
        self.top_scores: torch.Tensor | None = None
        self.keys: list | None = None
        self.info: dict = {}

    @property
    def in_features(self) -> int:
        return int(self.bases.shape[1])

    @property
    def num_features(self) -> int:
        return int(self.bases.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @torch.no_grad()
    def set_statistics(self, features: torch.Tensor) -> None:
        """Standardise encoder inputs by the training features' mean / std; start the decoder at
        the mean (x = 0 reconstructs the average activation); set the spread s."""
        mean = features.mean(dim=0)
        self.mean.copy_(mean)
        self.scale.copy_(features.std(dim=0).clamp_min(1e-6))
        self.spread.copy_((features - mean).pow(2).sum(dim=1).mean().sqrt().clamp_min(1e-6))
        self.decoder_bias.copy_(mean)

    def encode_pre(self, f: torch.Tensor) -> torch.Tensor:
        """x-feature pre-activations (B, K)."""
        return self.encoder((f - self.mean) / self.scale)

    def encode(self, f: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encode_pre(f))

    def unit_bases(self) -> torch.Tensor:
        """Concept bases (K, D), unit norm."""
        return F.normalize(self.bases, dim=1)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.unit_bases() + self.decoder_bias

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructed logits (B, C) from x-features."""
        if self.readout is None:
            return self.decode(x) @ self.head_weight.T + self.head_bias
        return self.readout(x)

    def concept_matrix(self) -> torch.Tensor:
        """M (C, K): y_hat = x M^T + const, so x_j * M[c, j] is x-feature j's share of logit c."""
        if self.readout is None:
            return self.head_weight @ self.unit_bases().T
        return self.readout.weight

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.encode(f)
        return x, self.predict(x)

    def losses(self, f: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The four loss terms (unweighted) for activations f and the model's logits."""
        x, y_hat = self(f)
        faith = F.kl_div(
            y_hat.log_softmax(1), logits.log_softmax(1), log_target=True, reduction="batchmean"
        )
        sparsity = (x.sum(dim=1) / self.spread).mean()
        recon = (f - self.decode(x)).pow(2).sum(dim=1).mean() / self.spread.pow(2)
        return {
            "faithfulness": faith,
            "sparsity": sparsity,
            "pull_away": pull_away(self.bases),
            "reconstruction": recon,
        }

    # ---------------------------------------------------------------- saving

    def record(self) -> XNNRecord:
        return XNNRecord(
            in_features=self.in_features,
            num_classes=self.num_classes,
            num_features=self.num_features,
            faithful=self.faithful,
            state={k: v.detach().cpu().clone() for k, v in self.state_dict().items()},
            class_names=list(self.class_names),
            layer=self.layer.as_dict() if self.layer is not None else None,
            map_layer=self.map_layer.as_dict() if self.map_layer is not None else None,
            image_size=self.image_size,
            history=list(self.history),
            top_images=self.top_images,
            top_scores=self.top_scores,
            keys=self.keys,
            info=dict(self.info),
        )

    @classmethod
    def from_record(cls, rec: XNNRecord) -> XNN:
        classifier = None
        if rec.faithful == "head":
            classifier = nn.Linear(rec.in_features, rec.num_classes)
        net = cls(
            rec.in_features,
            rec.num_classes,
            rec.num_features,
            faithful=rec.faithful,
            classifier=classifier,
            class_names=rec.class_names,
        )
        net.load_state_dict(rec.state)
        net.layer = LayerSpec.from_dict(rec.layer) if rec.layer is not None else None
        net.map_layer = LayerSpec.from_dict(rec.map_layer) if rec.map_layer is not None else None
        net.image_size, net.history = rec.image_size, list(rec.history)
        net.top_images, net.top_scores, net.keys, net.info = (
            rec.top_images,
            rec.top_scores,
            rec.keys,
            dict(rec.info),
        )
        return net.eval()


@register
@dataclasses.dataclass
class XNNRecord:
    """A saved XNN (parameters, layers read, classes, history, top images per x-feature)."""

    in_features: int
    num_classes: int
    num_features: int
    faithful: str
    state: dict
    class_names: list
    layer: dict | None
    map_layer: dict | None
    image_size: list | None
    history: list
    top_images: torch.Tensor | None = None
    top_scores: torch.Tensor | None = None
    keys: list | None = None
    info: dict = dataclasses.field(default_factory=dict)


def save_xnn(xnn: XNN, path: str | os.PathLike) -> Path:
    """Save an XNN as a netreveal result file."""
    return result_io.save(xnn.record(), path)


def load_xnn(path: str | os.PathLike) -> XNN:
    """Load an XNN saved by :func:`save_xnn` (``weights_only=True``)."""
    rec = result_io.load(path)
    if not isinstance(rec, XNNRecord):
        raise NetrevealError(f"{path} is not an XNN (it holds a {type(rec).__name__})")
    return XNN.from_record(rec)


# ---------------------------------------------------------------- reading activations


def activation_vector(
    raw: torch.Tensor, spec: LayerSpec, image_hw: tuple[int, int]
) -> torch.Tensor:
    """A layer's output as one vector per image: vectors as they are, maps and token grids
    averaged over positions."""
    if spec.layout == "vector":
        return raw.flatten(1)
    return to_feature_map(raw, spec, image_hw).mean(dim=(2, 3))


def _activations(
    model: nn.Module, spec: LayerSpec, images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    (raw,), logits = read_layers(model, images, [spec], stop=False)
    return activation_vector(raw, spec, tuple(images.shape[-2:])), logits


def resolve_xnn_layer(
    model: nn.Module, layer, example: torch.Tensor, faithful: str = "auto"
) -> tuple[LayerSpec, nn.Linear | None, str]:
    """The activation spec, the classifier for ``head`` mode (or None) and the mode chosen."""
    if faithful not in FAITHFUL:
        raise NetrevealError(f"faithful must be one of {', '.join(FAITHFUL)}, got {faithful!r}")
    try:
        cls_spec, classifier = find_classifier(model, example)
    except NetrevealError:
        if layer is None or faithful == "head":
            raise
        cls_spec, classifier = None, None
    spec = cls_spec if layer is None else layer_spec(model, layer, example)
    if classifier is not None and faithful in ("auto", "head") and spec != cls_spec:
        f, logits = _activations(model, spec, example[:2])
        with torch.no_grad():
            fits = f.shape[1] == classifier.in_features and torch.allclose(
                classifier(f), logits, atol=1e-4, rtol=1e-4
            )
        if not fits:
            if faithful == "head":
                raise NetrevealError(
                    f"the classifier does not read layer {spec} (pooled); use faithful='linear'"
                )
            classifier = None
    mode = "head" if (faithful in ("auto", "head") and classifier is not None) else "linear"
    return spec, (classifier if mode == "head" else None), mode


# ---------------------------------------------------------------- training


class _ActivationSource:
    def __init__(
        self, model: nn.Module, spec: LayerSpec, data, batch_size: int, cache: bool, progress: bool
    ):
        self.model, self.spec, self.data, self.batch_size = model, spec, data, batch_size
        self.cache = None
        if cache:
            fs, ys, ls = [], [], []
            for images, labels in tqdm(
                batches(data, batch_size), desc="activations", disable=not progress, unit="batch"
            ):
                f, logits = _activations(model, spec, images.to(model_device(model)))
                fs.append(f.detach())
                ys.append(logits.detach())
                ls.append(labels)
            self.cache = (torch.cat(fs), torch.cat(ys), torch.cat(ls))

    def __len__(self) -> int:
        return len(self.data)

    def get(self, idx: torch.Tensor):
        if self.cache is not None:
            f, y, lab = self.cache
            return f[idx], y[idx], lab[idx]
        ((images, labels),) = list(batches(self.data, len(idx), idx))
        f, logits = _activations(self.model, self.spec, images.to(model_device(self.model)))
        return f.detach(), logits.detach(), labels

    def all(self):
        for start in range(0, len(self), self.batch_size):
            idx = torch.arange(start, min(start + self.batch_size, len(self)))
            yield (start, *self.get(idx))



@torch.no_grad()
def _scores(xnn: XNN, source: _ActivationSource) -> dict[str, float]:
    agree = hits = total = 0
    for _, f, y, lab in source.all():
        dev = xnn.mean.device
        _, y_hat = xnn(f.to(dev))
        pred = y_hat.argmax(1).cpu()
        agree += int((pred == y.argmax(1).cpu()).sum())
        hits += int((pred == lab).sum())
        total += len(lab)
    return {"val_faithfulness": agree / total, "val_accuracy": hits / total}


def train_xnn(
    model: nn.Module,
    train_data,
    val_data,
    *,
    layer: str | nn.Module | LayerSpec | None = None,
    num_features: int = 5,
    faithful: str = "auto",
    epochs: int = 20,
    lr: float = 3e-3,
    batch_size: int = 64,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    seed: int = 0,
    progress: bool = False,
    sparsity: float = 0.05,
    pull_away_weight: float = 0.5,
    reconstruction: float = 0.0,
    cache_features: bool = True,
    top_images: int = 5,
    map_layer: str | nn.Module | LayerSpec | None = None,
) -> XNN:
    """Train an XNN on the frozen ``model``'s activation at ``layer`` (see the module docstring).

    ``train_data`` / ``val_data``: datasets of ``(image (3, H, W) in [0, 1], label)``; labels only
    give the reported accuracy, the training target is the model's own prediction. ``map_layer`` is
    the spatial map the x-feature heatmaps are computed on (default: the model's final feature
    map). Checkpoints and resume work as for InfoDisent. Per-epoch validation faithfulness
    (argmax agreement with the model) and accuracy are logged and kept in ``xnn.history``.
    """
    if len(train_data) == 0 or len(val_data) == 0:
        raise NetrevealError("training and validation sets must not be empty")
    first = train_data[0][0]
    if not isinstance(first, torch.Tensor) or first.dim() != 3:
        raise NetrevealError("dataset images must be (3, H, W) tensors in [0, 1]")
    device = model_device(model)
    example = first[None].to(device)
    spec, classifier, mode = resolve_xnn_layer(model, layer, example, faithful)
    maps_spec = (
        layer_spec(model, map_layer, example)
        if map_layer is not None
        else find_map_layer(model, spec, example)
    )
    t_cache = time.perf_counter()
    train = _ActivationSource(model, spec, train_data, batch_size, cache_features, progress)
    val = _ActivationSource(model, spec, val_data, batch_size, cache_features, progress)
    cache_seconds = time.perf_counter() - t_cache
    probe, probe_logits = _activations(model, spec, example)
    n_classes = probe_logits.shape[1]
    names = class_names_of(train_data, n_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        xnn = XNN(
            probe.shape[1],
            n_classes,
            num_features,
            faithful=mode,
            classifier=classifier,
            class_names=names,
        )
    xnn = xnn.to(device)
    stats = (
        train.cache[0] if train.cache is not None else torch.cat([f for _, f, _, _ in train.all()])
    )
    xnn.set_statistics(stats.to(device))
    xnn.layer, xnn.map_layer = spec, maps_spec
    xnn.image_size = [int(first.shape[-2]), int(first.shape[-1])]
    weights = {
        "faithfulness": 1.0,
        "sparsity": sparsity,
        "pull_away": pull_away_weight,
        "reconstruction": reconstruction,
    }

    def step_loss(idx: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        f, y, _ = train.get(idx)
        terms = xnn.losses(f.to(device), y.to(device))
        return sum(weights[k] * v for k, v in terms.items() if weights[k])

    config = {
        "method": "xnn",
        "layer": spec.as_dict(),
        "faithful": mode,
        "num_features": num_features,
        **weights,
    }
    t0 = time.perf_counter()
    xnn.history = fit(
        xnn,
        step_loss,
        lambda: _scores(xnn, val),
        n_train=len(train_data),
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        kind="xnn",
        config=config,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
    )
    xnn.info = {
        "seed": seed,
        "lr": lr,
        "batch_size": batch_size,
        "epochs": epochs,
        **weights,
        "train_size": len(train_data),
        "val_size": len(val_data),
        "train_seconds": time.perf_counter() - t0,
        "cache_seconds": cache_seconds if cache_features else 0.0,
    }
    xnn.eval()
    if top_images:
        mine_top_images(xnn, train, m=top_images)
        xnn.keys = getattr(train_data, "keys", None)
    return xnn


def _reaches(model: nn.Module, spec: LayerSpec, act: LayerSpec, example: torch.Tensor) -> bool:
    """Whether the activation ``act`` depends on the feature-map cells read at ``spec``."""
    hw = tuple(example.shape[-2:])
    (raw, raw_act), _ = read_layers(model, example, [spec, act], grad_from=0)
    with torch.enable_grad():
        f = activation_vector(raw_act, act, hw)
        if not f.requires_grad:
            return False
        # a fixed random direction: a plain sum can be constant (e.g. after a LayerNorm)
        r = torch.randn(f.shape, generator=torch.Generator().manual_seed(0)).to(f)
        (grad,) = torch.autograd.grad((f * r).sum(), raw, allow_unused=True)
    return grad is not None and bool(to_feature_map(grad, spec, hw).abs().sum() > 0)


def find_map_layer(
    model: nn.Module, act: LayerSpec, example: torch.Tensor, tries: int = 24
) -> LayerSpec | None:
    """The feature map for x-feature heatmaps: the backbone's final feature map when the
    activation depends on its cells (CNNs), else the last token layer whose patch tokens it
    depends on (in a ViT the last block's input norm: attention is where patch tokens reach the
    class token). None when nothing qualifies."""
    try:
        first = find_feature_layer(model, example)
    except NetrevealError:
        first = None
    if first is not None and _reaches(model, first, act, example):
        return first
    hw = tuple(example.shape[-2:])
    seen: set[str] = set()
    for name, _, port, shape in reversed(trace_events(model, example)):
        if port != "output" or len(shape) != 3 or name in seen:
            continue
        seen.add(name)
        if len(seen) > tries:
            break
        try:
            n = prefix_token_count(model, shape[1], hw)
        except NetrevealError:
            continue
        spec = LayerSpec(name, "output", "tokens", n)
        if _reaches(model, spec, act, example):
            return spec
    return None


@torch.no_grad()
def mine_top_images(xnn: XNN, source, *, m: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-m images per x-feature (K, m) by activation, with their x values; stored on ``xnn``.

    ``source`` yields ``(start, activations, ...)`` batches in dataset order (see ``train_xnn``) or
    is a tensor of activations (N, D)."""
    top = TopImages(m)
    if isinstance(source, torch.Tensor):
        chunks = ((s, source[s : s + 256]) for s in range(0, source.shape[0], 256))
    else:
        chunks = ((item[0], item[1]) for item in source.all())
    for start, f in chunks:
        x = xnn.encode(f.to(xnn.mean.device))
        top.update(x[:, None, :], x.new_zeros(x.shape[0], 1, x.shape[1], 1, 1), start)
    xnn.top_images = (
        top.indices[0].cpu() if top.indices.shape[2] == m else _pad(top.indices[0], m, -1)
    )
    xnn.top_scores = (
        top.scores[0].cpu() if top.scores.shape[2] == m else _pad(top.scores[0], m, float("-inf"))
    )
    return xnn.top_images, xnn.top_scores


def _pad(t: torch.Tensor, m: int, value) -> torch.Tensor:
    pad = torch.full((t.shape[0], m - t.shape[1]), value, dtype=t.dtype)
    return torch.cat([t.cpu(), pad], dim=1)


# ---------------------------------------------------------------- explanations


@register
@dataclasses.dataclass
class XNNExplanation:
    """XNN explanations of a batch of images.

    ``logits`` (B, C) the model's, ``reconstructed`` (B, C) from the x-features, ``agreement`` (B,)
    whether their argmax agree; ``xfeatures`` (B, K); ``contributions`` (B, K) x_j * M[c, j] for
    the explained class c = ``targets[i]``; ``heatmaps`` (B, K, H, W) Grad-CAM style maps of each
    x-feature (ReLU, raw scale); ``maps`` (B, H, W) the heatmaps (each scaled to [0, 1]) weighted by
    positive contributions, scaled to [0, 1]; ``top_images`` (K, m) training image indices per
    x-feature (-1: none).
    """

    method: str
    logits: torch.Tensor
    reconstructed: torch.Tensor
    agreement: torch.Tensor
    targets: torch.Tensor
    target_probs: torch.Tensor
    xfeatures: torch.Tensor
    contributions: torch.Tensor
    heatmaps: torch.Tensor
    maps: torch.Tensor
    top_images: torch.Tensor | None
    class_names: list
    params: dict
    provenance: dict
    extras: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.logits.shape[0])


def explain_xnn(
    xnn: XNN,
    model: nn.Module,
    images: torch.Tensor,
    target: Target = None,
    *,
    batch_size: int = 32,
    progress: bool = False,
) -> XNNExplanation:
    """x-features, their contributions to class ``target`` (None: the model's prediction) and their
    heatmaps for ``images`` (B, 3, H, W) in [0, 1]."""
    if xnn.layer is None:
        raise NetrevealError("this XNN does not record the layer it reads")
    xnn.eval()
    device = xnn.mean.device
    hw = tuple(images.shape[-2:])
    M = xnn.concept_matrix().detach()
    parts: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("logits", "rec", "targets", "probs", "x", "contrib", "heat")
    }
    for start in tqdm(
        range(0, images.shape[0], batch_size), desc="XNN", disable=not progress, unit="batch"
    ):
        stop = min(start + batch_size, images.shape[0])
        batch = images[start:stop].to(device)
        if xnn.map_layer is not None:
            (raw_map, raw_act), logits = read_layers(
                model, batch, [xnn.map_layer, xnn.layer], grad_from=0, stop=False
            )
            with torch.enable_grad():
                f = activation_vector(raw_act, xnn.layer, hw)
                pre = xnn.encode_pre(f)
                heat = _gradcam_maps(pre, raw_map, xnn.map_layer, hw)
        else:
            f, logits = _activations(model, xnn.layer, batch)
            pre = xnn.encode_pre(f)
            heat = torch.zeros(batch.shape[0], xnn.num_features, *hw, device=device)
        with torch.no_grad():
            x = torch.relu(pre.detach())
            rec = xnn.predict(x)
            part = target
            if isinstance(target, (list, tuple, torch.Tensor)):
                part = target[start:stop]
            idx = resolve_targets(part, logits.detach())
            if bool((idx < 0).any()):
                raise NetrevealError(
                    "XNN explains class indices; a callable target is not supported"
                )
            parts["logits"].append(logits.detach())
            parts["rec"].append(rec)
            parts["targets"].append(idx)
            parts["probs"].append(logits.detach().softmax(1).gather(1, idx[:, None]).squeeze(1))
            parts["x"].append(x)
            parts["contrib"].append(x * M[idx])
            parts["heat"].append(heat.detach())
    cat = {k: torch.cat(v).cpu() for k, v in parts.items()}
    weights = cat["contrib"].clamp_min(0)
    combined = (weights[..., None, None] * minmax(cat["heat"])).sum(dim=1)
    return XNNExplanation(
        method="xnn",
        logits=cat["logits"],
        reconstructed=cat["rec"],
        agreement=cat["rec"].argmax(1) == cat["logits"].argmax(1),
        targets=cat["targets"],
        target_probs=cat["probs"],
        xfeatures=cat["x"],
        contributions=cat["contrib"],
        heatmaps=cat["heat"],
        maps=minmax(combined),
        top_images=xnn.top_images,
        class_names=list(xnn.class_names),
        params={
            "layer": str(xnn.layer),
            "map_layer": str(xnn.map_layer) if xnn.map_layer else None,
            "faithful": xnn.faithful,
            "num_features": xnn.num_features,
        },
        provenance=plain(provenance(xnn_info=xnn.info)),
    )


def _gradcam_maps(
    pre: torch.Tensor, raw_map: torch.Tensor, spec: LayerSpec, hw: tuple[int, int]
) -> torch.Tensor:
    """Grad-CAM of each x-feature pre-activation (B, K) on the tapped map -> (B, K, H, W)."""
    amap = to_feature_map(raw_map, spec, hw)
    maps = []
    for j in range(pre.shape[1]):
        (grad,) = torch.autograd.grad(
            pre[:, j].sum(), raw_map, retain_graph=True, allow_unused=True
        )
        if grad is None:
            raise NetrevealError(
                f"the x-features do not depend on map layer {spec}; choose a layer below {spec}"
            )
        g = to_feature_map(grad, spec, hw)
        alpha = g.mean(dim=(2, 3), keepdim=True)
        maps.append((alpha * amap).sum(dim=1).clamp_min(0))
    return upsample(torch.stack(maps, dim=1).detach(), hw)


@torch.no_grad()
def faithfulness(xnn: XNN, model: nn.Module, data, *, batch_size: int = 64) -> dict[str, float]:
    """Agreement of the reconstructed prediction's argmax with the model's, and both accuracies."""
    if xnn.layer is None:
        raise NetrevealError("this XNN does not record the layer it reads")
    agree = hits = model_hits = total = 0
    for images, labels in batches(data, batch_size):
        f, logits = _activations(model, xnn.layer, images.to(xnn.mean.device))
        _, y_hat = xnn(f)
        pred, orig = y_hat.argmax(1).cpu(), logits.argmax(1).cpu()
        agree += int((pred == orig).sum())
        hits += int((pred == labels).sum())
        model_hits += int((orig == labels).sum())
        total += len(labels)
    return {
        "faithfulness": agree / total,
        "xnn_accuracy": hits / total,
        "model_accuracy": model_hits / total,
    }
