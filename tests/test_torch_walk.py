"""The PyTorch walk, in process (torch only): execution order, functional ops, buffers, shared modules."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ktdiff.comparers.summary import ModelSummary
from ktdiff.comparers.torch_loader import derive_inputs, find_suppressions, walk

KERAS_IMAGE = [{"name": "x", "shape": [None, 8, 8, 3], "dtype": "float32"}]


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = x.view(x.size(0), -1)
        return torch.softmax(self.fc(x), dim=1)


def test_functional_ops_are_rows_in_execution_order():
    rows, outputs, _ = walk(Functional().eval(), [torch.rand(1, 3, 8, 8)])
    leaves = [(r.type, r.kind) for r in rows if r.origin != "container"]
    assert leaves == [("Conv2d", "conv"), ("F.relu", "activation"), ("x.view", "flatten"), ("Linear", "dense"),
                      ("torch.softmax", "activation")]
    assert rows[-1].hparams == {"activation": "softmax", "axis": 1}
    assert outputs == [[1, 5]]


class Inplace(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.conv(x))


def test_inplace_relu_keeps_the_conv_row_shape():
    rows, _, _ = walk(Inplace(), [torch.rand(1, 3, 8, 8)])
    conv = next(r for r in rows if r.id == "conv")
    assert conv.output_shapes == [[1, 4, 6, 6]]


class Counter(nn.Module):
    """A forward that writes a buffer even in eval(): ktdiff must restore it."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.register_buffer("calls", torch.zeros(()))
        self.register_buffer("scratch", torch.zeros(3), persistent=False)

    def forward(self, x):
        self.calls += 1
        return self.lin(x)


def test_forward_never_changes_the_users_buffers():
    model = Counter()
    rows, _, notes = walk(model, [torch.rand(1, 3)])
    assert float(model.calls) == 0.0
    assert any("calls" in n and "restored" in n for n in notes)
    root = next(r for r in rows if r.origin == "container")
    assert {b.name: b.persistent for b in root.buffers} == {"calls": True, "scratch": False}


def test_walk_restores_train_mode():
    model = Counter().train()
    walk(model, [torch.rand(1, 3)])
    assert model.training


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 2)
        self.token = nn.Parameter(torch.zeros(4))

    def forward(self, x):
        return self.block(self.block(x) + self.token)


def test_shared_unused_and_own_parameters_are_all_counted():
    model = Shared()
    rows, _, _ = walk(model, [torch.rand(1, 4)])
    blocks = [r for r in rows if r.id.split("#")[0] == "block"]
    assert [(r.id, r.call_index) for r in blocks] == [("block", 1), ("block#2", 2)]
    assert [r.total_params for r in blocks] == [20, 0]  # counted once, on the first call
    unused = next(r for r in rows if r.id == "unused")
    assert unused.executed is False and unused.total_params == 10
    root = next(r for r in rows if r.origin == "container")
    assert root.total_params == 4
    assert sum(r.total_params for r in rows) == sum(p.numel() for p in model.parameters())


def test_frozen_parameters_are_non_trainable():
    model = Inplace()
    model.conv.bias.requires_grad_(False)
    rows, _, _ = walk(model, [torch.rand(1, 3, 8, 8)])
    conv = next(r for r in rows if r.id == "conv")
    assert (conv.trainable_params, conv.non_trainable_params) == (3 * 4 * 9, 4)


def test_input_derivation_moves_channels_for_a_conv_first_model():
    shapes, dtypes, how = derive_inputs(Functional(), KERAS_IMAGE, None, None)
    assert shapes == [[1, 3, 8, 8]] and dtypes == ["float32"]
    assert "channels-last to channels-first" in how


def test_input_derivation_keeps_tokens_as_long_and_sequences_as_is():
    emb = nn.Sequential(nn.Embedding(10, 4), nn.LSTM(4, 4, batch_first=True))
    shapes, dtypes, _ = derive_inputs(emb, [{"name": "ids", "shape": [None, 7], "dtype": "int32"}], None, None)
    assert shapes == [[1, 7]] and dtypes == ["int64"]
    lstm = nn.LSTM(5, 4, batch_first=True)
    shapes, _, _ = derive_inputs(lstm, [{"name": "seq", "shape": [None, 6, 5], "dtype": "float32"}], None, None)
    assert shapes == [[1, 6, 5]]


def test_summary_round_trips_through_plain_data():
    import json

    from ktdiff.comparers.summary import compute_totals

    rows, outputs, notes = walk(Shared(), [torch.rand(1, 4)])
    summary = ModelSummary("torch", "x.py:Shared", "Shared", "Shared", "channels_first", "torch", layers=rows,
                           output_shapes=outputs, notes=notes, totals=compute_totals(rows))
    data = json.loads(json.dumps(summary.to_dict()))
    again = ModelSummary.from_dict(data)
    assert again == summary
    assert data["totals"]["total"] == 4 + 20 + 10


class Documented(nn.Module):
    """A logits head.

    ktdiff: ignore[ACT005, NRM004] trained with CrossEntropyLoss
    """


def test_suppressions_are_read_from_the_class_source():
    assert find_suppressions(Documented) == {"ACT005": "trained with CrossEntropyLoss",
                                             "NRM004": "trained with CrossEntropyLoss"}


def test_captured_outputs_survive_an_inplace_relu():
    model = Inplace()
    with torch.no_grad():
        model.conv.bias.fill_(-10.0)  # every conv output is negative before the ReLU
    captured: dict = {}
    walk(model, [torch.rand(1, 3, 8, 8)], capture=captured)
    conv_out, relu_out = captured[("conv", 1)], captured[("act", 1)]
    assert float(conv_out.max()) < 0  # without the clone, the in-place ReLU would have zeroed it
    assert float(relu_out.max()) == 0.0


def test_lazy_modules_are_counted_once_they_have_run():
    model = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.LazyLinear(2))
    rows, _, _ = walk(model, [torch.rand(1, 6)])
    lazy = [r for r in rows if r.kind == "dense"]
    assert [r.total_params for r in lazy] == [6 * 4 + 4, 4 * 2 + 2]
    assert lazy[0].hparams["in_features"] == 6


class TwiceDifferentShapes(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.ReLU()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.act(self.fc(self.act(x)))


def test_a_module_called_twice_shows_each_calls_shapes():
    rows, _, _ = walk(TwiceDifferentShapes(), [torch.rand(1, 4)])
    acts = [(r.id, r.output_shapes) for r in rows if r.id.startswith("act")]
    assert acts == [("act", [[1, 4]]), ("act#2", [[1, 2]])]
