"""The faults of issue 7 that would hurt in CI: exit codes that lie, processes and temporary folders left
behind, -o surprises, JSON with nothing in it, user mistakes blamed on ktdiff or the install.

Real frameworks, real files, ktdiff run as a user runs it (a subprocess). The ports that exit, crash or
start processes of their own are in fixtures/bad/process_faults.py. Each run that starts workers gets a
TMPDIR of its own: ktdiff's workspace (ktdiff-*) is made there, and every worker and every process a
port starts carries that path on its command line, so /proc tells whether any survived.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT, _env, run_ktdiff

MLP = "fixtures/models/mlp.keras"
SEED = "fixtures/models/seed.keras"
FAULTS = "fixtures/bad/process_faults.py"
INTERNAL = "ktdiff: error: internal error: RuntimeError: the aligner broke on purpose — please report it with " \
           "the output of --debug."


def error_line(done, code: int = 2) -> str:
    """Exit `code`, no traceback, exactly one line on stderr; that line."""
    assert done.returncode == code, (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def survivors(marker: str) -> list[str]:
    """Live processes (not zombies) whose command line holds marker: ktdiff's workers and the ports' children."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if marker in cmdline and state not in ("Z", "X") and int(pid) != os.getpid():
            found.append(f"{pid} {state} {cmdline.strip()}")
    return found


def parent_of(pid: str) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def wait_until(check, what: str, limit: float = 120.0):
    """Poll until check() is truthy (a deadline against a hang, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def assert_clean(tmp: Path) -> None:
    """No worker and no child of a port is left, and no ktdiff-* workspace: SIGKILL takes a moment to land,
    so wait for the processes to go (they never do if ktdiff did not kill their group)."""
    gone = wait_until(lambda: not survivors(str(tmp)) or None, "every process gone", limit=20)
    assert gone, survivors(str(tmp))
    assert not list(tmp.glob("ktdiff-*")), list(tmp.iterdir())


@pytest.fixture
def tmp(tmp_path) -> Path:
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    return folder


def ktdiff_in(tmp: Path, *args, **kw) -> subprocess.CompletedProcess:
    return run_ktdiff(*args, TMPDIR=str(tmp), **kw)


# --------------------------------------------------------------------------- internal errors: exit 2, one line

def run_with_broken_engine(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    """ktdiff's own main, with the aligner (a pure stage in this process) made to raise: an internal error
    after both real workers have loaded their real models."""
    script = ("import sys\n"
              "import ktdiff.comparers.pipeline as pipeline\n"
              "def broken(*a, **k):\n"
              "    raise RuntimeError('the aligner broke on purpose')\n"
              "pipeline.align = broken\n"
              "from ktdiff.cli.main import main\n"
              "sys.argv = ['ktdiff'] + sys.argv[1:]\n"
              "main()\n")
    return subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True,
                          env=_env(TMPDIR=str(tmp)), timeout=300)


def test_an_internal_error_is_exit_2_and_one_line(models, tmp):
    done = run_with_broken_engine(tmp, "compare", SEED, "fixtures/faithful_torch.py:FaithfulNet")
    assert error_line(done) == INTERNAL
    assert done.stdout == ""
    assert_clean(tmp)


def test_an_internal_error_with_debug_shows_the_traceback_then_the_line(models, tmp):
    done = run_with_broken_engine(tmp, "compare", SEED, "fixtures/faithful_torch.py:FaithfulNet", "--debug")
    assert done.returncode == 2
    assert "Traceback" in done.stderr and "in broken" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == INTERNAL


def test_an_internal_error_with_format_json_prints_the_error_document(models, tmp):
    done = run_with_broken_engine(tmp, "compare", SEED, "fixtures/faithful_torch.py:FaithfulNet", "-f", "json")
    assert error_line(done) == INTERNAL
    doc = json.loads(done.stdout)
    assert doc["exit_code"] == 2 and doc["schema_version"]
    assert doc["error"]["message"] == "internal error: RuntimeError: the aligner broke on purpose"
    assert doc["error"]["hint"] == "please report it with the output of --debug."


def test_exit_code_is_decided_by_one_function():
    from types import SimpleNamespace

    from ktdiff.cli.main import DONE, Interrupted, UsageError, exit_code
    from ktdiff.comparers.errors import KtdiffError

    assert exit_code(SimpleNamespace(verdict="different")) == 1
    assert exit_code(SimpleNamespace(verdict="equivalent")) == 0
    assert exit_code(SimpleNamespace(verdict="bookkeeping")) == 0
    assert exit_code(DONE) == 0
    assert exit_code(RuntimeError("a bug")) == 2          # never 1: CI must not read a crash as "different"
    assert exit_code(KtdiffError("bad input")) == 2
    assert exit_code(UsageError("bad option")) == 2
    assert exit_code(Interrupted(signal.SIGTERM)) == 2
    assert exit_code(Interrupted(signal.SIGHUP)) == 2
    assert exit_code(Interrupted(signal.SIGINT)) == 130
    assert exit_code(KeyboardInterrupt()) == 130


# --------------------------------------------------------------------------- no process and no folder left behind

def start_hanging(tmp: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ktdiff.cli.main", "compare", MLP, f"{FAULTS}:SpawnsAndHangs",
                             *extra], cwd=ROOT, env=_env(TMPDIR=str(tmp)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_forward(proc: subprocess.Popen, tmp: Path) -> None:
    """Until the port's forward() runs: its child process exists, and the torch worker is ktdiff's child."""
    wait_until(lambda: [p for p in survivors(str(tmp)) if "ktdiff-port-child" in p] or proc.poll() is not None,
               "the port's forward() started its child")
    assert proc.poll() is None, proc.communicate()
    workers = [p for p in survivors(str(tmp)) if "ktdiff.comparers.workers" in p]
    assert any(parent_of(p.split()[0]) == proc.pid for p in workers), workers


@pytest.mark.parametrize("sig, code, line", [
    (signal.SIGTERM, 2, "ktdiff: error: stopped by SIGTERM; the workers were ended and the temporary files removed "
                        "— nothing was compared: run it again to get a report."),
    (signal.SIGHUP, 2, "ktdiff: error: stopped by SIGHUP; the workers were ended and the temporary files removed "
                       "— nothing was compared: run it again to get a report."),
    (signal.SIGINT, 130, "ktdiff: interrupted"),
])
def test_a_signal_ends_every_process_and_removes_the_workspace(models, tmp, sig, code, line):
    proc = start_hanging(tmp)
    try:
        wait_for_forward(proc, tmp)
        assert list(tmp.glob("ktdiff-*"))  # the workspace exists while the workers run
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert error_line(done, code) == line
    assert_clean(tmp)


def test_sigterm_with_format_json_still_prints_a_json_document(models, tmp):
    proc = start_hanging(tmp, "--format", "json")
    try:
        wait_for_forward(proc, tmp)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, err
    doc = json.loads(out)
    assert doc["exit_code"] == 2 and "SIGTERM" in doc["error"]["message"]
    assert_clean(tmp)


def test_when_ktdiff_is_killed_outright_its_workers_end_their_own_group(models, tmp):
    proc = start_hanging(tmp)
    try:
        wait_for_forward(proc, tmp)
        proc.kill()  # SIGKILL: no handler runs in ktdiff; the workers notice their parent is gone
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wait_until(lambda: not survivors(str(tmp)) or None, "the orphaned workers and the port's child end", limit=30)
    assert not survivors(str(tmp))


def test_the_timeout_ends_the_port_s_own_processes_too(models, tmp):
    line = error_line(ktdiff_in(tmp, "compare", MLP, f"{FAULTS}:SpawnsAndHangs", "--timeout", "10", timeout=200))
    assert "took longer than 10 s" in line and "--timeout" in line
    assert_clean(tmp)


@pytest.mark.parametrize("port, code", [("SpawnsAndReturns", 1), ("SpawnsAndRaises", 2)])
def test_normal_and_error_exits_leave_nothing_behind(models, tmp, port, code):
    done = ktdiff_in(tmp, "compare", MLP, f"{FAULTS}:{port}", "--format", "json")
    assert done.returncode == code, done.stderr
    if code == 2:
        assert "forward is broken on purpose" in error_line(done)
    assert_clean(tmp)


# --------------------------------------------------------------------------- the port ends or crashes its worker

@pytest.mark.parametrize("port, needles", [
    ("ExitsInForward", ["exited with code 3", "while running the forward() of", "os._exit"]),
    ("SystemExitInForward", ["SystemExit(4)", "while running the forward() of", "must not exit the process"]),
    ("SegfaultInForward", ["killed by SIGSEGV", "while running the forward() of", "crash in native code"]),
])
def test_a_forward_that_exits_or_crashes_is_blamed_on_the_port(models, tmp, port, needles):
    line = error_line(ktdiff_in(tmp, "compare", MLP, f"{FAULTS}:{port}"))
    assert line.startswith("ktdiff: error: ") and " — " in line
    for needle in needles + [f"{FAULTS}:{port}"]:
        assert needle in line, (needle, line)
    assert "broken install" not in line and "internal error" not in line
    assert_clean(tmp)


# --------------------------------------------------------------------------- --input-shape beyond reason

@pytest.mark.parametrize("value, count", [("99999999999999999999,3,32,32", "307,199,999,999,999,999,996,928"),
                                          ("1,3,100000,100000", "30,000,000,000")])
def test_an_absurd_input_shape_is_one_clear_line(models, tmp, value, count):
    line = error_line(ktdiff_in(tmp, "compare", MLP, f"{FAULTS}:SpawnsAndReturns", "--input-shape", value))
    assert line == (f"ktdiff: error: --input-shape {value!r} has {count} elements, above ktdiff's limit of "
                    "268,435,456 per input — a summary needs one example: use batch 1 and the model's real input "
                    "size, e.g. --input-shape 1,3,224,224.")
    assert not list(tmp.iterdir())  # refused before any worker started


# --------------------------------------------------------------------------- --ignore by rule name

def test_ignore_takes_rule_names_like_explain(models):
    by_name = run_ktdiff("compare", SEED, "fixtures/seed_torch.py:Net", "-f", "json", "--ignore", "bn-momentum")
    assert by_name.returncode == 1, by_name.stderr
    suppressed = {f["code"] for f in json.loads(by_name.stdout)["findings"] if f["suppressed"]}
    assert suppressed == {"NRM002"}  # as --ignore NRM002 (tests/test_cli_errors.py) suppresses it
    failing = sorted({f["code"] for f in json.loads(by_name.stdout)["findings"]
                      if f["category"] in ("behaviour", "unexplained") and not f["suppressed"]})
    names = {"ACT002": "activation-missing", "ACT005": "head-activation-missing", "NRM003": "norm-epsilon"}
    assert failing == sorted(names)
    mixed = run_ktdiff("compare", SEED, "fixtures/seed_torch.py:Net", "--ignore", "bn-momentum,ACT002",
                       "--ignore", "head-activation-missing,NRM003")
    assert mixed.returncode == 0, mixed.stdout[-2000:]


@pytest.mark.parametrize("value, unknown", [("bn-momentun", "bn-momentun"), ("NRM002,XYZ999", "XYZ999")])
def test_unknown_rule_names_and_codes_stay_an_error(models, value, unknown):
    line = error_line(run_ktdiff("compare", SEED, "fixtures/seed_torch.py:Net", "--ignore", value))
    assert f"unknown rule code or name {unknown} in --ignore" in line and "ktdiff rules" in line


# --------------------------------------------------------------------------- --format json on exit 2

def test_format_json_prints_the_error_document_on_a_user_mistake(models, tmp_path):
    missing = tmp_path / "nope.keras"
    done = run_ktdiff("compare", missing, "fixtures/seed_torch.py:Net", "--format", "json")
    line = error_line(done)
    doc = json.loads(done.stdout)
    assert set(doc) == {"schema_version", "error", "exit_code"} and doc["exit_code"] == 2
    assert line == f"ktdiff: error: {doc['error']['message']} — {doc['error']['hint']}"
    assert str(missing) in doc["error"]["message"] and doc["error"]["hint"]


def test_format_json_prints_the_error_document_on_a_usage_mistake(models):
    done = run_ktdiff("compare", SEED, "fixtures/seed_torch.py:Net", "--format", "json", "--timeout", "soon")
    assert "Invalid value for '--timeout'" in error_line(done)
    assert json.loads(done.stdout)["exit_code"] == 2


def test_without_format_json_an_error_prints_nothing_on_stdout(models, tmp_path):
    done = run_ktdiff("compare", tmp_path / "nope.keras", "fixtures/seed_torch.py:Net")
    error_line(done)
    assert done.stdout == ""


# --------------------------------------------------------------------------- -o FILE

def run_with_umask(umask: int, *args, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ktdiff.cli.main", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=_env(), timeout=300, preexec_fn=lambda: os.umask(umask))


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_output_file_gets_0666_minus_the_umask(models, tmp_path, umask, mode):
    out = tmp_path / "report.json"
    done = run_with_umask(umask, "compare", SEED, "fixtures/faithful_torch.py:FaithfulNet", "-f", "json", "-o", out)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert json.loads(out.read_text())["exit_code"] == 0


def test_output_over_an_existing_file_keeps_its_mode(models, tmp_path):
    out = tmp_path / "report.json"
    out.write_text("old\n")
    out.chmod(0o604)
    done = run_ktdiff("compare", SEED, "fixtures/faithful_torch.py:FaithfulNet", "-f", "json", "-o", out)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o604 and out.read_text() != "old\n"


def test_output_dash_is_stdout(models, tmp_path):
    done = run_ktdiff("compare", ROOT / SEED, ROOT / "fixtures/faithful_torch.py:FaithfulNet", "-f", "json", "-o", "-",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["exit_code"] == 0
    assert list(tmp_path.iterdir()) == []  # no file named "-"


def test_output_onto_a_symlink_is_refused_and_both_stay(models, tmp_path):
    target = tmp_path / "real.json"
    target.write_text("keep me\n")
    link = tmp_path / "report.json"
    link.symlink_to(target)
    line = error_line(run_ktdiff("compare", SEED, f"{FAULTS}:ExitsInForward", "-f", "json", "-o", link))
    assert line == (f"ktdiff: error: -o {link} is a symbolic link (to {target}); ktdiff does not write through "
                    "links — pass the file it points to as -o, or remove the link.")
    assert link.is_symlink() and target.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.json", "report.json"]


def test_an_unwritable_output_folder_is_reported_before_the_comparison(models, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere permissions allow nothing: sysfs takes no new files, even from root
        folder = Path("/sys")
    # the port would end its worker: an -o error, not the port's, shows the check ran first
    line = error_line(run_ktdiff("compare", SEED, f"{FAULTS}:ExitsInForward", "-o", folder / "report.txt"))
    assert line.startswith(f"ktdiff: error: cannot write {folder / 'report.txt'}: folder {folder} does not take "
                           "new files (") and line.endswith("— pick a writable folder with -o.")
    assert not (folder / "report.txt").exists()


# --------------------------------------------------------------------------- --keras-import PATH

@pytest.mark.parametrize("how", ["./custom_layers.py", "custom_layers.py", "absolute"])
def test_keras_import_takes_a_file_path(models, how):
    # fixtures/custom_layers.py registers the Scale layer that models/custom_layer.keras uses
    path = str(FIXTURES / "custom_layers.py") if how == "absolute" else how
    done = run_ktdiff("compare", "models/custom_layer.keras", "custom_port.py:Net", "--keras-import", path,
                      "-f", "json", cwd=FIXTURES)
    assert done.returncode in (0, 1), done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert any(r["keras"] and r["keras"]["type"] == "Scale" for r in rows), rows


def test_keras_import_of_a_missing_file_says_so(models):
    line = error_line(run_ktdiff("compare", "models/custom_layer.keras", "custom_port.py:Net", "--keras-import",
                                 "./no_such_file.py", cwd=FIXTURES))
    assert "--keras-import: file not found: ./no_such_file.py" in line and " — check the path" in line
