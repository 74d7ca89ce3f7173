"""Benchmarks: prints figures, asserts nothing. `make bench` (builds the fixtures first).

- CLI start-up (`ktdiff --help`, which must not import TensorFlow or PyTorch);
- each loader on its own (a worker process: framework import + load + walk);
- the whole comparison of the seed pair (both workers in parallel + align + explain + render);
- align + explain + render alone on a synthetic deep pair (how the engine scales with rows).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, NO_COLOR="1")


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def show(label: str, times: list[float]) -> None:
    print(f"{label:<66} median {statistics.median(times):7.3f} s   min {min(times):7.3f} s   (n={len(times)})")


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ktdiff.cli.main", *args], cwd=ROOT, env=ENV, capture_output=True)


def peak_rss(*args: str) -> float:
    """The largest resident set of any process a ktdiff run started (its workers), in MiB."""
    code = ("import resource, subprocess, sys; subprocess.run([sys.executable, '-m', 'ktdiff.cli.main', *sys.argv[1:]], "
            "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=ENV, capture_output=True, text=True)
    return int(done.stdout.strip()) / 1024


def worker(side: str, args: dict) -> None:
    from ktdiff.comparers import workers

    with workers.Workspace() as tmp:
        workers.collect(workers.start(side, args, tmp), 600)


def synthetic(depth: int):
    """A Keras-like and a torch-like summary of `depth` conv-bn-relu blocks, built as plain data."""
    from ktdiff.comparers.summary import Layer, ModelSummary, Weight, Buffer, compute_totals

    k_layers, t_layers = [Layer("input", "input", "InputLayer", "input", output_shapes=[[None, 32, 32, 16]])], []
    for i in range(depth):
        conv_hp = dict(rank=2, filters=16, in_channels=16, kernel_size=[3, 3], strides=[1, 1], dilation=[1, 1],
                       groups=1, use_bias=False)
        k_layers.append(Layer(f"conv{i}", f"conv{i}", "Conv2D", "conv", output_shapes=[[None, 32, 32, 16]],
                              input_shapes=[[None, 32, 32, 16]], trainable_params=2304,
                              weights=[Weight("kernel", [3, 3, 16, 16], 2304, True)],
                              hparams=dict(conv_hp, padding="same", activation="linear")))
        k_layers.append(Layer(f"bn{i}", f"bn{i}", "BatchNormalization", "batchnorm", output_shapes=[[None, 32, 32, 16]],
                              trainable_params=32, non_trainable_params=32,
                              weights=[Weight("gamma", [16], 16, True), Weight("beta", [16], 16, True),
                                       Weight("moving_mean", [16], 16, False),
                                       Weight("moving_variance", [16], 16, False)],
                              hparams=dict(epsilon=1e-3, momentum=0.99, moving_average_decay=0.99, num_features=16)))
        k_layers.append(Layer(f"relu{i}", f"relu{i}", "ReLU", "activation", output_shapes=[[None, 32, 32, 16]],
                              hparams={"activation": "relu"}))
        t_layers.append(Layer(f"b{i}.conv", f"b{i}.conv", "Conv2d", "conv", origin="module",
                              output_shapes=[[1, 16, 32, 32]], trainable_params=2304,
                              weights=[Weight("weight", [16, 16, 3, 3], 2304, True)],
                              hparams=dict(conv_hp, padding=[1, 1], padding_mode="zeros")))
        t_layers.append(Layer(f"b{i}.bn", f"b{i}.bn", "BatchNorm2d", "batchnorm", origin="module",
                              output_shapes=[[1, 16, 32, 32]], trainable_params=32,
                              weights=[Weight("weight", [16], 16, True), Weight("bias", [16], 16, True)],
                              buffers=[Buffer("running_mean", [16], 16, "float32"),
                                       Buffer("running_var", [16], 16, "float32"),
                                       Buffer("num_batches_tracked", [], 1, "int64")],
                              hparams=dict(epsilon=1e-5, momentum=0.1, moving_average_decay=0.9, num_features=16,
                                           track_running_stats=True)))
        t_layers.append(Layer(f"b{i}.relu", f"b{i}.relu", "ReLU", "activation", origin="module",
                              output_shapes=[[1, 16, 32, 32]], hparams={"activation": "relu"}))
    keras = ModelSummary("keras", "synthetic.keras", "deep", "Functional", "channels_last", "keras", layers=k_layers,
                         totals=compute_totals(k_layers))
    torch = ModelSummary("torch", "synthetic.py:Deep", "Deep", "Deep", "channels_first", "torch", layers=t_layers,
                         totals=compute_totals(t_layers))
    return keras, torch


def main() -> None:
    models = ROOT / "fixtures" / "models"
    seed = str(models / "seed.keras")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    show("ktdiff --help (no framework import)", timed(lambda: cli("--help"), 5))
    show("Keras worker: seed.keras (import + load + summary)", timed(lambda: worker("keras", {"path": seed}), 3))
    torch_args = {"spec": str(ROOT / "fixtures" / "seed_torch.py") + ":Net",
                  "keras_inputs": [{"name": "x", "shape": [None, 64, 64, 1], "dtype": "float32"}]}
    show("torch worker: seed_torch.py:Net (import + build + forward walk)", timed(lambda: worker("torch", torch_args), 3))
    show("ktdiff compare seed.keras seed_torch.py:Net (end to end)",
         timed(lambda: cli("compare", seed, "fixtures/seed_torch.py:Net"), 3))

    show("ktdiff compare seed.keras seed_torch.py:Net --verify (13.1M parameters)",
         timed(lambda: cli("compare", seed, "fixtures/seed_torch.py:Net", "--verify"), 3))
    branchy = str(models / "branchy.keras")
    show("ktdiff compare branchy.keras branchy_torch.py:Branchy", timed(lambda: cli("compare", branchy,
                                                                                   "fixtures/branchy_torch.py:Branchy"), 3))
    show("ktdiff compare branchy.keras branchy_torch.py:Branchy --verify",
         timed(lambda: cli("compare", branchy, "fixtures/branchy_torch.py:Branchy", "--verify"), 3))
    for extra in ([], ["--verify"]):
        print(f"{'peak worker memory, seed pair ' + ' '.join(extra or ['(structure only)']):<66} "
              f"{peak_rss('compare', seed, 'fixtures/seed_torch.py:Net', *extra):7.0f} MiB")

    from ktdiff.comparers import report
    from ktdiff.comparers.pipeline import compare_summaries

    from ktdiff.comparers.align import align

    for depth in (150, 670):  # with the data flow recorded, as the loaders do: aligned along it
        keras, torch = synthetic(depth)
        for layers, first in ((keras.layers[1:], keras.layers[0].id), (torch.layers, "input")):
            for layer in layers:
                layer.inbound, first = [first], layer.id
        show(f"align along the data flow, {len(keras.layers):,} Keras and {len(torch.layers):,} torch rows",
             timed(lambda: align(keras, torch), 3))
    for depth in (10, 50, 150):
        keras, torch = synthetic(depth)
        rows = len(keras.layers) + len(torch.layers)
        show(f"align + explain + render, {depth} conv-bn-relu blocks ({rows} rows in)",
             timed(lambda: report.render_table(compare_summaries(keras, torch)), 3))


if __name__ == "__main__":
    main()
