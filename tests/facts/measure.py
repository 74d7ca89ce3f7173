"""Measure, with the real frameworks, the Keras-vs-PyTorch facts that ktdiff's rules state.

Run by tests/test_facts.py in a child process (TensorFlow and torch in one process, torchvision not
imported); prints one JSON object of figures. The rules cite these facts; the tests check them, so a
framework release that changes one fails here first.
"""

import json
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import keras  # noqa: E402
from keras import layers as L  # noqa: E402

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
torch.manual_seed(0)
out = {}


def diff(a, b) -> float:
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return float(np.abs(np.asarray(a) - b).max())


def nchw(x):
    return torch.tensor(x).permute(0, 3, 1, 2)


# NRM001 / NRM002 / NRM003: BatchNormalization
C = 8
x = rng.normal(2.0, 3.0, (16, 4, 4, C)).astype("float32")
kbn = L.BatchNormalization(momentum=0.15)
kbn.build(x.shape)
out["bn_keras_trainable"] = sum(int(np.prod(w.shape)) for w in kbn.trainable_weights)
out["bn_keras_non_trainable"] = sum(int(np.prod(w.shape)) for w in kbn.non_trainable_weights)
tbn = nn.BatchNorm2d(C)
out["bn_torch_params"] = sum(p.numel() for p in tbn.parameters())
out["bn_torch_buffers"] = sum(b.numel() for b in tbn.buffers())
kbn(x, training=True)
k_mean = np.asarray(kbn.moving_mean)
for p, key in ((0.85, "bn_momentum_one_minus_m"), (0.15, "bn_momentum_same_number")):
    t = nn.BatchNorm2d(C, momentum=p).train()
    with torch.no_grad():
        t(nchw(x))
    out[key] = diff(k_mean, t.running_mean)
kbn_eps = L.BatchNormalization()  # a channel with a small variance, where epsilon matters
kbn_eps.build(x.shape)
small_var = np.full(C, 1e-3, "float32")
kbn_eps.set_weights([np.ones(C, "float32"), np.zeros(C, "float32"), np.zeros(C, "float32"), small_var])
y_k = np.asarray(kbn_eps(x * 0.01, training=False))
for eps, key in ((1e-5, "bn_eps_torch_default"), (1e-3, "bn_eps_matched")):
    t = nn.BatchNorm2d(C, eps=eps).eval()
    with torch.no_grad():
        t.running_var.copy_(torch.tensor(small_var))
        out[key] = diff(y_k.transpose(0, 3, 1, 2), t(nchw(x * 0.01)))

# CNV001 / CNV002 / ROW007: convolutions and padding
x = rng.random((2, 8, 8, 3)).astype("float32")
for stride, key in ((1, "conv_same_s1_padding1"), (2, "conv_same_s2_padding1")):
    kc = L.Conv2D(4, 3, strides=stride, padding="same")
    y = np.asarray(kc(x)).transpose(0, 3, 1, 2)
    tc = nn.Conv2d(3, 4, 3, stride=stride, padding=1)
    with torch.no_grad():
        tc.weight.copy_(torch.tensor(np.asarray(kc.kernel).transpose(3, 2, 0, 1)))
        tc.bias.copy_(torch.tensor(np.asarray(kc.bias)))
        out[key] = diff(y, tc(nchw(x)))
        if stride == 2:
            tc.padding = (0, 0)
            out["conv_same_s2_fpad_0_1"] = diff(y, tc(F.pad(nchw(x), (0, 1, 0, 1))))
kc = L.Conv2D(4, 3, strides=2, padding="valid")
y = np.asarray(kc(L.ZeroPadding2D(1)(x))).transpose(0, 3, 1, 2)
tc = nn.Conv2d(3, 4, 3, stride=2, padding=1)
with torch.no_grad():
    tc.weight.copy_(torch.tensor(np.asarray(kc.kernel).transpose(3, 2, 0, 1)))
    tc.bias.copy_(torch.tensor(np.asarray(kc.bias)))
    out["zeropadding_valid_vs_padding1"] = diff(y, tc(nchw(x)))

# CNV003: SeparableConv2D = depthwise + pointwise; a depthwise bias folds into the pointwise bias
x = rng.random((2, 8, 8, 4)).astype("float32")
ks = L.SeparableConv2D(6, 3, padding="same", depth_multiplier=2)
y = np.asarray(ks(x)).transpose(0, 3, 1, 2)
dk, pk, kb = (np.asarray(w) for w in (ks.depthwise_kernel, ks.pointwise_kernel, ks.bias))
dwc = nn.Conv2d(4, 8, 3, padding=1, groups=4, bias=True)
pwc = nn.Conv2d(8, 6, 1)
b = rng.normal(size=8).astype("float32")
W = pk.reshape(8, 6).T  # (out, in·m)
with torch.no_grad():
    dwc.weight.copy_(torch.tensor(dk.reshape(3, 3, 8).transpose(2, 0, 1)[:, None]))  # CNV001's recipe
    pwc.weight.copy_(torch.tensor(pk.transpose(3, 2, 0, 1)))
    dwc.bias.copy_(torch.tensor(b))
    pwc.bias.copy_(torch.tensor(kb - W @ b))
    out["separable_with_folded_depthwise_bias"] = diff(y, pwc(dwc(nchw(x))))

# FLT001 / DNS001: flatten order and the Dense kernel
H, W, Cf, O = 4, 4, 5, 3
x = rng.random((2, H, W, Cf)).astype("float32")
d = L.Dense(O)
y = np.asarray(d(L.Flatten()(x)))
K = np.asarray(d.kernel)
lin = nn.Linear(H * W * Cf, O)
with torch.no_grad():
    lin.bias.copy_(torch.tensor(np.asarray(d.bias)))
    lin.weight.copy_(torch.tensor(K.T))
    out["flatten_plain_kernel_T"] = diff(y, lin(nchw(x).flatten(1)))
    lin.weight.copy_(torch.tensor(K.reshape(H, W, Cf, O).transpose(3, 2, 0, 1).reshape(O, Cf * H * W)))
    out["flatten_permuted_kernel"] = diff(y, lin(nchw(x).flatten(1)))

# PL001: pooling windows
x = rng.random((2, 8, 8, 3)).astype("float32")
y = np.asarray(L.MaxPooling2D(3, 2, padding="same")(x)).transpose(0, 3, 1, 2)
out["maxpool_same_ceil_mode"] = diff(y, nn.MaxPool2d(3, 2, ceil_mode=True)(nchw(x)))
out["maxpool_same_padding1"] = diff(y, nn.MaxPool2d(3, 2, padding=1)(nchw(x)))
y = np.asarray(L.AveragePooling2D(3, 1, padding="same")(x)).transpose(0, 3, 1, 2)
out["avgpool_same_exclude_pad"] = diff(y, nn.AvgPool2d(3, 1, padding=1, count_include_pad=False)(nchw(x)))
out["avgpool_same_include_pad"] = diff(y, nn.AvgPool2d(3, 1, padding=1)(nchw(x)))

# RNN001: one bias against two; the port b_ih = bias, b_hh = 0
F_, U = 5, 4
x = rng.random((2, 6, F_)).astype("float32")
kl = L.LSTM(U, return_sequences=True)
y = np.asarray(kl(x))
tl = nn.LSTM(F_, U, batch_first=True)
out["lstm_keras_params"] = kl.count_params()
out["lstm_torch_params"] = sum(p.numel() for p in tl.parameters())
with torch.no_grad():
    tl.weight_ih_l0.copy_(torch.tensor(np.asarray(kl.cell.kernel).T))
    tl.weight_hh_l0.copy_(torch.tensor(np.asarray(kl.cell.recurrent_kernel).T))
    tl.bias_ih_l0.copy_(torch.tensor(np.asarray(kl.cell.bias)))
    tl.bias_hh_l0.zero_()
    out["lstm_ported"] = diff(y, tl(torch.tensor(x))[0])

# RNN004: GRU gate order [z, r, h] vs [r, z, n]
kg = L.GRU(U, return_sequences=True)
y = np.asarray(kg(x))
tg = nn.GRU(F_, U, batch_first=True)
out["gru_keras_params"] = kg.count_params()
out["gru_torch_params"] = sum(p.numel() for p in tg.parameters())


def swap_zr(w):  # last axis [z | r | h] -> [r | z | h]
    return np.concatenate([w[..., U:2 * U], w[..., :U], w[..., 2 * U:]], axis=-1)


for swap, key in ((True, "gru_ported_swapped"), (False, "gru_ported_unswapped")):
    fix = swap_zr if swap else (lambda w: w)
    bias = np.asarray(kg.cell.bias)
    with torch.no_grad():
        tg.weight_ih_l0.copy_(torch.tensor(fix(np.asarray(kg.cell.kernel)).T))
        tg.weight_hh_l0.copy_(torch.tensor(fix(np.asarray(kg.cell.recurrent_kernel)).T))
        tg.bias_ih_l0.copy_(torch.tensor(fix(bias[0])))
        tg.bias_hh_l0.copy_(torch.tensor(fix(bias[1])))
        out[key] = diff(y, tg(torch.tensor(x))[0])

# ATT001: MultiHeadAttention counts (E = 8, 2 heads)
q = np.zeros((1, 5, 8), "float32")
for key_dim, key in ((4, "mha_keras_key_dim_e_over_h"), (8, "mha_keras_key_dim_e")):
    mha = L.MultiHeadAttention(2, key_dim)
    mha(q, q)
    out[key] = mha.count_params()
out["mha_torch"] = sum(p.numel() for p in nn.MultiheadAttention(8, 2).parameters())

# ACT004: LeakyReLU defaults
out["leaky_keras_layer_slope"] = float(np.asarray(L.LeakyReLU()(np.array([-1.0], "float32")))[0]) * -1
out["leaky_torch_slope"] = float(nn.LeakyReLU()(torch.tensor([-1.0]))[0]) * -1

# ACT005: losses that apply the head's activation themselves
logits = rng.normal(size=(6, 5)).astype("float32")
labels = rng.integers(0, 5, 6)
k_ce = float(np.mean(keras.losses.sparse_categorical_crossentropy(labels, keras.activations.softmax(logits))))
out["ce_logits_vs_keras_probs"] = abs(k_ce - float(nn.CrossEntropyLoss()(torch.tensor(logits), torch.tensor(labels))))
z = rng.normal(size=(6, 1)).astype("float32")
t = rng.integers(0, 2, (6, 1)).astype("float32")
k_bce = float(np.mean(keras.losses.binary_crossentropy(t, keras.activations.sigmoid(z))))
out["bce_logits_vs_keras_probs"] = abs(k_bce - float(nn.BCEWithLogitsLoss()(torch.tensor(z), torch.tensor(t))))

# CNV005: where a transposed convolution crops its full output, on a grid of sizes, kernels, strides,
# paddings and Keras output_padding: every torch (padding, output_padding) that reproduces Keras's values
grid = []
for size in (5, 6):
    for k in (1, 2, 3, 4, 5):
        for s in (1, 2, 3):
            for padding in ("valid", "same"):
                for kop in [None] + list(range(s)):
                    x = rng.normal(size=(1, size, size, 2)).astype("float32")
                    layer = L.Conv2DTranspose(3, k, strides=s, padding=padding, output_padding=kop)
                    try:
                        y = np.asarray(layer(x))
                    except Exception:  # noqa: BLE001 - an output_padding Keras refuses
                        continue
                    kernel, bias = (np.asarray(w) for w in layer.weights)
                    bias = rng.normal(size=bias.shape).astype("float32")
                    layer.weights[1].assign(bias)
                    y = np.asarray(layer(x))
                    matches = []
                    for p in range(0, k + 1):
                        for op in range(0, s):
                            try:
                                t = nn.ConvTranspose2d(2, 3, k, stride=s, padding=p, output_padding=op)
                            except Exception:  # noqa: BLE001
                                continue
                            with torch.no_grad():
                                t.weight.copy_(torch.tensor(kernel.transpose(3, 2, 0, 1)))
                                t.bias.copy_(torch.tensor(bias))
                                try:
                                    yt = t(nchw(x)).permute(0, 2, 3, 1).numpy()
                                except RuntimeError:
                                    continue
                            if yt.shape == y.shape and np.abs(yt - y).max() < 1e-5:
                                matches.append([p, op])
                    grid.append({"size": size, "k": k, "s": s, "padding": padding, "output_padding": kop,
                                 "shape": list(y.shape[1:3]), "matches": matches})
out["convt_grid"] = grid

print(json.dumps(out))
