"""The framework facts behind the rules, measured with Keras and PyTorch (tests/facts/measure.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, _env

EXACT = 1e-5   # float32 round-off
APART = 1e-3   # a real difference


@pytest.fixture(scope="module")
def facts() -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "facts" / "measure.py")], capture_output=True,
                          text=True, env=_env(TF_CPP_MIN_LOG_LEVEL="3"), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_nrm001_keras_counts_moving_stats_torch_keeps_buffers(facts):
    C = 8
    assert (facts["bn_keras_trainable"], facts["bn_keras_non_trainable"]) == (2 * C, 2 * C)
    assert (facts["bn_torch_params"], facts["bn_torch_buffers"]) == (2 * C, 2 * C + 1)


def test_nrm002_torch_momentum_is_one_minus_keras(facts):
    assert facts["bn_momentum_one_minus_m"] < EXACT
    assert facts["bn_momentum_same_number"] > APART


def test_nrm003_epsilon_changes_inference(facts):
    assert facts["bn_eps_torch_default"] > APART and facts["bn_eps_matched"] < EXACT


def test_cnv_padding_and_kernel_layout(facts):
    assert facts["conv_same_s1_padding1"] < EXACT           # CNV001's transpose(3, 2, 0, 1); 'same' s1 ≡ padding=1
    assert facts["conv_same_s2_padding1"] > APART           # CNV002: same shape, other values
    assert facts["conv_same_s2_fpad_0_1"] < EXACT           # ROW007: F.pad(0, 1, 0, 1) + padding=0
    assert facts["zeropadding_valid_vs_padding1"] < EXACT   # ROW007: ZeroPadding2D(1) + 'valid' ≡ padding=1


def test_cnv003_separable_conv_and_a_redundant_depthwise_bias(facts):
    # depth_multiplier 2: CNV001's depthwise recipe, and a depthwise bias folded into the pointwise one
    assert facts["separable_with_folded_depthwise_bias"] < EXACT


def test_flt001_flatten_order_needs_the_permutation(facts):
    assert facts["flatten_plain_kernel_T"] > APART and facts["flatten_permuted_kernel"] < EXACT


def test_pl001_pool_windows(facts):
    assert facts["maxpool_same_ceil_mode"] < EXACT and facts["maxpool_same_padding1"] > APART
    assert facts["avgpool_same_exclude_pad"] < EXACT and facts["avgpool_same_include_pad"] > APART


def test_rnn001_two_biases_one_sum(facts):
    F_, U = 5, 4
    assert facts["lstm_keras_params"] == 4 * U * (F_ + U + 1)
    assert facts["lstm_torch_params"] == 4 * U * (F_ + U + 2)
    assert facts["lstm_ported"] < EXACT


def test_rnn004_gru_gates_swap_z_and_r(facts):
    F_, U = 5, 4
    assert facts["gru_keras_params"] == facts["gru_torch_params"] == 3 * U * (F_ + U + 2)  # reset_after=True
    assert facts["gru_ported_swapped"] < EXACT and facts["gru_ported_unswapped"] > APART


def test_att001_head_size_sets_the_count(facts):
    E = 8
    assert facts["mha_torch"] == facts["mha_keras_key_dim_e_over_h"] == 4 * E * E + 4 * E
    assert facts["mha_keras_key_dim_e"] == 568  # key_dim=E with 2 heads: twice the projections


def test_act004_leaky_relu_defaults(facts):
    assert facts["leaky_keras_layer_slope"] == pytest.approx(0.3)
    assert facts["leaky_torch_slope"] == pytest.approx(0.01)


def test_act005_logits_losses_apply_the_head_themselves(facts):
    assert facts["ce_logits_vs_keras_probs"] < 1e-5 and facts["bce_logits_vs_keras_probs"] < 1e-5


def test_cnv005_transpose_crops_on_a_grid(facts):
    """The rule's arithmetic (transpose_crops) against the frameworks: on every grid point, the torch
    (padding, output_padding) pairs it calls equivalent are exactly those whose outputs match Keras's."""
    from ktdiff.comparers.rules.layers import transpose_crops

    grid = facts["convt_grid"]
    assert len(grid) > 100 and any(g["matches"] for g in grid) and any(not g["matches"] for g in grid)
    for g in grid:
        want = transpose_crops(g["size"], g["k"], g["s"], 1, g["padding"], g["output_padding"])
        predicted = [[p, op] for p in range(g["k"] + 1) for op in range(g["s"])
                     if transpose_crops(g["size"], g["k"], g["s"], 1, p, op) == want
                     and (g["size"] - 1) * g["s"] + g["k"] - 2 * p + op > 0]
        assert predicted == g["matches"], g
    # the classic slip: k=3, s=2, 'same' has no torch padding at all (the shape of padding=1,
    # output_padding=1 fits, its values are shifted)
    (g,) = [g for g in grid if (g["size"], g["k"], g["s"], g["padding"], g["output_padding"]) == (6, 3, 2, "same", None)]
    assert g["matches"] == [] and g["shape"] == [12, 12]
