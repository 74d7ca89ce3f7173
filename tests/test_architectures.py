"""Whole architectures, ported faithfully: ktdiff must flag nothing that is not there."""

from __future__ import annotations

from conftest import codes


def test_mini_resnet_port_is_equivalent_except_bookkeeping(loader):
    r = loader.compare("mini_resnet.keras", "resnet_torch.py:MiniResNet")
    assert codes(r, "behaviour") == [] and codes(r, "unexplained") == []
    assert r.verdict == "bookkeeping" and r.exit_code == 0
    pairs = {(row.keras, row.torch) for row in r.rows if row.is_pair}
    # the shortcut branch runs last in the port, where Keras lists it earlier: still paired
    assert ("block_short_conv", "block.shortcut.0") in pairs and ("block_short_bn", "block.shortcut.1") in pairs
    assert ("block_add", "block.x.add_#1") in pairs  # `out += shortcut` in Block.forward
    assert ("gap", "pool") in pairs
    # Keras's ZeroPadding2D + 'valid' conv is the port's padding=1
    (pad,) = [f for f in r.findings if f.code == "ROW007"]
    assert pad.keras == "stem_pad" and "stem.0" in pad.message
    # the Flatten after AdaptiveAvgPool2d(1) only drops the 1x1
    assert [f.torch for f in r.findings if f.code == "ROW006"] == ["torch.flatten#1"]
    bn_rows = [f for f in r.findings if f.code == "NRM001"]
    assert sum(f.params for f in bn_rows) == 2 * (16 + 32 + 32 + 32)  # 2C per BatchNormalization
    assert r.accounting.unexplained == 0


def test_text_lstm_port(loader):
    r = loader.compare("text_lstm.keras", "text_torch.py:TextLSTM")
    assert r.torch.inputs[0].dtype == "int64" and r.torch.inputs[0].shape == [1, 12]  # Keras int32 tokens
    assert codes(r, "behaviour") == [] and codes(r, "unexplained") == []
    assert r.verdict == "bookkeeping"
    (bias,) = [f for f in r.findings if f.code == "RNN001"]
    assert bias.params == -4 * 24  # LSTM 4U(F+U+1) vs 4U(F+U+2): torch's second bias
    assert "RNN003" in codes(r)  # Keras returns the last step; the port picks seq[:, -1] itself
    assert r.accounting.unexplained == 0


def test_text_lstm_logits_port(loader):
    r = loader.compare("text_lstm.keras", "text_torch.py:TextLSTMLogits")
    head = [f for f in r.findings if f.code == "ACT005"]
    assert len(head) == 1 and "BCEWithLogitsLoss" in head[0].message
    assert "RNN002" in codes(r)  # batch_first=False reads the 12 tokens as time steps of one sample
    assert r.verdict == "different"


def test_mini_unet_port_is_equivalent(loader):
    r = loader.compare("mini_unet.keras", "unet_torch.py:MiniUNet")
    assert r.verdict == "equivalent" and r.accounting.difference == 0
    pairs = {(row.keras, row.torch) for row in r.rows if row.is_pair}
    assert ("skip", "torch.cat#1") in pairs and ("up", "up") in pairs and ("pool", "pool") in pairs
    assert [f.message.split(":")[0] for f in r.findings if f.code == "CNV001" and f.keras == "up"] == \
        ["kernel (2, 2, 8, 16) vs weight (16, 8, 2, 2)"]  # Conv2DTranspose (kh, kw, out, in) vs (in, out, kh, kw)


def test_mini_mobilenet_port(loader):
    r = loader.compare("mini_mobilenet.keras", "mobilenet_torch.py:MiniMobileNet")
    assert codes(r, "behaviour") == [] and codes(r, "unexplained") == [] and r.verdict == "bookkeeping"
    (pad,) = [f for f in r.findings if f.code == "ROW007"]
    assert pad.torch == "stem.0" and "0/1, 0/1" in pad.message  # nn.ZeroPad2d((0, 1, 0, 1))
    # (None, 8, 8, 8) and (1, 8, 8, 8) read alike, but the port's tensor is channels-first
    assert "LAY001" in [f.code for f in r.findings if f.keras == "dw"]
    dw = [f for f in r.findings if f.code == "CNV001" and f.keras == "dw"]
    assert "reshape(3, 3, 8)" in dw[0].message  # DepthwiseConv2D (kh, kw, in, m) -> (in·m, 1, kh, kw)

    naive = loader.compare("mini_mobilenet.keras", "mobilenet_torch.py:MiniMobileNetNaive")
    (f,) = [f for f in naive.findings if f.code == "CNV002"]
    assert f.keras == "stem" and "Keras pads 0 before and 1 after" in f.message
    assert naive.verdict == "different"


def test_lenet_tutorial_port(loader):
    # functional activations and pools, x.view(-1, 400), a documented logits head
    r = loader.compare("lenet.keras", "lenet_torch.py:LeNet")
    assert r.verdict == "equivalent" and r.exit_code == 0
    assert [f.code for f in r.findings if f.suppressed] == ["ACT005"]
    pools = [(row.keras, r.torch.layer(row.torch).hparams) for row in r.rows if row.keras in ("pool1", "pool2")]
    assert [hp["pool_size"] for _, hp in pools] == [[2, 2], [2, 2]]  # F.max_pool2d(x, 2) and (x, (2, 2))
    assert "FLT001" in codes(r)  # x.view flattens (c, h, w)

    avg = loader.compare("lenet.keras", "lenet_torch.py:LeNetAvgPool")
    (f,) = [f for f in avg.findings if f.code == "HP001"]
    assert f.keras == "pool1" and "max vs PyTorch avg" in f.message
    assert [f.code for f in avg.findings if f.suppressed] == ["ACT005"]  # the base class's comment still applies
