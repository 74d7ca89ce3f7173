"""The numeric check (--verify): port the Keras weights, run both models, find the first divergent row.

The verifications run in one batch through the real workers (conftest.Loader.verified). What a
row *should* do is known from the fixtures' construction (a port that pads 1/1 where TF pads 0/1,
a missing ReLU, ...), and the final comparison of outputs is checked against numbers computed
by the two frameworks in their own processes (test_port_round_trip).
"""

from __future__ import annotations

import pytest

RULES = "fixtures/rule_ports.py"
BR = "fixtures/branchy_torch.py"

FAITHFUL = [
    ("rule_mlp.keras", f"{RULES}:MlpPort"), ("rule_mlp.keras", f"{RULES}:MlpFunctional"),
    ("rule_cnn.keras", f"{RULES}:CnnPort"), ("rule_gap.keras", f"{RULES}:GapPort"),
    ("rule_rnn.keras", f"{RULES}:RnnPort"), ("rule_pool.keras", f"{RULES}:PoolPort"),
    ("rule_attention.keras", f"{RULES}:AttentionPort"), ("rule_separable.keras", f"{RULES}:SeparablePort"),
    ("rule_separable.keras", f"{RULES}:SeparableBiased"),
    ("seed.keras", "fixtures/faithful_torch.py:FaithfulNet"),
    ("mini_resnet.keras", "fixtures/resnet_torch.py:MiniResNet"),
    ("mini_mobilenet.keras", "fixtures/mobilenet_torch.py:MiniMobileNet"),
    ("mini_unet.keras", "fixtures/unet_torch.py:MiniUNet"),
    ("text_lstm.keras", "fixtures/text_torch.py:TextLSTM"),
    ("branchy.keras", f"{BR}:Branchy"), ("branchy.keras", f"{BR}:BranchyChannelsLast"),
    ("rule_upsample.keras", f"{RULES}:UpsamplePort"), ("rule_stem.keras", f"{RULES}:StemPort"),
    ("strided_cnn.keras", "fixtures/zoo_style_torch.py:ZooStyle"), ("bilstm.keras", "fixtures/bilstm_torch.py:BiLstm"),
    ("layouts_3d.keras", "fixtures/layouts_torch.py:Layouts3d"),
    ("squeeze_excite.keras", "fixtures/layouts_torch.py:SqueezeExcite"),
    ("inception_block.keras", "fixtures/inception_torch.py:Inception"),
    ("inception_block.keras", "fixtures/inception_torch.py:InceptionReversed"),
]

# (Keras file, port, the rule whose row must be the first to diverge, Keras layer of that row)
BEHAVIOURAL = [
    ("rule_mlp.keras", "MlpMissingRelu", "ACT002", "fc1"),
    ("rule_mlp.keras", "MlpExtraRelu", "ACT003", None),
    ("rule_mlp.keras", "MlpGelu", "ACT004", "fc1"),
    ("rule_mlp.keras", "MlpLeakyDefault", "ACT004", "leaky"),
    ("rule_mlp.keras", "MlpSoftmaxDim0", "ACT004", "head"),
    ("rule_mlp.keras", "MlpLogits", "ACT005", "head"),
    ("rule_mlp.keras", "MlpNoBias", "HP001", "fc2"),
    ("rule_mlp.keras", "MlpWideFc3", "HP001", "fc3"),
    ("rule_mlp.keras", "MlpExtraLayer", "ROW004", None),
    ("rule_mlp.keras", "MlpMissingLayer", "ROW003", "fc2"),
    ("rule_cnn.keras", "CnnPadding1", "CNV002", "conv2"),
    ("rule_cnn.keras", "CnnReflect", "CNV002", "conv1"),
    ("rule_cnn.keras", "CnnBnDefaults", "NRM003", "bn"),
    ("rule_cnn.keras", "CnnBnNoAffine", "NRM005", "bn"),
    ("rule_cnn.keras", "CnnBnNoStats", "NRM006", "bn"),
    ("rule_rnn.keras", "RnnSeqFirst", "RNN002", "lstm"),
    ("rule_rnn.keras", "RnnNoBias", "HP001", "lstm"),
    ("rule_rnn.keras", "RnnExtraTanh", "ACT003", None),
    ("rule_pool.keras", "PoolShifted", "PL001", "maxpool"),
    ("rule_pool.keras", "PoolCountsPadding", "PL001", "avgpool"),
    ("rule_text.keras", "TextPort", "RNN005", "gru"),
    ("rule_attention.keras", "AttentionSeqFirst", "ATT003", "mha"),
    ("rule_attention.keras", "AttentionFourHeads", "ATT001", "mha"),
    ("rule_upsample.keras", "UpsampleOutputPadding", "CNV005", "up3"),
    ("rule_upsample.keras", "UpsampleNearest", "UPS001", "ups"),
    ("rule_stem.keras", "StemNegativePadding", "PL001", "pool2"),
]
SWAPPED = [  # branches swapped at a concatenation: the data flow shows it (MRG001), the numbers confirm it
    ("branchy.keras", f"{BR}:BranchySwapped", "concat"),
    ("inception_block.keras", "fixtures/inception_torch.py:InceptionSwapped", "mixed"),
]

UNSEEN = [  # bugs no structural rule can see: (port, Keras layer of the row where the outputs part)
    ("BranchyWrongPermute", "flatten"),
    ("BranchyWrongResidual", "residual"),
]

ALL = FAITHFUL + [(k, f"{RULES}:{p}") for k, p, _, _ in BEHAVIOURAL] + [("branchy.keras", f"{BR}:{p}") for p, _ in UNSEEN] + [
    (k, p) for k, p, _ in SWAPPED] + [
    ("rule_cnn.keras", f"{RULES}:CnnMomentumOnly"), ("rule_cnn.keras", f"{RULES}:CnnBnMomentumNone"),
    ("seed.keras", "fixtures/seed_torch.py:Net"), ("lenet.keras", "fixtures/lenet_torch.py:LeNet"),
    ("rule_gap.keras", f"{RULES}:GapBnBias"), ("layouts_1d.keras", "fixtures/layouts_torch.py:Layouts1d"),
]


@pytest.fixture(scope="module")
def verified(loader):
    return loader.verified(ALL)


def _row_of(result, code, keras_layer):
    for f in result.findings:
        if f.code == code and (keras_layer is None or f.keras == keras_layer):
            return f.row
    raise AssertionError(f"{code} on {keras_layer} not reported")


@pytest.mark.parametrize("pair", FAITHFUL, ids=[p.rpartition(":")[2] for _, p in FAITHFUL])
def test_faithful_ports_verify(verified, pair):
    r = verified[pair]
    v = r.verification
    assert v.status == "agree", (v.status, v.notes, v.unported, [(s.row, s.note) for s in v.rows if s.note])
    assert v.max_rel is not None and v.max_rel < 1e-4
    assert all(s.within for s in v.rows) and v.output.within
    assert v.ported > 0 and not v.missing
    assert r.exit_code == 0 and "UNX003" not in [f.code for f in r.findings]
    from ktdiff.comparers.report import verdict_line

    assert "verified numerically" in verdict_line(r)


@pytest.mark.parametrize("keras,port,code,layer", BEHAVIOURAL, ids=[f"{c}-{p}" for _, p, c, _ in BEHAVIOURAL])
def test_behavioural_rule_is_where_outputs_first_diverge(verified, keras, port, code, layer):
    r = verified[(keras, f"{RULES}:{port}")]
    v = r.verification
    assert v.status in ("diverge", "partial") and v.first_divergent_row is not None
    assert code in v.attributed_to
    flagged = _row_of(r, code, layer)
    # the first divergent row is the flagged row, or the first compared row after it (an unpaired row)
    compared = sorted(s.row for s in v.rows if s.within is not None)
    assert v.first_divergent_row == min(x for x in compared if x >= flagged)
    assert all(s.within for s in v.rows if s.within is not None and s.row < v.first_divergent_row)
    assert "UNX003" not in [f.code for f in r.findings]


@pytest.mark.parametrize("port,layer", UNSEEN)
def test_bugs_no_rule_sees_are_found_as_unx003(verified, port, layer):
    r = verified[("branchy.keras", f"{BR}:{port}")]
    structural = [f.code for f in r.findings if f.category in ("behaviour", "unexplained") and f.code != "UNX003"]
    assert structural == []  # shapes and counts agree: only the numbers can tell
    (f,) = [f for f in r.findings if f.code == "UNX003"]
    assert f.keras == layer and r.verification.first_divergent_row == f.row
    assert r.verdict == "different" and r.exit_code == 1
    assert all(s.within for s in r.verification.rows if s.row < f.row)


def test_training_only_rules_do_not_diverge(verified):
    r = verified[("rule_cnn.keras", f"{RULES}:CnnMomentumOnly")]
    v = r.verification
    assert [f.code for f in r.findings if f.category == "behaviour"] == ["NRM002"]
    assert v.status == "agree" and v.first_divergent_row is None
    assert {"row": _row_of(r, "NRM002", "bn"), "code": "NRM002", "why": "affects training only"} in v.unconfirmed
    assert r.verdict == "different"  # a training difference is still a difference
    from ktdiff.comparers.report import verification_lines

    assert any("NRM002" in line and "training only" in line for line, _ in verification_lines(r))
    # momentum=None next to a padding bug: the padding row diverges, the momentum is not blamed
    r = verified[("rule_cnn.keras", f"{RULES}:CnnBnMomentumNone")]
    assert r.verification.attributed_to == ["CNV002"]


def test_seed_pair_diverges_at_batchnorm_then_relu_and_head(verified):
    r = verified[("seed.keras", "fixtures/seed_torch.py:Net")]
    v = r.verification
    assert v.first_divergent_row == _row_of(r, "NRM003", "batch_normalization") and v.attributed_to == ["NRM003"]
    later = {x["row"]: x["codes"] for x in v.later}
    assert later[_row_of(r, "ACT002", "dense")] == ["ACT002"]
    assert later[_row_of(r, "ACT005", "dense_1")] == ["ACT005"]
    assert not v.output.within


def test_suppressed_finding_explains_divergence_without_failing(verified):
    r = verified[("lenet.keras", "fixtures/lenet_torch.py:LeNet")]  # `ktdiff: ignore[ACT005]` logits head
    assert r.verification.attributed_to == ["ACT005"] and r.exit_code == 0
    from ktdiff.comparers.report import verdict_line

    assert "outputs differ only where suppressed findings say so: ACT005" in verdict_line(r)


def test_flagged_row_whose_outputs_agree_is_noted(verified):
    # Keras BatchNormalization(center=False) vs an affine torch BatchNorm: the ported bias is 0, so the
    # outputs agree; the extra parameter only changes training
    r = verified[("rule_gap.keras", f"{RULES}:GapBnBias")]
    assert r.verification.status == "agree"
    assert [u["code"] for u in r.verification.unconfirmed] == ["NRM005"]


def test_unportable_layer_is_reported_not_guessed(verified):
    r = verified[("rule_text.keras", f"{RULES}:TextPort")]  # GRU reset_after=False
    v = r.verification
    (gru,) = [u for u in v.unported if u.get("keras") == "gru"]
    assert "reset_after=False" in gru["reason"]
    assert any(name.startswith("gru.") for name in v.missing)


def test_conv1d_groupnorm_scaleless_batchnorm_and_simple_rnn_port(verified):
    # Conv1D, GroupNormalization, BatchNormalization(scale=False) (torch's weight ported as ones) and
    # SimpleRNN (one bias -> b_ih, b_hh = 0) all agree once ported; the scale-less BatchNorm stays a
    # (training) difference: torch's weight would learn
    r = verified[("layouts_1d.keras", "fixtures/layouts_torch.py:Layouts1d")]
    assert r.verification.status == "agree" and r.verification.max_rel < 1e-4
    assert [u["code"] for u in r.verification.unconfirmed] == ["NRM005"]


@pytest.mark.parametrize("keras,port,layer", SWAPPED)
def test_branches_swapped_at_a_concatenation(verified, keras, port, layer):
    r = verified[(keras, port)]
    (f,) = [f for f in r.findings if f.code == "MRG001"]
    assert f.keras == layer and f.category == "behaviour"
    assert r.verification.first_divergent_row == f.row and r.verification.attributed_to == ["MRG001"]


def test_inception_branches_pair_by_data_flow(verified):
    """Keras lists the four branches' layers by depth, the port runs them branch by branch (or in reverse):
    every conv pairs with its own branch's, which the ported weights prove."""
    for port in ("Inception", "InceptionReversed"):
        r = verified[("inception_block.keras", f"fixtures/inception_torch.py:{port}")]
        pairs = {(row.keras, row.torch) for row in r.rows if row.is_pair}
        assert {("b2_reduce", "b2.0.0"), ("b2_3x3", "b2.1.0"), ("b3_reduce", "b3.0.0"), ("b3_3x3a", "b3.1.0"),
                ("b3_3x3b", "b3.2.0"), ("b1_1x1", "b1.0"), ("b4_1x1", "b4.0"), ("mixed", "torch.cat#1")} <= pairs
        assert r.verdict == "equivalent" and r.verification.status == "agree"
