"""Alignment on plain neutral summaries (the stage's input is plain data, so no framework is needed)."""

from __future__ import annotations

from ktdiff.comparers.align import align
from ktdiff.comparers.summary import Layer, ModelSummary, Weight, compute_totals


def keras_layer(name, kind, shape, params=0, **hp):
    weights = [Weight("kernel", [params], params, True)] if params else []
    return Layer(name, name, kind.title(), kind, output_shapes=[shape], trainable_params=params, weights=weights,
                 hparams=hp)


def torch_layer(name, kind, shape, params=0, origin="module", **hp):
    weights = [Weight("weight", [params], params, True)] if params else []
    return Layer(name, name, kind.title(), kind, origin=origin, output_shapes=[shape], trainable_params=params,
                 weights=weights, hparams=hp)


def summaries(k_layers, t_layers):
    k = ModelSummary("keras", "k.keras", "k", "Functional", "channels_last", "keras", layers=k_layers,
                     totals=compute_totals(k_layers))
    t = ModelSummary("torch", "t.py:T", "T", "T", "channels_first", "torch", layers=t_layers,
                     totals=compute_totals(t_layers))
    return k, t


def pairs(rows):
    return [(r.keras, r.keras_part, r.torch) for r in rows]


def test_fused_activation_pairs_with_a_functional_call_and_structure_rows_stay():
    k, t = summaries(
        [keras_layer("in", "input", [None, 4]), keras_layer("fc1", "dense", [None, 8], 40, activation="relu"),
         keras_layer("fc2", "dense", [None, 2], 18, activation="linear")],
        [torch_layer("", "container", [], origin="container"), torch_layer("fc1", "dense", [1, 8], 40),
         torch_layer("F.relu#1", "activation", [1, 8], origin="function", activation="relu"),
         torch_layer("fc2", "dense", [1, 2], 18)])
    assert pairs(align(k, t)) == [("in", "layer", None), (None, "layer", ""), ("fc1", "layer", "fc1"),
                                  ("fc1", "activation", "F.relu#1"), ("fc2", "layer", "fc2")]


def test_unmatched_rows_are_kept_with_an_empty_cell():
    k, t = summaries(
        [keras_layer("fc1", "dense", [None, 8], 40, activation="relu"), keras_layer("drop", "dropout", [None, 8]),
         keras_layer("fc2", "dense", [None, 2], 18)],
        [torch_layer("fc1", "dense", [1, 8], 40), torch_layer("fc2", "dense", [1, 2], 18),
         torch_layer("extra", "dense", [1, 2], 6)])
    assert pairs(align(k, t)) == [("fc1", "layer", "fc1"), ("fc1", "activation", None), ("drop", "layer", None),
                                  ("fc2", "layer", "fc2"), (None, "layer", "extra")]


def test_a_layer_called_in_another_order_is_still_paired():
    # Keras lists the shortcut conv first (where it was defined); the port calls it last.
    k, t = summaries(
        [keras_layer("shortcut", "conv", [None, 8, 8, 16], 144), keras_layer("conv_a", "conv", [None, 8, 8, 8], 216),
         keras_layer("conv_b", "conv", [None, 8, 8, 16], 1168), keras_layer("add", "merge", [None, 8, 8, 16])],
        [torch_layer("conv_a", "conv", [1, 8, 8, 8], 216), torch_layer("conv_b", "conv", [1, 16, 8, 8], 1168),
         torch_layer("shortcut", "conv", [1, 16, 8, 8], 144), torch_layer("add#1", "merge", [1, 16, 8, 8], origin="function")])
    got = [(a, b) for a, _, b in pairs(align(k, t))]
    assert ("shortcut", "shortcut") in got and ("conv_a", "conv_a") in got and ("conv_b", "conv_b") in got
    assert all(a is not None and b is not None for a, b in got)


def test_layers_of_different_families_never_pair():
    k, t = summaries([keras_layer("bn", "batchnorm", [None, 4], 8)], [torch_layer("fc", "dense", [1, 4], 8)])
    assert pairs(align(k, t)) == [("bn", "layer", None), (None, "layer", "fc")]
