"""Every rule of the catalogue on real models: a case that triggers it and a case that does not.

The Keras models are built by fixtures/build.py from fixtures/rule_models.py, the
PyTorch ports are in fixtures/rule_ports.py. Each comparison loads its summaries
through the real worker processes (once per Keras file and once per port).

Expected parameter figures come from the frameworks' own arithmetic (measured in
tests/facts/measure.py), never from ktdiff's output:
Keras BatchNormalization counts (center + scale)·C + 2C, torch BatchNorm 2C (affine);
Keras LSTM 4U(F+U+1), torch 4U(F+U+2); Keras GRU (reset_after) and torch GRU 3U(F+U+2);
Dense/Linear in·out + out.
"""

from __future__ import annotations

import pytest

from conftest import codes

MLP, CNN, GAP, RNN = "rule_mlp.keras", "rule_cnn.keras", "rule_gap.keras", "rule_rnn.keras"
POOL = "rule_pool.keras"
PORTS = "fixtures/rule_ports.py"

# Figures of the Keras models (fixtures/rule_models.py).
BN_C = 4            # rule_cnn / rule_gap BatchNormalization channels
LSTM_F, LSTM_U = 4, 8
GRU_F, GRU_U = LSTM_U, 6


def dense(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


@pytest.fixture(scope="module")
def compare(loader):
    def run(keras: str, port: str, ignore=None):
        return loader.compare(keras, f"{PORTS}:{port}", ignore=ignore)
    return run


# --------------------------------------------------------------------------- helpers

def row_of(result, keras=None, torch=None, part="layer"):
    """The index of the row that holds these ids (keras=None/torch=None: that side is empty)."""
    found = [i for i, r in enumerate(result.rows)
             if r.keras == keras and r.torch == torch and (keras is None or r.keras_part == part)]
    assert len(found) == 1, f"no single row {keras!r} | {torch!r} ({part}): {[r.to_dict() for r in result.rows]}"
    return found[0]


def row_codes(result, keras=None, torch=None, part="layer", active=True):
    index = row_of(result, keras, torch, part)
    return sorted(f.code for f in result.row_findings(index) if not (active and f.suppressed))


def finding(result, code, keras=None, torch=None, part="layer"):
    """The one finding with this code on that row."""
    index = row_of(result, keras, torch, part)
    found = [f for f in result.row_findings(index) if f.code == code]
    assert len(found) == 1, f"{code} on row {index}: {[(f.code, f.message) for f in result.row_findings(index)]}"
    return found[0]


def rows_with(result, code):
    return [(f.keras, f.torch, result.rows[f.row].keras_part) for f in result.findings if f.code == code]


def assert_accounted(result):
    assert result.accounting.unexplained == 0, result.accounting.to_dict()
    assert "UNX001" not in codes(result) and "UNX002" not in codes(result)


# --------------------------------------------------------------------------- faithful ports

def test_faithful_mlp_is_equivalent(compare):
    r = compare(MLP, "MlpPort")
    assert r.verdict == "equivalent"
    assert codes(r, "behaviour") == [] and codes(r, "unexplained") == []
    assert r.accounting.difference == 0
    assert_accounted(r)
    assert r.accounting.keras_total == dense(12, 16) + dense(16, 16) + dense(16, 8) + dense(8, 4)


def test_faithful_gap_port_is_bookkeeping_only(compare):
    r = compare(GAP, "GapPort")
    assert r.verdict == "bookkeeping"
    assert codes(r, "behaviour") == [] and codes(r, "unexplained") == []
    # Keras center=False: gamma C + moving stats 2C; torch bias=False: weight C
    assert r.accounting.difference == 2 * BN_C
    assert_accounted(r)


def test_faithful_rnn_port_is_bookkeeping_only(compare):
    r = compare(RNN, "RnnPort")
    assert r.verdict == "bookkeeping"
    assert codes(r, "behaviour") == [] and codes(r, "unexplained") == []
    keras_lstm = 4 * LSTM_U * (LSTM_F + LSTM_U + 1)
    torch_lstm = 4 * LSTM_U * (LSTM_F + LSTM_U + 2)
    assert r.accounting.difference == keras_lstm - torch_lstm == -4 * LSTM_U
    assert_accounted(r)


def test_faithful_cnn_port_with_explicit_pad_is_not_a_padding_difference(compare):
    r = compare(CNN, "CnnPort")
    assert "CNV002" not in row_codes(r, "conv2", "conv2")
    assert "ROW004" not in codes(r)
    assert r.verdict == "bookkeeping"


def test_row007_explicit_pad_absorbed_by_the_conv_on_the_other_side(compare):
    # the port reproduces TF's 0/1 'same' padding with F.pad(x, (0, 1, 0, 1)) before a padding=0 conv
    r = compare(CNN, "CnnPort")
    (f,) = [f for f in r.findings if f.code == "ROW007"]
    assert f.category == "structure" and f.keras is None and f.torch.startswith("F.pad")
    assert "0/1, 0/1" in f.message
    # a symmetric pad does not reproduce it: no ROW007, and the conv's padding differs
    r = compare(CNN, "CnnPadding1")
    assert "ROW007" not in codes(r)
    assert "CNV002" in row_codes(r, "conv2", "conv2")


# --------------------------------------------------------------------------- ROW

def test_row001_keras_input_row(compare):
    for keras, port, name in ((MLP, "MlpPort", "features"), (CNN, "CnnPadding1", "image"),
                              (RNN, "RnnPort", "seq")):
        r = compare(keras, port)
        assert rows_with(r, "ROW001") == [(name, None, "layer")]
        assert finding(r, "ROW001", keras=name).category == "structure"


def test_row002_container_row_and_not_for_a_root_with_parameters(compare):
    r = compare(MLP, "MlpPort")
    assert rows_with(r, "ROW002") == [(None, "", "layer")]  # the root module
    assert finding(r, "ROW002", torch="").category == "structure"

    r = compare(MLP, "MlpRootParam")  # the root holds nn.Parameter temperature (1 element)
    assert "ROW002" not in codes(r)
    f = finding(r, "ROW004", torch="")
    assert f.params == -1 and "temperature" in f.message
    assert r.verdict == "different"
    assert_accounted(r)


def test_row003_keras_layer_missing_in_port(compare):
    r = compare(MLP, "MlpMissingLayer")
    f = finding(r, "ROW003", keras="fc2")
    assert f.category == "behaviour" and f.params == dense(16, 16)
    assert "ACT002" in row_codes(r, "leaky")  # the LeakyReLU after it is missing too
    assert r.verdict == "different"
    assert r.accounting.difference == dense(16, 16)
    assert_accounted(r)

    assert "ROW003" not in codes(compare(MLP, "MlpPort"))


def test_row004_torch_only_module(compare):
    r = compare(MLP, "MlpExtraLayer")
    f = finding(r, "ROW004", torch="extra")
    assert f.category == "behaviour" and f.params == -dense(8, 8)
    assert r.verdict == "different"
    assert_accounted(r)

    # an extra activation is ACT003, a singleton-dropping Flatten is ROW006: neither is ROW004
    assert "ROW004" not in codes(compare(MLP, "MlpExtraRelu"))
    assert "ROW004" not in codes(compare(GAP, "GapPort"))


def test_row005_module_never_called(compare):
    r = compare(MLP, "MlpUnused")
    f = finding(r, "ROW005", torch="spare")
    assert f.category == "bookkeeping" and f.params == -dense(16, 16)
    assert r.verdict == "bookkeeping"
    assert r.accounting.difference == -dense(16, 16)
    assert_accounted(r)

    assert "ROW005" not in codes(compare(MLP, "MlpPort"))


def test_row006_flatten_after_adaptive_pool_is_structure(compare):
    r = compare(GAP, "GapPort")
    f = finding(r, "ROW006", torch="flatten")
    assert f.category == "structure" and f.params == 0
    # the pooled (N, C, 1, 1) vs Keras's (N, C) is no unexplained shape difference
    assert row_codes(r, "gap", "pool") == []

    r = compare(CNN, "CnnPadding1")  # a Flatten paired with Keras's Flatten
    assert "ROW006" not in codes(r)
    assert row_codes(r, "flatten", "flatten") == []


# --------------------------------------------------------------------------- ACT

def test_act001_fused_activation_pairs_with_module_or_function(compare):
    r = compare(MLP, "MlpPort")
    assert finding(r, "ACT001", "fc1", "relu", part="activation").category == "structure"
    assert finding(r, "ACT001", "head", "softmax", part="activation").category == "structure"
    assert sorted(rows_with(r, "ACT001")) == [("fc1", "relu", "activation"), ("head", "softmax", "activation")]
    assert "ACT001" not in row_codes(r, "fc2", "fc2") and "ACT001" not in row_codes(r, "leaky", "leaky")

    r = compare(MLP, "MlpFunctional")  # F.relu / F.leaky_relu / F.softmax in forward()
    assert finding(r, "ACT001", "fc1", "F.relu#1", part="activation")
    assert finding(r, "ACT001", "head", "F.softmax#1", part="activation")
    assert row_codes(r, "leaky", "F.leaky_relu#1") == []  # negative_slope 0.3 passed positionally
    assert r.verdict == "equivalent"
    assert_accounted(r)


def test_act001_not_when_the_activations_differ(compare):
    r = compare(MLP, "MlpGelu")
    assert row_codes(r, "fc1", "relu", part="activation") == ["ACT004"]
    r = compare(MLP, "MlpSoftmaxDim0")  # same function over another axis: not "the same computation"
    assert row_codes(r, "head", "softmax", part="activation") == ["ACT004"]


def test_act002_missing_activation(compare):
    r = compare(MLP, "MlpMissingRelu")
    f = finding(r, "ACT002", keras="fc1", part="activation")
    assert f.category == "behaviour"
    assert "relu" in f.message and "collapses into one affine map" in f.message
    assert r.verdict == "different"
    assert_accounted(r)

    assert "ACT002" not in codes(compare(MLP, "MlpPort"))


def test_act002_not_for_the_cell_activation_of_a_recurrent_layer(compare):
    r = compare(RNN, "RnnPort")  # Keras LSTM/GRU activation='tanh' acts inside the cell, as in torch
    assert "ACT002" not in codes(r)


def test_act003_extra_activation(compare):
    r = compare(MLP, "MlpExtraRelu")
    f = finding(r, "ACT003", torch="relu3")
    assert f.category == "behaviour" and "fc3" in f.message
    assert r.verdict == "different"

    r = compare(RNN, "RnnExtraTanh")  # the LSTM's tanh acts inside the cell, in both frameworks
    f = finding(r, "ACT003", torch="tanh")
    assert f.keras is None and "inside the recurrent cell" in f.message
    assert "ACT001" not in codes(r)
    assert r.verdict == "different"

    assert "ACT003" not in codes(compare(MLP, "MlpPort"))
    assert "ACT003" not in codes(compare(MLP, "MlpFunctional"))


def test_act004_leaky_relu_slope(compare):
    r = compare(MLP, "MlpLeakyDefault")  # Keras LeakyReLU layer 0.3, torch default 0.01
    f = finding(r, "ACT004", "leaky", "leaky")
    assert f.category == "behaviour"
    assert "0.3" in f.message and "0.01" in f.message
    assert r.verdict == "different"

    r = compare(MLP, "MlpPort")  # nn.LeakyReLU(0.3)
    assert "ACT004" not in codes(r)
    assert row_codes(r, "leaky", "leaky") == []


def test_act004_other_function_and_softmax_axis(compare):
    f = finding(compare(MLP, "MlpGelu"), "ACT004", "fc1", "relu", part="activation")
    assert "relu" in f.message and "gelu" in f.message
    f = finding(compare(MLP, "MlpSoftmaxDim0"), "ACT004", "head", "softmax", part="activation")
    assert "dim 0" in f.message


def test_act005_head_activation_missing_and_suppressed(compare):
    r = compare(MLP, "MlpLogits")
    f = finding(r, "ACT005", keras="head", part="activation")
    assert f.category == "behaviour" and not f.suppressed
    assert "ACT002" not in codes(r)
    assert r.verdict == "different"

    r = compare(MLP, "MlpLogitsIgnored")  # `# ktdiff: ignore[ACT005] ...` in the class body
    f = finding(r, "ACT005", keras="head", part="activation")
    assert f.suppressed and "CrossEntropyLoss" in f.suppression
    assert "ACT005" not in codes(r) and "ACT005" in codes(r, active=False)
    assert r.verdict == "equivalent"
    assert_accounted(r)

    assert "ACT005" not in codes(compare(MLP, "MlpPort"), active=False)


# --------------------------------------------------------------------------- CNV, LAY, DNS, FLT

def test_cnv001_conv_kernel_layout(compare):
    r = compare(CNN, "CnnPadding1")
    f = finding(r, "CNV001", "conv1", "conv1")
    assert f.category == "convention"
    assert "(3, 3, 3, 4)" in f.message and "(4, 3, 3, 3)" in f.message and "transpose(3, 2, 0, 1)" in f.message
    assert "'same' ≡ padding=(1, 1)" in f.message
    assert sorted(k for k, _, _ in rows_with(r, "CNV001")) == ["conv1", "conv2"]

    assert "CNV001" not in codes(compare(MLP, "MlpPort"))


def test_cnv002_same_stride2_on_even_input_vs_padding1(compare):
    r = compare(CNN, "CnnPadding1")
    f = finding(r, "CNV002", "conv2", "conv2")
    assert f.category == "behaviour"
    assert "0 before and 1 after" in f.message and "1/1" in f.message
    # 'same' stride 1, k=3 is padding=1
    assert "CNV002" not in row_codes(r, "conv1", "conv1")
    assert r.verdict == "different"
    assert_accounted(r)


def test_cnv002_padding_mode(compare):
    r = compare(CNN, "CnnReflect")
    f = finding(r, "CNV002", "conv1", "conv1")
    assert "padding_mode='reflect'" in f.message


def test_lay001_nhwc_vs_nchw(compare):
    r = compare(CNN, "CnnPadding1")
    for name in ("conv1", "bn", "conv2"):
        f = finding(r, "LAY001", name, name)
        assert f.category == "convention"
    assert "(None, 8, 8, 4)" in finding(r, "LAY001", "conv1", "conv1").message
    assert "LAY001" not in row_codes(r, "head", "head")  # (None, 5) vs (1, 5): no layout
    assert "LAY001" not in codes(compare(RNN, "RnnPort"))  # (N, T, F) on both sides


def test_dns001_dense_kernel_transposed(compare):
    r = compare(MLP, "MlpPort")
    assert sorted(k for k, _, _ in rows_with(r, "DNS001")) == ["fc1", "fc2", "fc3", "head"]
    f = finding(r, "DNS001", "fc1", "fc1")
    assert f.category == "convention" and "(12, 16)" in f.message and "(16, 12)" in f.message

    r = compare(CNN, "CnnPadding1")
    assert rows_with(r, "DNS001") == [("head", "head", "layer")]
    assert "DNS001" not in row_codes(r, "conv1", "conv1")


def test_flt001_flatten_of_channels_last_tensor(compare):
    r = compare(CNN, "CnnPadding1")
    f = finding(r, "FLT001", "head", "head")
    assert f.category == "convention"
    assert "(4, 4, 8)" in f.message and "(8, 4, 4)" in f.message and "128" in f.message
    assert rows_with(r, "FLT001") == [("head", "head", "layer")]

    # GlobalAveragePooling2D vs AdaptiveAvgPool2d(1) + Flatten: nothing to reorder
    assert "FLT001" not in codes(compare(GAP, "GapPort"))


def test_flt001_not_when_the_torch_flatten_makes_other_features(compare):
    r = compare(CNN, "CnnFlattenLate")  # nn.Flatten(start_dim=2): (8, 16), not 128 features
    assert "FLT001" not in codes(r)
    assert "HP001" in row_codes(r, "head", "head")


# --------------------------------------------------------------------------- HP

def test_hp001_bias(compare):
    r = compare(MLP, "MlpNoBias")
    f = finding(r, "HP001", "fc2", "fc2")
    assert f.category == "behaviour" and "use_bias" in f.message
    assert f.params == dense(16, 16) - dense(16, 16, bias=False)
    assert r.verdict == "different"
    assert_accounted(r)

    assert "HP001" not in codes(compare(MLP, "MlpPort"))


def test_hp001_units_account_for_the_parameter_difference(compare):
    r = compare(MLP, "MlpWideFc3")
    f3 = finding(r, "HP001", "fc3", "fc3")
    fh = finding(r, "HP001", "head", "head")
    assert f3.params == dense(16, 8) - dense(16, 10)
    assert fh.params == dense(8, 4) - dense(10, 4)
    assert r.verdict == "different"
    assert_accounted(r)


def test_hp001_stride(compare):
    r = compare(CNN, "CnnStride1")
    f = finding(r, "HP001", "conv2", "conv2")
    assert "stride" in f.message and f.params == 0
    f = finding(r, "HP001", "head", "head")  # the head reads 8·8·8 features instead of 4·4·8
    assert f.params == dense(4 * 4 * 8, 5) - dense(8 * 8 * 8, 5)
    assert r.accounting.unexplained == 0


def test_lay002_shapes_that_follow_an_upstream_difference_are_not_unexplained(compare):
    r = compare(CNN, "CnnStride1")  # conv2 stride 1: (8, 8, 8) instead of (4, 4, 8) from there on
    conv_row = next(i for i, row in enumerate(r.rows) if row.keras == "conv2" and row.keras_part == "layer")
    f = finding(r, "LAY002", "flatten", "flatten")
    assert f.category == "note" and f"row {conv_row}" in f.message
    assert "UNX001" not in codes(r)
    assert "LAY002" not in codes(compare(CNN, "CnnPort"))


def test_pl001_pool_windows(compare):
    r = compare(POOL, "PoolPort")  # ceil_mode=True for TF's 0/1; padding=1 + count_include_pad=False for 1/1
    assert "PL001" not in codes(r) and codes(r, "behaviour") == []
    r = compare(POOL, "PoolShifted")  # same (4, 4) output, windows from -1 instead of 0
    f = finding(r, "PL001", "maxpool", "maxpool")
    assert f.category == "behaviour" and "4 windows from 0, the port 4 from -1" in f.message
    assert r.rows and "UNX001" not in codes(r)
    r = compare(POOL, "PoolCountsPadding")
    f = finding(r, "PL001", "avgpool", "avgpool")
    assert "count_include_pad=True" in f.message
    assert r.verdict == "different"


# --------------------------------------------------------------------------- NRM

def test_nrm001_moving_stats_counted_by_keras(compare):
    r = compare(CNN, "CnnPadding1")
    f = finding(r, "NRM001", "bn", "bn")
    assert f.category == "bookkeeping" and f.params == 2 * BN_C
    assert r.keras.layer("bn").total_params == 4 * BN_C and r.torch.layer("bn").total_params == 2 * BN_C
    assert "num_batches_tracked" in f.message
    assert r.accounting.difference == 2 * BN_C
    assert r.accounting.unexplained == 0

    r = compare(GAP, "GapPort")  # center=False: Keras C + 2C, torch bias=False C
    assert finding(r, "NRM001", "bn", "bn").params == 2 * BN_C

    assert "NRM001" not in codes(compare(CNN, "CnnBnNoStats"))


def test_nrm002_momentum(compare):
    r = compare(CNN, "CnnBnDefaults")  # torch 0.1 ≡ Keras 0.9; Keras default 0.99
    f = finding(r, "NRM002", "bn", "bn")
    assert f.category == "behaviour" and "0.99" in f.message and "0.01" in f.message and "0.1" in f.message

    r = compare(CNN, "CnnBnMomentumNone")
    assert "cumulative" in finding(r, "NRM002", "bn", "bn").message

    assert "NRM002" not in codes(compare(CNN, "CnnPadding1"))  # momentum=0.01 ≡ Keras 0.99


def test_nrm003_epsilon(compare):
    r = compare(CNN, "CnnBnDefaults")
    f = finding(r, "NRM003", "bn", "bn")
    assert f.category == "behaviour" and "0.001" in f.message and "1e-05" in f.message

    assert "NRM003" not in codes(compare(CNN, "CnnPadding1"))  # eps=1e-3
    assert "NRM003" not in codes(compare(GAP, "GapPort"))


def test_nrm004_variance_update_is_a_note(compare):
    r = compare(GAP, "GapPort")
    f = finding(r, "NRM004", "bn", "bn")
    assert f.category == "note"
    assert r.verdict == "bookkeeping"  # a note does not make the models different

    assert "NRM004" not in codes(compare(CNN, "CnnBnNoStats"))


def test_nrm005_affine(compare):
    r = compare(CNN, "CnnBnNoAffine")  # affine=False: no gamma, no beta
    f = finding(r, "NRM005", "bn", "bn")
    assert f.category == "behaviour" and f.params == 2 * BN_C
    assert finding(r, "NRM001", "bn", "bn").params == 2 * BN_C
    assert r.accounting.difference == 4 * BN_C
    assert r.accounting.unexplained == 0

    r = compare(GAP, "GapBnBias")  # Keras center=False, torch keeps its bias
    assert finding(r, "NRM005", "bn", "bn").params == -BN_C
    assert r.accounting.unexplained == 0

    assert "NRM005" not in codes(compare(GAP, "GapPort"))  # center=False ↔ bias=False
    assert "NRM005" not in codes(compare(CNN, "CnnPadding1"))


def test_nrm006_no_running_stats(compare):
    r = compare(CNN, "CnnBnNoStats")
    f = finding(r, "NRM006", "bn", "bn")
    assert f.category == "behaviour" and f.params == 2 * BN_C
    assert {"NRM002", "NRM004"}.isdisjoint(codes(r))
    assert r.accounting.unexplained == 0

    assert "NRM006" not in codes(compare(CNN, "CnnPadding1"))


# --------------------------------------------------------------------------- RNN

def test_rnn001_lstm_double_bias(compare):
    r = compare(RNN, "RnnPort")
    f = finding(r, "RNN001", "lstm", "lstm")
    assert f.category == "bookkeeping"
    assert f.params == 4 * LSTM_U * (LSTM_F + LSTM_U + 1) - 4 * LSTM_U * (LSTM_F + LSTM_U + 2) == -4 * LSTM_U
    # Keras GRU reset_after=True has two biases too: 3U(F+U+2) on both sides
    assert r.keras.layer("gru").total_params == r.torch.layer("gru").total_params == 3 * GRU_U * (GRU_F + GRU_U + 2)
    assert "RNN001" not in row_codes(r, "gru", "gru")

    r = compare(RNN, "RnnNoBias")  # no torch bias at all: HP001, not RNN001
    assert "RNN001" not in codes(r)
    f = finding(r, "HP001", "lstm", "lstm")
    assert f.params == 4 * LSTM_U * (LSTM_F + LSTM_U + 1) - 4 * LSTM_U * (LSTM_F + LSTM_U)
    assert r.accounting.unexplained == 0


def test_rnn002_batch_first(compare):
    r = compare(RNN, "RnnSeqFirst")  # batch_first=False receives (1, 5, 4)
    f = finding(r, "RNN002", "lstm", "lstm")
    assert f.category == "behaviour" and "(1, 5, 4)" in f.message
    assert r.verdict == "different"

    assert "RNN002" not in codes(compare(RNN, "RnnPort"))


def test_rnn003_returns_sequences(compare):
    r = compare(RNN, "RnnPort")
    f = finding(r, "RNN003", "gru", "gru")
    assert f.category == "structure" and "(None, 6)" in f.message and "(1, 5, 6)" in f.message
    assert "RNN003" not in row_codes(r, "lstm", "lstm")  # return_sequences=True
    assert "UNX001" not in codes(r)


# --------------------------------------------------------------------------- UNX

def test_unx001_shape_differs_unexplained(compare):
    r = compare(CNN, "CnnFlattenLate")  # nn.Flatten(start_dim=2): (1, 8, 16) vs (None, 128)
    f = finding(r, "UNX001", "flatten", "flatten")
    assert f.category == "unexplained" and "(1, 8, 16)" in f.message
    assert r.verdict == "different"

    assert "UNX001" not in codes(compare(CNN, "CnnPadding1"))
    assert "UNX001" not in codes(compare(GAP, "GapPort"))  # (None, 4) vs (1, 4, 1, 1)


def test_unx002_params_differ_unexplained(compare):
    r = compare(GAP, "GapPreluShared")  # Keras PReLU: one alpha per unit (6); nn.PReLU(): 1
    f = finding(r, "UNX002", "prelu", "prelu")
    assert f.category == "unexplained" and f.params == 6 - 1
    assert r.accounting.unexplained == 6 - 1
    assert r.verdict == "different"

    assert "UNX002" not in codes(compare(GAP, "GapPort"))  # nn.PReLU(6)
    assert "UNX002" not in codes(compare(MLP, "MlpWideFc3"))  # HP001 accounts for it


def test_every_rule_is_covered():
    """Keeps the tests in step with the catalogue: each code is named in a test here, in test_verify.py
    (UNX003, which only the numeric check raises) or in test_recognition.py."""
    import inspect
    import sys
    from pathlib import Path

    from ktdiff.comparers.rules import all_rules

    here = Path(__file__).parent
    source = inspect.getsource(sys.modules[__name__]) + "".join(
        (here / name).read_text() for name in ("test_verify.py", "test_recognition.py"))
    missing = [r.code for r in all_rules() if f'"{r.code}"' not in source]
    assert missing == []


# --------------------------------------------------------------------------- RNN004, RNN005, EMB001

TEXT = "rule_text.keras"


def test_rnn004_gru_gate_order(compare):
    r = compare(RNN, "RnnPort")  # Keras 3 GRU (reset_after=True): equal counts, another gate order
    f = finding(r, "RNN004", "gru", "gru")
    assert f.category == "convention" and "[z, r, h] vs torch [r, z, n]" in f.message
    assert "RNN004" not in [x.code for x in r.findings if x.keras == "lstm"]
    assert "RNN004" not in codes(compare(TEXT, "TextPort"))  # reset_after=False: RNN005 instead


def test_rnn005_gru_reset_before(compare):
    r = compare(TEXT, "TextPort")
    f = finding(r, "RNN005", "gru", "gru")
    U, F_ = 6, 8
    assert r.keras.layer("gru").total_params == 3 * U * (F_ + U + 1)   # one bias
    assert r.torch.layer("gru").total_params == 3 * U * (F_ + U + 2)  # b_ih and b_hh
    assert f.category == "behaviour" and f.params == -3 * U
    assert_accounted(r)
    assert "RNN005" not in codes(compare(RNN, "RnnPort"))


def test_emb001_mask_zero_and_padding_idx(compare):
    r = compare(TEXT, "TextPort")
    f = finding(r, "EMB001", "embed", "embed")
    assert "mask_zero=True" in f.message and f.category == "behaviour"
    assert r.torch.inputs[0].dtype == "int64"
    assert r.verdict == "different"


# --------------------------------------------------------------------------- ATT

ATTN = "rule_attention.keras"


def test_att001_head_size(compare):
    r = compare(ATTN, "AttentionFourHeads")
    f = finding(r, "ATT001", "mha", "mha")
    assert f.category == "behaviour" and "2 heads of key_dim=4" in f.message and "4 heads of 2" in f.message
    E = 8
    assert r.keras.layer("mha").total_params == r.torch.layer("mha").total_params == 4 * E * E + 4 * E
    assert f.params == 0 and r.verdict == "different"
    assert "ATT001" not in codes(compare(ATTN, "AttentionPort"))


def test_att002_weight_layout_and_a_faithful_transformer_block(compare):
    r = compare(ATTN, "AttentionPort")
    f = finding(r, "ATT002", "mha", "mha")
    assert f.category == "convention" and "(8, 2, 4)" in f.message and "(24, 8)" in f.message
    assert r.verdict == "equivalent"  # the residual add pairs with x + a; LayerNorm eps agree
    assert [row.torch for row in r.rows if row.keras == "residual"] == ["x.add#1"]


def test_att003_batch_first(compare):
    r = compare(ATTN, "AttentionSeqFirst")
    f = finding(r, "ATT003", "mha", "mha")
    assert f.category == "behaviour" and "batch_first=False" in f.message
    assert "ATT003" not in codes(compare(ATTN, "AttentionPort"))


# --------------------------------------------------------------------------- CNV003 (SeparableConv2D)

SEP = "rule_separable.keras"


def test_cnv003_separable_conv_pairs_with_depthwise_and_pointwise(compare):
    r = compare(SEP, "SeparablePort")
    pairs = [(row.keras, row.torch) for row in r.rows if row.is_pair and row.keras_part == "layer"]
    assert ("sep/depthwise", "depthwise") in pairs and ("sep/pointwise", "pointwise") in pairs
    assert ("gap", "x.mean#1") in pairs  # x.mean((2, 3)) is a global average pooling
    sep = r.keras.layer("sep/depthwise").total_params + r.keras.layer("sep/pointwise").total_params
    assert sep == 3 * 3 * 4 + 4 * 16 + 16  # the SeparableConv2D's weights, split between its two rows
    assert "CNV003" not in codes(r) and r.verdict == "bookkeeping"

    r = compare(SEP, "SeparableBiased")  # torch's default bias=True on the depthwise conv
    f = finding(r, "CNV003", "sep/depthwise", "depthwise")
    assert f.category == "bookkeeping" and f.params == -4
    assert "HP001" not in codes(r) and r.verdict == "bookkeeping"
    assert_accounted(r)


# --------------------------------------------------------------------------- CNV005, UPS001

UPS = "rule_upsample.keras"


def test_cnv005_transposed_conv_crops(compare):
    # k=3, s=2, 'same': TF crops the full 13x13 output 0/1; padding=1, output_padding=1 crops 1/0
    r = compare(UPS, "UpsampleOutputPadding")
    f = finding(r, "CNV005", keras="up3", torch="up3")
    assert "Keras crops 0 at the start and 1 at the end, the port 1 and 0" in f.message
    assert "padding=0 and a crop in forward()" in f.message
    assert r.verdict == "different"
    # the faithful port crops y[:, :, :-1, :-1] itself (ROW007), and up4 (k=4, s=2) is padding=1
    r = compare(UPS, "UpsamplePort")
    assert "CNV005" not in codes(r) and "UNX001" not in codes(r) and r.verdict == "equivalent"
    (crop,) = [f for f in r.findings if f.code == "ROW007"]
    assert crop.torch.startswith("x[...]") and "0/1, 0/1" in crop.message


def test_ups001_interpolation(compare):
    r = compare(UPS, "UpsampleNearest")  # F.interpolate's default mode against Keras's bilinear
    f = finding(r, "UPS001", keras="ups", torch="F.interpolate#1")
    assert "Keras interpolates 'bilinear', the port mode='nearest'" in f.message
    assert "UPS001" not in codes(compare(UPS, "UpsamplePort"))  # bilinear, align_corners=False


STEM = "rule_stem.keras"


def test_pl001_zero_padding_before_max_pooling(compare):
    # ZeroPadding2D(1) + MaxPooling2D(3, 2) after a ReLU == MaxPool2d(3, 2, padding=1): same windows, and the
    # zeros never win a max of non-negative values
    r = compare(STEM, "StemPort")
    assert r.verdict == "equivalent" and "PL001" not in codes(r)
    f = finding(r, "ROW007", keras="pool_pad")
    assert "the input comes from a ReLU" in f.message
    # on values that can be negative, zeros (Keras) against the pooling's −inf (the port) differ
    r = compare(STEM, "StemNegativePadding")
    f = finding(r, "PL001", keras="pool2", torch="pool2")
    assert "Keras pads with zeros" in f.message and "not known to be non-negative" in f.message
    assert "PL001" not in [x.code for x in r.findings if x.keras == "pool"]
