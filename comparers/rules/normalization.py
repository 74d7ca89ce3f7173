"""NRM: batch, layer and group normalisation."""

from __future__ import annotations

from . import Hit, rule
from ._text import fmt_float, label, num

NORM_KINDS = ("batchnorm", "layernorm", "groupnorm")
KERAS_EPS = {"batchnorm": 1e-3, "layernorm": 1e-3, "groupnorm": 1e-3}
TORCH_EPS = {"batchnorm": 1e-5, "layernorm": 1e-5, "groupnorm": 1e-5}


def _stats_numel(k) -> int:
    return sum(w.numel for w in k.weights if not w.trainable and w.name in ("moving_mean", "moving_variance"))


@rule("NRM001", "bn-moving-stats-counted", "bookkeeping",
      "Keras counts BatchNorm's moving mean and variance as weights; PyTorch keeps them as buffers",
      what="A Keras BatchNormalization row counts 4C: gamma and beta (trainable) plus the moving mean and "
           "variance (non-trainable). The torch row counts 2C: weight and bias; running_mean and running_var "
           "are buffers, which parameters() and torchinfo do not count. torch also keeps num_batches_tracked "
           "(one int64), which Keras has no counterpart for.",
      why="Keras summaries count every weight variable; torch counts parameters only. Same statistics, "
          "same computation.",
      fix="Nothing to fix. When porting weights, copy moving_mean -> running_mean and moving_variance -> "
          "running_var.")
def bn_moving_stats(ctx, index, row):
    k, t = ctx.pair(row, "batchnorm")
    if k is None:
        return
    stats = _stats_numel(k)
    has_buffers = any(b.name.endswith(("running_mean", "running_var")) for b in t.buffers)
    if not stats or not has_buffers:
        return
    c = k.hparams.get("num_features") or stats // 2
    nbt = [b for b in t.buffers if b.name.endswith("num_batches_tracked")]
    extra = (f"; torch also keeps num_batches_tracked ({nbt[0].numel} int64 element, a buffer with no Keras "
             "counterpart)") if nbt else ""
    yield Hit(f"Keras {num(k.total_params)} = {num(k.trainable_params)} trainable + {num(k.non_trainable_params)} "
              f"non-trainable: the moving mean and variance (2 × {c} = {num(stats)}). PyTorch keeps them as "
              f"buffers running_mean and running_var, so {label(t)} counts {num(t.total_params)}{extra}.",
              params=stats)


@rule("NRM002", "bn-momentum", "behaviour", "BatchNorm momentum means the opposite thing in the two frameworks",
      what="Keras: moving = m·moving + (1−m)·batch; torch: running = (1−p)·running + p·batch. The same update "
           "needs p = 1 − m. Defaults: Keras 0.99, torch 0.1 (≡ Keras 0.9). torch momentum=None is a "
           "cumulative average.",
      why="A port that copies the number (or keeps torch's default) updates the running statistics at another "
          "rate during training: the trained model's inference differs.",
      fix="Set torch momentum = 1 − Keras momentum, e.g. Keras 0.15 -> nn.BatchNorm2d(C, momentum=0.85).",
      training_only=True)
def bn_momentum(ctx, index, row):
    k, t = ctx.pair(row, "batchnorm")
    if k is None or not t.hparams.get("track_running_stats", True):
        return
    km, tm = k.hparams.get("momentum"), t.hparams.get("momentum")
    kd, td = k.hparams.get("moving_average_decay"), t.hparams.get("moving_average_decay")
    if tm is None:
        yield Hit(f"Keras momentum={fmt_float(km)} (torch momentum={fmt_float(1 - km)}); {label(t)} has "
                  "momentum=None, a cumulative average.")
    elif kd is not None and abs(kd - td) > 1e-6:
        yield Hit(f"Keras momentum={fmt_float(km)} keeps {fmt_float(km)} of the old statistic, which is torch "
                  f"momentum={fmt_float(round(1 - km, 10))}; {label(t)} has momentum={fmt_float(tm)} "
                  f"(≡ Keras {fmt_float(round(1 - tm, 10))}).")


@rule("NRM003", "norm-epsilon", "behaviour", "Normalisation epsilon differs (Keras 1e-3, PyTorch 1e-5 by default)",
      what="The epsilon added to the variance differs. Keras BatchNormalization, LayerNormalization and "
           "GroupNormalization default to 1e-3; torch BatchNorm, LayerNorm and GroupNorm to 1e-5.",
      why="Inference outputs differ, most where a channel's variance is small (max difference 5.9e-3 on a "
          "BatchNorm with unit-scale inputs; 4.8e-7 once matched).",
      fix="Pass the Keras value to the torch module: eps=1e-3.")
def norm_epsilon(ctx, index, row):
    k, t = ctx.pair(row, *NORM_KINDS)
    if k is None or t.kind != k.kind:
        return
    ke, te = k.hparams.get("epsilon"), t.hparams.get("epsilon")
    if ke is None or te is None or abs(ke - te) <= 1e-9 * max(abs(ke), abs(te)):
        return
    kd = " (Keras default)" if ke == KERAS_EPS[k.kind] else ""
    td = " (torch default)" if te == TORCH_EPS[t.kind] else ""
    yield Hit(f"Keras epsilon={fmt_float(ke)}{kd}; {label(t)} eps={fmt_float(te)}{td}.")


@rule("NRM004", "bn-variance-update", "note", "BatchNorm's running variance is updated differently in training",
      what="Keras updates the moving variance with the biased batch variance, torch the running variance with "
           "the unbiased one (× n/(n−1), n = elements per channel). Training-mode outputs agree; the running "
           "statistics drift slightly apart.",
      why="An implementation difference with no setting on either side.",
      fix="Nothing to set. Ported (trained) statistics are unaffected; retraining in torch gives slightly "
          "different running variances.")
def bn_variance_update(ctx, index, row):
    k, t = ctx.pair(row, "batchnorm")
    if k is not None and t.hparams.get("track_running_stats", True):
        yield Hit(f"{label(k)} and {label(t)} update the running variance with the biased and the unbiased "
                  "batch variance: training-only drift, no setting fixes it.")


@rule("NRM005", "norm-affine", "behaviour", "The normalisation's scale/offset parameters differ",
      what="Keras center/scale switch beta and gamma separately; torch affine=False drops both, and bias=False "
           "(BatchNorm, LayerNorm) drops the offset only.",
      why="A missing gamma or beta changes both the parameter count and the function the layer can learn.",
      fix="Keras center=False <-> torch bias=False; scale=False and center=False <-> affine=False / "
          "elementwise_affine=False. Keras scale=False with center=True has no torch equivalent.")
def norm_affine(ctx, index, row):
    k, t = ctx.pair(row, *NORM_KINDS)
    if k is None or t.kind != k.kind:
        return
    kc, ks = k.hparams.get("center", True), k.hparams.get("scale", True)
    tc, ts = t.hparams.get("center", True), t.hparams.get("scale", True)
    if (kc, ks) == (tc, ts):
        return
    diff = k.trainable_params - t.total_params
    yield Hit(f"Keras center={kc}, scale={ks} ({num(k.trainable_params)} trainable); {label(t)} has "
              f"{'a bias' if tc else 'no bias'} and {'a weight' if ts else 'no weight'} "
              f"({num(t.total_params)} parameters).", params=diff)


@rule("NRM006", "bn-no-running-stats", "behaviour", "The PyTorch BatchNorm keeps no running statistics",
      what="torch BatchNorm with track_running_stats=False has no running_mean/running_var and normalises with "
           "the batch statistics even in eval(); Keras always keeps moving statistics and uses them at inference.",
      why="Inference outputs then depend on the batch.",
      fix="Use track_running_stats=True (the default).")
def bn_no_running_stats(ctx, index, row):
    k, t = ctx.pair(row, "batchnorm")
    if k is None or t.hparams.get("track_running_stats", True):
        return
    stats = _stats_numel(k)
    yield Hit(f"{label(t)} has track_running_stats=False: it normalises with batch statistics at inference; "
              f"Keras uses its {num(stats)} moving-statistics weights.", params=stats)
