"""Creating a reveal study from an image folder: run INV, redraw each cluster map at its layer's
resolution, cut the reveal frames and store everything (:class:`~netreveal.studies.builder.StudyBuilder`)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from netreveal.errors import NetrevealError
from netreveal.store.db import Store
from netreveal.store.json_values import json_safe
from netreveal.store.studies import study_exists, validate_study_name
from netreveal.studies.builder import ItemSpec, StudyBuilder
from netreveal.studies.reveal import reveal_sigma


def create_study(
    store: Store,
    name: str,
    adapter,
    inputs,
    *,
    layers: str | Sequence[str] = "auto:9",
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = False,
    config=None,
) -> int:
    """Run INV on ``inputs`` (:class:`netreveal.pipeline.Inputs`) and store the study; returns its id.

    Stores every input image, and every significant cluster map (the clusters INV keeps) as an
    item with its layer, depth, cluster, weight, member channels, map and six reveal frames; the
    study records the model, its classes, the layers (shallow to deep) and in ``params`` the INV
    settings, seed, reveal settings and provenance. INV runs ``batch_size`` images at a time
    (``config``: an :class:`netreveal.inv.InvConfig`). Nothing is stored on any error; an existing
    ``name`` is an error found before any work.
    """
    from netreveal.inv import InvConfig, explain_inv
    from netreveal.model.layers import resolve_layers
    from netreveal.pipeline import predict

    validate_study_name(name)
    if batch_size < 1:
        raise NetrevealError(f"batch_size must be at least 1, got {batch_size}")
    _check_inputs(inputs)
    if study_exists(store, name):
        raise NetrevealError(f"study {name!r} already exists")
    config = config or InvConfig()
    device = adapter.device
    example = inputs.images[:1].to(device)
    names = [n for n, _ in resolve_layers(adapter.model, layers, example=example)]
    order = forward_order(adapter.model, names, example)
    n = inputs.images.shape[0]
    with _builder_for(adapter, name, order, batch_size) as builder:
        inv_params = inv_provenance = None
        bar = tqdm(total=n, desc="INV", unit="img", disable=not progress)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            chunk = inputs.images[start:stop].to(device)
            result = explain_inv(adapter.model, chunk, order, config=config, batch_size=batch_size, seed=seed)
            probs = predict(adapter, chunk, batch_size)
            _add_chunk(builder, adapter, inputs, start, chunk, result.images, probs, order, config.relu_maps)
            inv_params, inv_provenance = result.params, result.provenance
            bar.update(stop - start)
        bar.close()
        builder.params.update(
            _study_params(adapter, builder, inputs, inv_params, inv_provenance, seed, name)
        )
        return builder.write(store, progress=progress)


def create_study_from_inv(store: Store, name: str, adapter, inputs, inv_result, probs: torch.Tensor, *,
                          batch_size: int = 8, progress: bool = False) -> int:
    """Store a study from an INV result already computed on ``inputs`` (as ``netreveal demo`` has).

    ``probs`` (B, C) are the model's softmax probabilities on the inputs. Same records as
    :func:`create_study`; the layer resolution needed for the reveal frames comes from one forward
    pass per ``batch_size`` images.
    """
    validate_study_name(name)
    _check_inputs(inputs)
    n = inputs.images.shape[0]
    if len(inv_result.images) != n:
        raise NetrevealError(f"the INV result has {len(inv_result.images)} images but {n} inputs were given")
    probs = torch.as_tensor(probs)
    if probs.dim() != 2 or probs.shape[0] != n:
        raise NetrevealError(f"probs must be ({n}, classes), got {tuple(probs.shape)}")
    if study_exists(store, name):
        raise NetrevealError(f"study {name!r} already exists")
    device = adapter.device
    order = forward_order(adapter.model, list(inv_result.layers), inputs.images[:1].to(device))
    relu = bool(inv_result.params.get("relu_maps", True))
    with _builder_for(adapter, name, order, batch_size) as builder:
        for start in tqdm(range(0, n, batch_size), desc="reveal frames", disable=not progress):
            stop = min(start + batch_size, n)
            chunk = inputs.images[start:stop].to(device)
            _add_chunk(builder, adapter, inputs, start, chunk, inv_result.images[start:stop], probs[start:stop],
                       order, relu)
        builder.params.update(
            _study_params(adapter, builder, inputs, inv_result.params, inv_result.provenance, inv_result.seed, name)
        )
        return builder.write(store, progress=progress)


def forward_order(model: torch.nn.Module, names: Sequence[str], example: torch.Tensor) -> list[str]:
    """``names`` sorted by when their module first runs in a forward pass (shallow to deep)."""
    from netreveal.model.hooks import frozen, hooks_on
    from netreveal.model.layers import get_module

    seen: list[str] = []

    def hook_for(layer: str):
        def hook(_module, _args, _out):
            if layer not in seen:
                seen.append(layer)

        return hook

    with hooks_on([(layer, get_module(model, layer)) for layer in names], hook_for), frozen(model), torch.no_grad():
        model(example)
    missing = [layer for layer in names if layer not in seen]
    if missing:
        raise NetrevealError(f"layer {missing[0]!r} does not run in the model's forward pass")
    return seen


def _check_inputs(inputs) -> None:
    images = getattr(inputs, "images", None)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise NetrevealError("inputs must hold images as a (B, 3, H, W) tensor")
    if images.shape[0] == 0:
        raise NetrevealError("no image given")
    if len(inputs.keys) != images.shape[0]:
        raise NetrevealError("inputs have a different number of keys and images")


def _builder_for(adapter, name: str, order: list[str], batch_size: int) -> StudyBuilder:
    description = json.dumps(json_safe(adapter.describe()), sort_keys=True)
    return StudyBuilder(name, model=description, classes=adapter.class_names, layers=order,
                        batch_size=max(1, batch_size) * 2)


def _add_chunk(builder: StudyBuilder, adapter, inputs, start: int, chunk: torch.Tensor, inv_images, probs,
               order: list[str], relu: bool) -> None:
    """Images and items of one chunk: cluster maps redrawn at each layer's own resolution."""
    from netreveal.inv.maps import cluster_maps
    from netreveal.model.hooks import capture

    cap = capture(adapter.model, chunk, order, backward=False)
    probs = probs.float()
    indices = []
    for i, _img in enumerate(inv_images):
        p = int(probs[i].argmax())
        label_names = getattr(inputs, "label_names", None)
        true_class = label_names[start + i] if label_names else None
        indices.append(builder.add_image(inputs.keys[start + i], chunk[i], adapter.class_name(p),
                                         float(probs[i, p]), true_class))
    specs: list[ItemSpec] = []
    for layer in order:
        act = cap.activations[layer]
        if act.dim() != 4:
            raise NetrevealError(f"layer {layer!r} gives {tuple(act.shape)}, not feature maps (B, C, h, w)")
        act = act.clamp_min(0) if relu else act
        entries = [img.layer(layer) for img in inv_images]
        if any(e.weights is None for e in entries):
            raise NetrevealError(f"the INV result lacks the map weights of layer {layer!r}")
        members = [[torch.as_tensor(c.channels, dtype=torch.long) for c in e.clusters] for e in entries]
        weights = torch.stack([e.weights.float() for e in entries]).to(act.device)
        lows = cluster_maps(act, members, weights, tuple(act.shape[-2:]))
        for i, entry in enumerate(entries):
            for j, cluster in enumerate(entry.clusters):
                specs.append(ItemSpec(image=indices[i], picture=chunk[i], layer=layer, cluster=j,
                                      weight=float(cluster.weight), channels=list(cluster.channels),
                                      map=cluster.map.float().to(chunk.device), low=lows[i][j]))
    builder.add_items(specs)


def _study_params(adapter, builder: StudyBuilder, inputs, inv_params, inv_provenance, seed: int, name: str) -> dict:
    from netreveal.provenance import provenance

    size = list(inputs.images.shape[-2:])
    return {
        "method": "inv",
        "seed": int(seed),
        "inv": inv_params or {},
        "input_size": size,
        "reveal": {
            "percents": list(builder.percents),
            "background": builder.background,
            "map_sizes": builder.map_sizes,
            "sigmas": {layer: reveal_sigma(s, size) for layer, s in builder.map_sizes.items()},
        },
        "provenance": provenance(seed=int(seed), study=name, model=adapter.describe(), inv=inv_provenance),
    }


__all__ = ["create_study", "create_study_from_inv", "forward_order"]
