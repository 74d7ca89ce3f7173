"""Layers known by what they are: subclasses, modules of unknown classes, run-time padding, identities.

The ports in fixtures/zoo_style_torch.py reproduce how model zoos write layers (timm's Conv2dSame and
BatchNormAct2d, transformers' Conv1D) next to the Keras model strided_cnn. Expected figures come from
the frameworks' arithmetic: Keras BatchNormalization 4C (2C non-trainable), torch BatchNorm 2C; a
conv bias C; TF 'same' padding of a 3x3 stride-2 conv on 8 pixels is 0 before, 1 after.
"""

from __future__ import annotations

from conftest import codes

KERAS = "strided_cnn.keras"
PORTS = "zoo_style_torch.py"
C = 8


def pairs(r):
    return {(row.keras, row.torch) for row in r.rows if row.is_pair}


def test_subclasses_and_unknown_classes_pair_by_what_they_are(loader):
    r = loader.compare(KERAS, f"{PORTS}:ZooStyle")
    assert codes(r, "behaviour") == [] and codes(r, "unexplained") == [] and r.verdict == "bookkeeping"
    # Conv2dSame and MyConv are Conv2d, BatchNormAct2d a BatchNorm2d (its act child pairs with Keras's ReLU),
    # transformers' Conv1D a linear layer recognised by its parameters, x.mean((2, 3)) the global pooling
    assert {("stem", "stem"), ("bn", "bn"), ("act", "bn.act"), ("conv", "conv"), ("gap", "x.mean#1"),
            ("head", "head")} <= pairs(r)
    t = {layer.id: layer for layer in r.torch.layers}
    assert t["head"].kind == "dense" and t["head"].hparams["weight_layout"] == "in_out"
    assert t["bn"].kind == "batchnorm" and t["bn"].total_params == 2 * C  # its own tensors, not its children's
    assert r.torch.inputs[0].shape == [1, 3, 8, 8]  # a port starting with Conv2dSame reads NCHW
    assert t["stem"].hparams["runtime_padding"] == [[0, 1], [0, 1]]  # what pad_same computed at run time
    (nrm,) = [f for f in r.findings if f.code == "NRM001"]
    assert nrm.keras == "bn" and nrm.params == 2 * C
    assert "DNS001" not in codes(r)  # Conv1D keeps (in, out) as Keras does: nothing to transpose
    # the identity inside BatchNormAct2d is structure, not a module without counterpart
    (ident,) = [f for f in r.findings if f.code == "ROW008"]
    assert ident.torch == "bn.drop" and "identity" in ident.message


def test_runtime_padding_counts_as_the_convs_padding(loader):
    assert "CNV002" not in codes(loader.compare(KERAS, f"{PORTS}:ZooStyle"))
    r = loader.compare(KERAS, f"{PORTS}:ZooStyleSymmetric")  # plain Conv2d(padding=1): pads 1/1
    (f,) = [f for f in r.findings if f.code == "CNV002"]
    assert f.keras == "stem" and "Keras pads 0 before and 1 after" in f.message


def test_bn_subclass_keeps_its_differences(loader):
    r = loader.compare(KERAS, f"{PORTS}:ZooStyleBnDefaults")
    assert {f.code for f in r.findings if f.keras == "bn"} >= {"NRM001", "NRM002", "NRM003"}


def test_cnv004_bias_before_batchnorm_is_bookkeeping(loader):
    r = loader.compare(KERAS, f"{PORTS}:ZooStyleNoBias")
    (f,) = [f for f in r.findings if f.code == "CNV004"]
    assert f.keras == "stem" and f.category == "bookkeeping" and f.params == C
    assert "HP001" not in codes(r) and r.verdict == "bookkeeping" and r.accounting.unexplained == 0
    # a bias before anything but a BatchNorm changes the outputs
    r = loader.compare(KERAS, f"{PORTS}:ZooStyleConvNoBias")
    assert "CNV004" not in codes(r)
    (hp,) = [f for f in r.findings if f.code == "HP001"]
    assert hp.keras == "conv" and "use_bias" in hp.message


def test_recognised_ports_verify_numerically(loader):
    results = loader.verified([(KERAS, f"{PORTS}:{p}") for p in
                               ("ZooStyle", "ZooStyleNoBias", "ZooStyleSymmetric", "ZooStyleConvNoBias")])
    ok, folded, sym, nobias = results.values()
    assert ok.verification.status == "agree" and ok.exit_code == 0
    assert folded.verification.status == "agree"  # the Keras bias went into the running mean
    assert sym.verification.attributed_to == ["CNV002"]
    assert nobias.verification.attributed_to == ["HP001"]


def test_row008_only_for_rows_that_change_nothing(loader):
    assert "ROW008" not in codes(loader.compare("rule_mlp.keras", "rule_ports.py:MlpPort"))
    r = loader.compare("rule_mlp.keras", "rule_ports.py:MlpExtraLayer")  # an extra Linear is no identity
    assert "ROW008" not in codes(r) and "ROW004" in codes(r)


def test_gelu_approximation_is_its_own_difference(loader):
    exact, tanh = loader.verified([("mlp.keras", "mlp_torch.py:Mlp"), ("mlp.keras", "mlp_torch.py:MlpTanhGelu")]).values()
    assert exact.verification.status == "agree" and exact.verdict == "equivalent"
    (f,) = [f for f in tanh.findings if f.category == "behaviour"]
    assert f.code == "ACT004" and f.torch == "gelu" and "tanh approximation" in f.message
    assert "ACT002" not in codes(tanh) and "ACT003" not in codes(tanh)
    assert tanh.verification.attributed_to == ["ACT004"]


def test_bidirectional_readout(loader):
    """Keras's Bidirectional(LSTM) returns [forward final state, backward final state]."""
    ok, last, swapped = loader.verified([("bilstm.keras", f"bilstm_torch.py:{p}")
                                         for p in ("BiLstm", "BiLstmLastStep", "BiLstmSwapped")]).values()
    assert ok.verdict == "bookkeeping" and ok.verification.status == "agree"
    (cat,) = [f for f in ok.findings if f.code == "RNN006" and f.torch == "torch.cat#1"]
    assert "h_n[-2] (forward) and h_n[-1] (backward)" in cat.message
    assert "ROW004" not in codes(ok)
    (bug,) = [f for f in last.findings if f.code == "RNN007"]
    assert bug.torch == "output[:, -1]#1" and "seen only the last token" in bug.message
    assert last.verification.attributed_to == ["RNN007"] and "ROW004" not in codes(last)
    (bug,) = [f for f in swapped.findings if f.code == "RNN007"]
    assert bug.torch == "torch.cat#1" and swapped.verification.attributed_to == ["RNN007"]
    rnn003 = [f for f in last.findings if f.code == "RNN003"]
    assert "torch.cat([h_n[-2], h_n[-1]], dim=1) (not out[:, -1])" in rnn003[0].message


def test_unknown_input_dimensions_get_a_representative_size(loader):
    r = loader.compare("any_size_cnn.keras", "any_size_torch.py:AnySizeCnn")
    assert r.torch.inputs[0].shape == [1, 3, 224, 224] and r.verdict == "equivalent"
    assert any("unknown dimensions set to 224×224" in n for n in r.torch.notes)
    r = loader.compare("any_length_text.keras", "any_size_torch.py:AnyLengthText")
    assert (r.torch.inputs[0].shape, r.torch.inputs[0].dtype) == ([1, 16], "int64") and r.verdict == "equivalent"
    assert ("gap", "x.mean#1") in pairs(r)  # x.mean(dim=1) of (N, T, C) is GlobalAveragePooling1D
    v = loader.verified([("any_length_text.keras", "any_size_torch.py:AnyLengthText"),
                         ("any_size_cnn.keras", "any_size_torch.py:AnySizeCnn")])
    assert [x.verification.status for x in v.values()] == ["agree", "agree"]


def test_a_shape_given_by_hand_keeps_the_keras_dtype(loader):
    t = loader.torch("any_size_torch.py:AnyLengthText", "any_length_text.keras", input_shapes=[[2, 12]])
    assert (t.inputs[0].shape, t.inputs[0].dtype) == ([2, 12], "int64")


def test_elementwise_product_is_a_row(loader):
    # the squeeze-excitation gate `x * s` in forward() pairs with Keras's Multiply; x.mean(keepdim=True) with
    # GlobalAveragePooling2D(keepdims=True)
    r = loader.compare("squeeze_excite.keras", "layouts_torch.py:SqueezeExcite")
    assert {("se_scale", "x.mul#1"), ("se_pool", "x.mean#1"), ("gap", "x.mean#2")} <= pairs(r)
    assert r.verdict == "equivalent" and codes(r, "behaviour") == []
