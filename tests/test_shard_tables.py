"""The tables methods add to an evaluation combine across shards: built from each shard's per-image
values, they equal the tables of the whole image set."""

import dataclasses
from types import SimpleNamespace

import pytest

from netreveal.data.inputs import Inputs
from netreveal.data.partsworld_truth import partsworld_inputs
from netreveal.methods import Evaluation, get_methods
from netreveal.metrics.inv_layers import evaluate_inv_layers, inv_layer_rows, inv_layer_values
from netreveal.model.adapter import load_model
from netreveal.sag.statistics import sag_image_values, sag_rows, sag_statistics


def test_sag_statistics_of_shards_equal_those_of_the_whole_set():
    graphs = [
        SimpleNamespace(roots=[[1, 2], [3, 4, 5]], forward_passes=100, saliency_forward_passes=20),
        SimpleNamespace(roots=[], forward_passes=60, saliency_forward_passes=20),
        SimpleNamespace(roots=[[9]], forward_passes=40, saliency_forward_passes=0),
        SimpleNamespace(roots=[[4, 4, 4, 4]], forward_passes=10, saliency_forward_passes=5),
    ]
    whole = sag_statistics(graphs, seconds=8.0)
    assert sag_rows([sag_image_values(graphs[:1]), sag_image_values(graphs[1:])], 8.0) == whole
    assert dict(zip(*[whole[0], whole[1][0]]))["root size (patches)"] == pytest.approx((2 + 3 + 1 + 4) / 4)


def _part(inputs: Inputs, start: int, stop: int) -> Inputs:
    return Inputs(inputs.keys[start:stop], inputs.images[start:stop], inputs.labels[start:stop],
                  inputs.label_names[start:stop], inputs.masks[start:stop], inputs.part_masks[start:stop])


def test_inv_layer_table_of_shards_equals_that_of_the_whole_set():
    adapter = load_model("demo")
    inputs = partsworld_inputs(adapter, 5)
    inv = get_methods("inv")[0]
    options = inv.options(layers="last:2", progress=False)
    result = inv.run(adapter, inputs.images, adapter.model(inputs.images).argmax(1), options)
    header, rows = evaluate_inv_layers(adapter, inputs, result, steps=8, batch_size=2)
    values = [inv_layer_values(adapter, _part(inputs, a, b), dataclasses.replace(result, images=result.images[a:b]),
                               steps=8, batch_size=2) for a, b in ((0, 2), (2, 5))]
    header2, combined = inv_layer_rows(values)
    assert header2 == header and [r[:2] for r in combined] == [r[:2] for r in rows]
    for mine, theirs in zip(combined, rows):
        assert mine[2:] == pytest.approx(theirs[2:], abs=1e-6)  # the median too: every IoU is kept
    tables = inv.evaluation_tables(values, 1.0, options)
    assert tables[0].rows == combined
    whole = inv.extra_evaluations(Evaluation(adapter, inputs, steps=8, batch_size=2), result, 1.0, options)
    assert whole[0].rows == rows
