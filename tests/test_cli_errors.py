"""Bad input and exit codes, through the CLI as a user runs it.

Every user mistake ends in one line on stderr, ``ktdiff: error: <what> — <hint>``,
exit code 2, no traceback (``--debug`` shows one), nothing on stdout, and no
framework log noise. Exit codes: 0 equivalent, 1 different, 2 ktdiff could not
compare. Real frameworks and real files; the small broken ports are in
fixtures/bad/. Most cases fail before any framework is imported; the ones that
need the PyTorch worker use the small mlp.keras.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT, _env, run_ktdiff

SEED_PORT = "fixtures/seed_torch.py:Net"
FAITHFUL = "fixtures/faithful_torch.py:FaithfulNet"
BAD = "fixtures/bad/modules.py"
NOISE = ("oneDNN", "cuda", "absl", "I0000", "WARNING: All log messages")


def assert_no_noise(done: subprocess.CompletedProcess) -> None:
    for stream, text in (("stdout", done.stdout), ("stderr", done.stderr)):
        for line in text.splitlines():
            assert not any(n in line for n in NOISE), f"framework log noise on {stream}: {line!r}"


def user_error(done: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, nothing on stdout, one `ktdiff: error: what — hint` line on stderr holding every needle."""
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout == "", done.stdout[-2000:]
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith("ktdiff: error: "), line
    what, sep, hint = line[len("ktdiff: error: "):].partition(" — ")
    assert sep and what.strip() and hint.strip(), f"no '<what> — <hint>' in {line!r}"
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert_no_noise(done)
    return line


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- the Keras file (no framework import)

def test_keras_file_missing(models, tmp_path):
    missing = tmp_path / "nope.keras"
    user_error(run_ktdiff("compare", missing, SEED_PORT), "not found", str(missing), "check the path")


def test_keras_path_is_a_directory(models, tmp_path):
    user_error(run_ktdiff("compare", tmp_path, SEED_PORT), "is a directory", "model file itself")


def test_keras_path_is_a_savedmodel_directory(models, tmp_path):
    saved = tmp_path / "exported"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")
    (saved / "variables").mkdir()
    user_error(run_ktdiff("compare", saved, SEED_PORT), "SavedModel", "model.save('model.keras')")


@pytest.mark.parametrize("name, needle", [("weights.pt", "--torch-weights"), ("notes.txt", "model.save")])
def test_keras_wrong_extension(models, tmp_path, name, needle):
    path = tmp_path / name
    path.write_bytes(b"some bytes\n")
    line = user_error(run_ktdiff("compare", path, SEED_PORT), "unsupported Keras model format",
                      os.path.splitext(name)[1], needle)
    assert path.read_bytes() == b"some bytes\n"
    assert "Keras 3 .keras" in line


def test_keras_random_bytes(models, tmp_path):
    path = tmp_path / "random.keras"
    path.write_bytes(os.urandom(4096))
    before = digest(path)
    user_error(run_ktdiff("compare", path, SEED_PORT), "not a valid .keras file", "re-save")
    assert digest(path) == before


def test_keras_truncated_copy(models, tmp_path):
    path = tmp_path / "truncated.keras"
    path.write_bytes((models / "mlp.keras").read_bytes()[:5000])
    user_error(run_ktdiff("compare", path, SEED_PORT), str(path), "corrupt or truncated", "re-save")


def test_keras_corrupt_member(models, tmp_path):
    data = bytearray((models / "mlp.keras").read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path = tmp_path / "damaged.keras"
    path.write_bytes(bytes(data))
    user_error(run_ktdiff("compare", path, SEED_PORT), "not a valid .keras file", "corrupt", "re-save")


@pytest.mark.parametrize("member, needles", [
    ("config.json", ("'s config.json is 70 MB uncompressed (over the 64 MiB ktdiff reads)", "re-save")),
    ("model.weights.h5", ("'s member model.weights.h5 is 70 MB uncompressed", "1000:1", "re-save")),
])
def test_keras_archive_too_large_to_inflate(tmp_path, member, needles):
    # 70 MB of spaces deflates to ~70 KB: the sizes in the zip's directory refuse it before anything is
    # inflated (once, a 1 GB config.json took 21 s and 2.7 GB of memory to read)
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", '{"keras_version": "3.0.0"}')
        if member != "config.json":
            zf.writestr("config.json", '{"class_name": "Sequential", "config": {"layers": []}}')
        zf.writestr(member, b" " * 70_000_000)
    assert path.stat().st_size < 1_000_000
    user_error(run_ktdiff("compare", path, SEED_PORT), str(path), *needles)


def test_h5_that_is_not_hdf5(models, tmp_path):
    path = tmp_path / "model.h5"
    path.write_text("this is not HDF5\n")
    user_error(run_ktdiff("compare", path, SEED_PORT), "not an HDF5 file", "re-save")


def test_h5_truncated_copy_fails_in_the_keras_worker(models, tmp_path):
    path = tmp_path / "truncated.h5"
    path.write_bytes((models / "seed.h5").read_bytes()[:100_000])
    user_error(run_ktdiff("compare", path, FAITHFUL), "Keras could not load", str(path), "complete")


# --------------------------------------------------------------------------- the spec (no framework import)

@pytest.mark.parametrize("spec", ["fixtures/seed_torch.py", "fixtures/seed_torch.py:", ":Net",
                                  "fixtures/seed_torch.py:Net-2"])
def test_bad_spec(models, spec):
    user_error(run_ktdiff("compare", models / "mlp.keras", spec), "bad PyTorch module spec", repr(spec),
               "package.module:Name")


def test_spec_file_missing(models):
    user_error(run_ktdiff("compare", models / "mlp.keras", "fixtures/no_such_port.py:Net"),
               "PyTorch module file not found", "fixtures/no_such_port.py")


# --------------------------------------------------------------------------- arguments (no framework import)

@pytest.mark.parametrize("value, needle", [("{num_classes: 10", "not valid JSON"), ("[1, 2]", "JSON object"),
                                           ("10", "JSON object")])
def test_torch_kwargs_not_a_json_object(models, value, needle):
    user_error(run_ktdiff("compare", models / "mlp.keras", f"{BAD}:NeedsArgs", "--torch-kwargs", value),
               "--torch-kwargs", needle)


@pytest.mark.parametrize("value", ["1,x,20", "1,0,20", "a,b", ",,", "1;20", "1,-3"])
def test_input_shape_malformed(models, value):
    user_error(run_ktdiff("compare", models / "mlp.keras", f"{BAD}:Small", "--input-shape", value),
               "bad --input-shape", repr(value), "--input-shape 1,3,224,224")


def test_torch_weights_missing(models, tmp_path):
    user_error(run_ktdiff("compare", models / "mlp.keras", f"{BAD}:Small", "--torch-weights",
                          tmp_path / "none.pt"), "weights file not found", "--torch-weights")


@pytest.mark.parametrize("args, needles", [
    (["--format", "bogus"], ["unknown --format 'bogus'", "table, json or markdown"]),
    (["--ignore", "ACT002,XYZ999"], ["unknown rule code or name XYZ999", "ktdiff rules"]),
    (["--input-dtype", "int8"], ["unknown --input-dtype 'int8'"]),
    (["--timeout", "0"], ["bad --timeout 0"]),
])
def test_bad_option_value(models, args, needles):
    user_error(run_ktdiff("compare", models / "mlp.keras", SEED_PORT, *args), *needles)


@pytest.mark.parametrize("args, needles", [
    (["compare"], ["Missing argument 'KERAS_MODEL'", "ktdiff compare --help"]),
    (["compare", "x.keras"], ["Missing argument 'TORCH_MODULE'"]),
    (["compare", "x.keras", "m:Net", "--no-such-option"], ["No such option: --no-such-option"]),
    (["compare", "x.keras", "m:Net", "--timeout", "soon"], ["Invalid value for '--timeout'"]),
    (["no-such-command"], ["No such command", "ktdiff --help"]),
])
def test_usage_mistakes_are_one_line(args, needles):
    user_error(run_ktdiff(*args), *needles)


def test_output_onto_the_keras_input_is_refused(models, tmp_path):
    keras_file = tmp_path / "model.keras"
    shutil.copyfile(models / "mlp.keras", keras_file)
    link = tmp_path / "same.keras"
    os.link(keras_file, link)
    before = digest(keras_file)
    for target in (keras_file, link):
        user_error(run_ktdiff("compare", keras_file, f"{BAD}:Small", "-o", target, "--format", "json"),
                   "is one of the input files", "another file")
    assert digest(keras_file) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "same.keras"]


def test_output_into_a_missing_folder(models, tmp_path):
    target = tmp_path / "no" / "such" / "report.txt"
    user_error(run_ktdiff("compare", models / "mlp.keras", f"{BAD}:Small", "-o", target),
               "does not exist", str(target.parent))
    assert not (tmp_path / "no").exists()


def test_output_onto_a_directory(models, tmp_path):
    user_error(run_ktdiff("compare", models / "mlp.keras", f"{BAD}:Small", "-o", tmp_path),
               "is a directory", "-o")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the PyTorch worker (mlp.keras: small)

@pytest.mark.parametrize("spec, needles", [
    (f"{BAD}:Nope", ["has no attribute 'Nope'", "Helper", "NeedsArgs", "Small", "WrongInFeatures"]),
    (f"{BAD}:NUMBER", ["NUMBER is an int", "not an nn.Module"]),
    (f"{BAD}:NotAModule", ["class NotAModule", "not an nn.Module subclass"]),
    (f"{BAD}:NeedsArgs", ["NeedsArgs() needs arguments: num_classes", "--torch-kwargs", '"num_classes"']),
    (f"{BAD}:RaisesInInit", ["RaisesInInit() raised", "ValueError", "broken on purpose", "modules.py:"]),
    (f"{BAD}:not_a_module", ["not_a_module() returned a dict", "not an nn.Module"]),
    (f"{BAD}:Helper", ["Helper", "has no forward()", "define forward"]),
    ("fixtures/bad/import_missing.py:Net", ["importing", "ModuleNotFoundError", "ktdiff_no_such_package",
                                            "import_missing.py:", "install"]),
    ("fixtures/bad/syntax_error.py:Net", ["importing", "SyntaxError", "syntax_error.py, line"]),
    ("fixtures.bad.import_missing:Net", ["importing fixtures.bad.import_missing failed", "ktdiff_no_such_package"]),
    ("fixtures.bad.no_such_module:Net", ["no Python module named 'fixtures.bad.no_such_module'", "PYTHONPATH"]),
])
def test_torch_spec_errors(models, spec, needles):
    line = user_error(run_ktdiff("compare", models / "mlp.keras", spec), *needles)
    assert "<frozen" not in line and "torch_loader.py" not in line  # a location in the user's code, or none


@pytest.mark.parametrize("kwargs, needles", [
    ('{"bogus": 1}', ["needs arguments: num_classes", "does not take bogus", '"num_classes"']),
    ('{"num_classes": 3, "bogus": 1}', ["does not take bogus", "num_classes, width"]),
])
def test_torch_kwargs_that_do_not_fit(models, kwargs, needles):
    user_error(run_ktdiff("compare", models / "mlp.keras", f"{BAD}:NeedsArgs", "--torch-kwargs", kwargs), *needles)


def test_forward_fails_on_the_inferred_input(models):
    line = user_error(run_ktdiff("compare", models / "seed.keras", f"{BAD}:WrongInFeatures"),
                      "forward pass", "(1, 64, 64, 1)", "derived from the Keras input", "--input-shape")
    assert "modules.py:" in line and "torch_loader.py" not in line


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory) -> Path:
    """Real torch.save files, written by a child process (torch stays out of the test process)."""
    folder = tmp_path_factory.mktemp("weights")
    script = (
        "import argparse, sys, torch\n"
        "d = sys.argv[1]\n"
        "torch.save({'fc.weight': torch.zeros(2, 4), 'fc.bias': torch.zeros(2)}, d + '/good.pt')\n"
        "torch.save({'head.weight': torch.zeros(2, 4)}, d + '/wrong_keys.pt')\n"
        "torch.save(argparse.Namespace(lr=0.1), d + '/pickled.pt')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (folder / "text.pt").write_text("not a torch file\n")
    return folder


@pytest.mark.parametrize("name, extra, needles", [
    ("text.pt", [], ["as a PyTorch file", "torch.save(model.state_dict()"]),
    ("pickled.pt", [], ["weights_only=True", "argparse.Namespace", "--unsafe-torch-load"]),
    ("pickled.pt", ["--unsafe-torch-load"], ["is not a state_dict"]),
    ("wrong_keys.pt", [], ["does not fit the module", "fc.weight", "head.weight"]),
])
def test_torch_weights_errors(models, weight_files, name, extra, needles):
    path = weight_files / name
    before = digest(path)
    line = user_error(run_ktdiff("compare", models / "mlp.keras", f"{BAD}:Small", "--input-shape", "1,4",
                                 "--torch-weights", path, *extra), str(path), *needles)
    assert "\x1b[" not in line
    if name == "text.pt":
        assert "--unsafe-torch-load" not in line  # never advise unpickling a file that is no pickle
    assert digest(path) == before


def test_keras_import_missing_module(models):
    user_error(run_ktdiff("compare", models / "mlp.keras", f"{BAD}:Small", "--keras-import", "no_such_keras_ext"),
               "--keras-import", "no_such_keras_ext", "PYTHONPATH")


def test_unregistered_custom_keras_class_is_named(models):
    # models/custom_layer.keras uses the Scale layer that fixtures/custom_layers.py registers
    model, spec = models / "custom_layer.keras", f"{FIXTURES / 'custom_port.py'}:Net"
    line = user_error(run_ktdiff("compare", model, spec),
                      f"{model} uses the custom Keras class Scale (registered as ktdiff_test>Scale) that "
                      "ktdiff cannot find — pass the module that defines it with --keras-import (a module name "
                      "or a .py file).")
    assert "Functional" not in line
    loaded = run_ktdiff("compare", model, spec, "--keras-import", FIXTURES / "custom_layers.py")
    assert loaded.returncode in (0, 1), loaded.stderr[-2000:]
    assert "scale (Scale)" in loaded.stdout and "out (Linear)" in loaded.stdout


# --------------------------------------------------------------------------- --debug

def test_debug_shows_details_the_default_hides(models, tmp_path):
    missing = tmp_path / "nope.keras"
    plain = run_ktdiff("compare", missing, SEED_PORT)
    debug = run_ktdiff("compare", missing, SEED_PORT, "--debug")
    line = user_error(plain, "not found")
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == line  # the same one line comes last


def test_debug_shows_the_worker_traceback(models):
    # the same case without --debug is test_torch_spec_errors[...RaisesInInit...]: one line, no traceback
    debug = run_ktdiff("compare", models / "mlp.keras", f"{BAD}:RaisesInInit", "--debug")
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr and 'raise ValueError("the constructor is broken on purpose")' in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("ktdiff: error: RaisesInInit() raised: ValueError")
    assert debug.stdout == ""


# --------------------------------------------------------------------------- the exit-code matrix

@pytest.mark.parametrize("keras_name, spec, code", [
    ("seed.keras", SEED_PORT, 1),
    ("seed.keras", FAITHFUL, 0),
    ("seed.h5", FAITHFUL, 0),
])
def test_exit_code_matrix(models, keras_name, spec, code):
    done = run_ktdiff("compare", models / keras_name, spec)
    assert done.returncode == code, (done.stdout[-3000:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr
    assert f"exit code {code}" in done.stdout
    assert_no_noise(done)


def test_ignoring_every_failing_code_gives_0(models):
    first = run_ktdiff("compare", models / "seed.keras", SEED_PORT, "--format", "json")
    assert first.returncode == 1, first.stderr[-3000:]
    report = json.loads(first.stdout)
    failing = sorted({f["code"] for f in report["findings"]
                      if f["category"] in ("behaviour", "unexplained") and not f["suppressed"]})
    assert failing
    done = run_ktdiff("compare", models / "seed.keras", SEED_PORT, "--format", "json", "--ignore", ",".join(failing))
    assert done.returncode == 0, done.stdout[-3000:]
    again = json.loads(done.stdout)
    assert again["exit_code"] == 0
    assert {f["code"] for f in again["findings"] if f["suppressed"]} >= set(failing)
    assert_no_noise(done)


def test_a_bad_input_gives_2_even_with_a_good_port(models, tmp_path):
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    user_error(run_ktdiff("compare", bad, FAITHFUL))


def test_report_to_a_file_leaves_the_inputs_alone(models, tmp_path):
    keras_file = tmp_path / "seed.keras"
    shutil.copyfile(models / "seed.keras", keras_file)
    before = digest(keras_file)
    report = tmp_path / "report.json"
    done = run_ktdiff("compare", keras_file, FAITHFUL, "--format", "json", "-o", report)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == ""
    assert json.loads(report.read_text())["exit_code"] == 0
    assert digest(keras_file) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "seed.keras"]  # no temporary left over
    assert_no_noise(done)


# --------------------------------------------------------------------------- --help

def test_help_exits_0():
    done = run_ktdiff("--help")
    assert done.returncode == 0, done.stderr
    assert "compare" in done.stdout and done.stderr == ""
    done = run_ktdiff("compare", "--help")
    assert done.returncode == 0, done.stderr
    assert "--torch-weights" in done.stdout


def test_help_imports_neither_framework():
    script = (
        "import sys\n"
        "from ktdiff.cli.main import app\n"
        "for args in (['--help'], ['compare', '--help']):\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), exc.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'torch', 'keras'))\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=_env(),
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout[-500:]
