"""ktdiff's command line: arguments in, exit code out. The engine lives in ktdiff.comparers.

Exit codes: 0 equivalent (bookkeeping and conventions only), 1 a behavioural or
unexplained difference, 2 ktdiff could not do its job (bad input, load error).
Nothing here imports TensorFlow or PyTorch: the loaders run in worker processes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import tempfile
import traceback
from typing import List, Optional

import typer

app = typer.Typer(
    name="ktdiff",
    help="Compare a Keras model with a PyTorch model, row by row, and explain every difference.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_ERROR = 2


class UsageError(Exception):
    """A bad argument value: same treatment as a KtdiffError."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint, self.detail = message, hint, None


class Interrupted(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived: unwinds the stack (every `finally` stops its workers and removes
    its workspace), then the CLI exits with exit_code(...)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


DONE = "done"  # the outcome of a command that did its job and has no verdict (port wrote its file, rules, --help)


def exit_code(outcome) -> int:
    """The exit code of a run, decided from its outcome alone (the one place that decides it).

    outcome: a comparison Result (0 equivalent, 1 different, by the verdict policy's EXIT_CODES),
    DONE (a command without a verdict did its job: 0), or the exception that ended the run: Interrupted by
    SIGINT or a KeyboardInterrupt 130; any other (a user mistake, a load error, SIGTERM/SIGHUP, an
    internal error) 2.
    """
    if isinstance(outcome, KeyboardInterrupt) or (isinstance(outcome, Interrupted)
                                                  and outcome.signum == signal.SIGINT):
        return 130
    if isinstance(outcome, BaseException):
        return EXIT_ERROR
    if isinstance(outcome, str) and outcome == DONE:
        return 0
    from ktdiff.comparers.explain import EXIT_CODES

    return EXIT_CODES[outcome.verdict]


def describe(exc: BaseException) -> tuple[str, str | None, str]:
    """(what is wrong, what to do, kind) for an exception that ended the run; kind: error, interrupted, internal."""
    from ktdiff.comparers.errors import KtdiffError

    if isinstance(exc, (KtdiffError, UsageError)):
        return exc.message, exc.hint, "error"
    if isinstance(exc, KeyboardInterrupt) or (isinstance(exc, Interrupted) and exc.signum == signal.SIGINT):
        return "interrupted", None, "interrupted"
    if isinstance(exc, Interrupted):
        return (f"stopped by {exc.name}; the workers were ended and the temporary files removed",
                "nothing was compared: run it again to get a report.", "interrupted")
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    return (f"internal error: {type(exc).__name__}: {text}".rstrip(": "),
            "please report it with the output of --debug.", "internal")


def finish(outcome, debug: bool = False, json_errors: bool = False) -> None:
    """End the command: for an exception, one line on stderr (the traceback before it with --debug) and, for
    --format json to stdout, a JSON document with the error; then exit with exit_code(outcome)."""
    code = exit_code(outcome)
    if isinstance(outcome, BaseException):
        message, hint, kind = describe(outcome)
        if kind == "interrupted" and hint is None:
            line = "ktdiff: interrupted"
        else:
            line = f"ktdiff: error: {message}" + (f" — {hint}" if hint else "")
        if debug and kind != "interrupted":
            detail = getattr(outcome, "detail", None) or "".join(
                traceback.format_exception(type(outcome), outcome, outcome.__traceback__))
            sys.stderr.write(detail.rstrip() + "\n")
        try:
            if json_errors:
                sys.stdout.write(json.dumps({"schema_version": _schema_version(), "error": {
                    "message": message, "hint": hint, "kind": kind}, "exit_code": code}, indent=2) + "\n")
                sys.stdout.flush()
        except (OSError, ValueError):  # stdout is gone (a closed pipe): the line on stderr still says it
            pass
        try:
            sys.stderr.write(line + "\n")
        except (OSError, ValueError):
            pass
    raise typer.Exit(code)


def _schema_version() -> str:
    try:
        from ktdiff.comparers.report import SCHEMA_VERSION

        return SCHEMA_VERSION
    except Exception:  # noqa: BLE001 - the error document must not fail in its turn
        return "unknown"


def fail(exc, debug: bool, json_errors: bool = False) -> None:
    """One clear line on stderr (what is wrong, what to do), exit code 2; details with --debug only."""
    finish(exc, debug, json_errors)


_STOPPING = [False]


def _on_signal(signum, frame) -> None:
    """SIGINT, SIGTERM, SIGHUP: the first one unwinds the run (raises Interrupted); later ones are ignored so
    the clean-up (stopping the worker process groups, removing the workspace) runs to its end."""
    if _STOPPING[0]:
        return
    _STOPPING[0] = True
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def _cleanup() -> None:
    """Every exit path ends here: every worker's process group killed, every workspace removed."""
    workers = sys.modules.get("ktdiff.comparers.workers")
    if workers is not None:
        workers.cleanup_all()


def _parse_shapes(values: list[str]) -> list[list[int]] | None:
    if not values:
        return None
    shapes = []
    for value in values:
        parts = re.split(r"[,x]", value.replace(" ", "").strip("()[]").rstrip(","))  # 1,3,64,64 or 1x3x64x64
        try:
            shape = [int(x) for x in parts]
        except ValueError:
            shape = []
        if not shape or any(d <= 0 for d in shape):
            raise UsageError(f"bad --input-shape {value!r}",
                             "give the full PyTorch input shape with the batch, e.g. --input-shape 1,3,224,224.")
        from ktdiff.comparers.errors import check_input_size

        check_input_size(shape, f"--input-shape {value!r}")
        shapes.append(shape)
    return shapes


def _parse_kwargs(value: str | None) -> dict:
    if not value:
        return {}
    text = value
    if value.startswith("@"):
        try:
            with open(value[1:]) as fh:
                text = fh.read()
        except OSError as exc:
            raise UsageError(f"cannot read --torch-kwargs file {value[1:]}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--torch-kwargs is not valid JSON ({exc.msg} at column {exc.colno})",
                         "quote it for the shell, e.g. --torch-kwargs '{\"num_classes\": 10}'.") from None
    if not isinstance(data, dict):
        raise UsageError("--torch-kwargs must be a JSON object", "e.g. --torch-kwargs '{\"num_classes\": 10}'.")
    return data


def _codes(values: list[str]) -> list[str]:
    """--ignore values: rule codes (NRM002) or names (bn-momentum), as `ktdiff explain` takes them; the codes."""
    from ktdiff.comparers.rules import get_rule

    codes, unknown = [], []
    for item in (c.strip() for v in values for c in v.split(",")):
        if item:
            rule = get_rule(item)
            if rule is None:
                unknown.append(item)
            elif rule.code not in codes:
                codes.append(rule.code)
    if unknown:
        raise UsageError(f"unknown rule code or name {', '.join(unknown)} in --ignore",
                         "`ktdiff rules` lists the codes and names.")
    return codes


def _check_output(path: str, inputs: list[str]) -> None:
    """-o PATH, checked before anything runs: not an input, not a folder, not a symbolic link, and its folder
    exists and takes a new file (a real probe: permissions, a read-only file system)."""
    real = os.path.realpath(path)
    for item in inputs:
        if item and os.path.exists(item) and (os.path.realpath(item) == real or
                                              (os.path.exists(path) and os.path.samefile(item, path))):
            raise UsageError(f"-o {path} is one of the input files", "write the report to another file.")
    if os.path.islink(path):
        raise UsageError(f"-o {path} is a symbolic link (to {os.readlink(path)}); ktdiff does not write through "
                         "links", "pass the file it points to as -o, or remove the link.")
    if os.path.isdir(path):
        raise UsageError(f"cannot write {path}: it is a directory", "give a file name, e.g. -o report.txt.")
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise UsageError(f"cannot write {path}: folder {folder} does not exist", "create it or pick another path.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".ktdiff-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: folder {folder} does not take new files ({exc.strerror or exc})",
                         "pick a writable folder with -o.") from None


def _check_verify_options(verify: bool, verify_input: str | None, atol: float, rtol: float, plot: str | None,
                          inputs: list[str]) -> None:
    if verify_input and not verify:
        raise UsageError("--verify-input needs --verify", "add --verify.")
    if verify_input and not os.path.isfile(verify_input):
        raise UsageError(f"--verify-input file not found: {verify_input}", "pass an .npz written by numpy.savez.")
    if not (atol >= 0 and rtol >= 0):
        raise UsageError("--atol and --rtol must be 0 or more", "e.g. --rtol 1e-4 --atol 1e-6.")
    if plot:
        if not plot.lower().endswith((".svg", ".png", ".pdf")):
            raise UsageError(f"--verify-plot {plot}: unknown image type", "name an .svg, .png or .pdf file.")
        _check_output(plot, inputs)
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise UsageError("--verify-plot needs matplotlib, which is not installed",
                             "pip install 'ktdiff[plot]' (or matplotlib).")


def write_atomic(path: str, text: str) -> None:
    """Write the whole report or nothing (a temporary file renamed over PATH); an existing file keeps its
    mode, a new one gets 0666 minus the umask, as any program's output."""
    from ktdiff.comparers.files import write_atomically

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    write_atomically(path, write)


def _plain_terminal() -> bool:
    return bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty() or os.environ.get("TERM") == "dumb"


def _version_callback(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"ktdiff {version('ktdiff')}")
        except PackageNotFoundError:
            typer.echo("ktdiff (not installed)")
        raise typer.Exit(exit_code(DONE))


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Compare a Keras model file with a PyTorch module and explain every difference."""


@app.command()
def compare(
    keras_model: str = typer.Argument(..., metavar="KERAS_MODEL", help="Keras model file: .keras or legacy .h5/.hdf5."),
    torch_module: str = typer.Argument(..., metavar="TORCH_MODULE",
                                       help="package.module:Name or path/to/file.py:Name (an nn.Module subclass, "
                                            "a factory function, or a module instance)."),
    torch_kwargs: Optional[str] = typer.Option(None, "--torch-kwargs", metavar="JSON",
                                               help="Constructor arguments as a JSON object (or @file.json)."),
    torch_weights: Optional[str] = typer.Option(None, "--torch-weights", metavar="FILE",
                                                help="A state_dict to load (torch.load with weights_only=True)."),
    input_shape: List[str] = typer.Option([], "--input-shape", metavar="N,C,H,W",
                                          help="PyTorch input shape with the batch (repeat for several inputs). "
                                               "Default: derived from the Keras input."),
    input_dtype: Optional[str] = typer.Option(None, "--input-dtype", metavar="DTYPE",
                                              help="float32 (default), float16, bfloat16, float64, int64 or bool."),
    fmt: str = typer.Option("table", "--format", "-f", metavar="FORMAT", help="table, json or markdown."),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE",
                                         help="Write the report to FILE instead of stdout (- is stdout). Written "
                                              "atomically, mode 0666 minus the umask (an existing file keeps its "
                                              "mode); a symbolic link at FILE is refused, never written through."),
    ignore: List[str] = typer.Option([], "--ignore", metavar="CODES",
                                     help="Suppress rules by code (NRM002) or name (bn-momentum), comma-separated "
                                          "or repeated; they are still shown."),
    keras_import: List[str] = typer.Option([], "--keras-import", metavar="MODULE|FILE.py",
                                           help="Import MODULE (or the file path/to/file.py) before loading "
                                                "(registers custom Keras objects)."),
    unsafe_keras_load: bool = typer.Option(False, "--unsafe-keras-load",
                                           help="Load with Keras safe_mode off (runs code stored in the file). "
                                                "Only for files you trust."),
    unsafe_torch_load: bool = typer.Option(False, "--unsafe-torch-load",
                                           help="torch.load with weights_only=False (unpickles arbitrary objects). "
                                                "Only for files you trust."),
    timeout: float = typer.Option(600.0, "--timeout", metavar="SECONDS", help="Limit for loading each model."),
    verify: bool = typer.Option(False, "--verify",
                                help="Port the Keras weights (or use --torch-weights), run both models on one input "
                                     "and compare every row's outputs. --verify=strict: exit 2 when a layer cannot "
                                     "be ported or compared."),
    verify_strict: bool = typer.Option(False, "--verify-strict", hidden=True),
    verify_input: Optional[str] = typer.Option(None, "--verify-input", metavar="FILE.npz",
                                               help="Inputs for --verify, in the Keras layout, named like the Keras "
                                                    "inputs. Default: seeded random values."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --verify input."),
    atol: float = typer.Option(1e-6, "--atol", metavar="X", help="Absolute tolerance of --verify per row."),
    rtol: float = typer.Option(1e-4, "--rtol", metavar="X",
                               help="Tolerance of --verify relative to each row's output scale (max |Keras|)."),
    verify_plot: Optional[str] = typer.Option(None, "--verify-plot", metavar="FILE.svg|png",
                                              help="Draw the --verify error against depth (needs matplotlib)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and the loaders' logs on errors."),
) -> None:
    """Compare KERAS_MODEL with TORCH_MODULE: a side-by-side table, every difference explained.

    Exit code 0: equivalent (bookkeeping and conventions only); 1: a behavioural or unexplained difference; 2: ktdiff could not compare (bad input, load error).
    """
    if output == "-":  # -o - is stdout
        output = None
    json_errors = fmt == "json" and not output  # an error is a JSON document too where the report would go
    _guarded(lambda: _compare(keras_model, torch_module, torch_kwargs, torch_weights, input_shape, input_dtype, fmt,
                              output, ignore, keras_import, unsafe_keras_load, unsafe_torch_load, timeout, verify,
                              verify_strict, verify_input, seed, atol, rtol, verify_plot), debug, json_errors)


def _guarded(run, debug: bool, json_errors: bool = False) -> None:
    """Run a command's work; whatever ends it (a result, a user mistake, our own bug, a signal) goes
    through finish(), and the workers and temporary files are cleaned up on every path."""
    outcome = None
    try:
        outcome = run()
    except typer.Exit:
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure, ours included, is exit 2 (130 for SIGINT)
        outcome = exc
    finally:
        _cleanup()
    finish(outcome, debug, json_errors)


def _compare(keras_model, torch_module, torch_kwargs, torch_weights, input_shape, input_dtype, fmt, output, ignore,
             keras_import, unsafe_keras_load, unsafe_torch_load, timeout, verify, verify_strict, verify_input, seed,
             atol, rtol, verify_plot):
    """The comparison and its report; returns the Result (the caller turns it into the exit code)."""
    if fmt not in ("table", "json", "markdown", "md"):
        raise UsageError(f"unknown --format {fmt!r}", "use table, json or markdown.")
    if not timeout > 0:
        raise UsageError(f"bad --timeout {timeout:g}", "give a number of seconds above 0, e.g. --timeout 600.")
    if input_dtype and input_dtype not in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "bool"):
        raise UsageError(f"unknown --input-dtype {input_dtype!r}", "use float32, float16, bfloat16, float64, "
                                                                   "int64 or bool.")
    torch_file = torch_module.rpartition(":")[0]
    inputs = [keras_model, torch_file, torch_weights or "", verify_input or ""]
    if output:
        _check_output(output, inputs)
    _check_verify_options(verify or verify_strict or bool(verify_plot), verify_input, atol, rtol, verify_plot,
                          inputs)
    from ktdiff.comparers.pipeline import CompareOptions, compare as run_compare

    options = CompareOptions(
        keras_path=keras_model, torch_spec=torch_module, torch_kwargs=_parse_kwargs(torch_kwargs),
        torch_weights=torch_weights, input_shapes=_parse_shapes(input_shape), input_dtype=input_dtype,
        unsafe_keras_load=unsafe_keras_load, unsafe_torch_load=unsafe_torch_load,
        keras_imports=keras_import, ignore=_codes(ignore), timeout=timeout,
        verify="strict" if verify_strict else "on" if (verify or verify_plot) else None,
        verify_input=verify_input, seed=seed, atol=atol, rtol=rtol,
    )
    result = run_compare(options)
    if verify_plot:
        from ktdiff.comparers.plot import plot_verification

        plot_verification(result, verify_plot)

    from ktdiff.comparers import report

    if fmt == "json":
        text = report.render_json(result)
    elif fmt in ("markdown", "md"):
        text = report.render_markdown(result)
    elif output or _plain_terminal():
        text = report.render_table(result, plain=True)
    else:
        report.render_table(result, plain=False)
        text = None
    if output:
        try:
            write_atomic(output, text)
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}", "pick another path with -o.") from None
        sys.stderr.write(f"ktdiff: wrote {output}; {report.verdict_line(result)}\n")
    elif text is not None:
        sys.stdout.write(text)
        sys.stdout.flush()
    return result


@app.command()
def port(
    keras_model: str = typer.Argument(..., metavar="KERAS_MODEL", help="Keras model file: .keras or legacy .h5/.hdf5."),
    torch_module: str = typer.Argument(..., metavar="TORCH_MODULE",
                                       help="package.module:Name or path/to/file.py:Name."),
    output: str = typer.Option(..., "--output", "-o", metavar="FILE.pt",
                               help="Where to write the ported state_dict (torch.save, atomically)."),
    torch_kwargs: Optional[str] = typer.Option(None, "--torch-kwargs", metavar="JSON",
                                               help="Constructor arguments as a JSON object (or @file.json)."),
    input_shape: List[str] = typer.Option([], "--input-shape", metavar="N,C,H,W",
                                          help="PyTorch input shape with the batch (repeat for several inputs)."),
    input_dtype: Optional[str] = typer.Option(None, "--input-dtype", metavar="DTYPE", help="As for compare."),
    partial: bool = typer.Option(False, "--partial",
                                 help="Write the file even when some PyTorch tensors get no Keras weights."),
    keras_import: List[str] = typer.Option([], "--keras-import", metavar="MODULE|FILE.py",
                                           help="Import MODULE (or the file path/to/file.py) before loading "
                                                "(registers custom Keras objects)."),
    unsafe_keras_load: bool = typer.Option(False, "--unsafe-keras-load",
                                           help="Load with Keras safe_mode off. Only for files you trust."),
    timeout: float = typer.Option(600.0, "--timeout", metavar="SECONDS", help="Limit for each step."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and the loaders' logs on errors."),
) -> None:
    """Port KERAS_MODEL's weights into TORCH_MODULE and write the state_dict.

    The file loads with load_state_dict(strict=True) and torch.load(weights_only=True). The ported module is run
    on a seeded input and compared with the Keras model, row by row; the last line says whether it agrees.
    Exit code 0: written; 2: not written (a layer cannot be ported, bad input).
    """
    def run():
        if input_dtype and input_dtype not in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "bool"):
            raise UsageError(f"unknown --input-dtype {input_dtype!r}", "use float32, float16, bfloat16, float64, "
                                                                       "int64 or bool.")
        if not output.lower().endswith((".pt", ".pth", ".bin")):
            raise UsageError(f"-o {output}: write the state_dict to a .pt or .pth file", "e.g. -o weights.pt.")
        _check_output(output, [keras_model, torch_module.rpartition(":")[0]])
        from ktdiff.comparers.pipeline import CompareOptions, port_weights

        options = CompareOptions(
            keras_path=keras_model, torch_spec=torch_module, torch_kwargs=_parse_kwargs(torch_kwargs),
            input_shapes=_parse_shapes(input_shape), input_dtype=input_dtype, unsafe_keras_load=unsafe_keras_load,
            keras_imports=keras_import, timeout=timeout, verify="on",
        )
        _, lines = port_weights(options, output, partial=partial)
        for line in lines:
            sys.stdout.write(line + "\n")
        return DONE

    _guarded(run, debug)


@app.command()
def rules(fmt: str = typer.Option("table", "--format", "-f", metavar="FORMAT", help="table or json.")) -> None:
    """List every rule in the catalogue: code, name, category, title."""
    from ktdiff.comparers import report
    from ktdiff.comparers.rules import all_rules

    if fmt == "json":
        sys.stdout.write(json.dumps({"schema_version": report.SCHEMA_VERSION,
                                     "rules": [r.to_dict() for r in all_rules()]}, indent=2) + "\n")
    elif fmt == "table":
        sys.stdout.write(report.render_rules_table())
    else:
        fail(UsageError(f"unknown --format {fmt!r}", "use table or json."), False)


@app.command()
def explain(code: str = typer.Argument(..., metavar="CODE", help="A rule code (NRM002) or name (bn-momentum).")) -> None:
    """Explain one rule: what it means, why it happens, how to fix it."""
    from ktdiff.comparers import report
    from ktdiff.comparers.rules import all_rules, get_rule

    if get_rule(code) is None:
        close = [r.code for r in all_rules() if r.code[:2] == code.upper()[:2]]
        fail(UsageError(f"unknown rule {code!r}", ("did you mean " + ", ".join(close) + "? " if close else "")
                        + "`ktdiff rules` lists them all."), False)
    sys.stdout.write(report.render_rule(code))


def _argv(args: list[str]) -> list[str]:
    """--verify=strict is spelled as a value; click options are flags or take one, so map it."""
    out = []
    for arg in args:
        if arg.startswith("--verify="):
            value = arg.partition("=")[2].lower()
            if value == "strict":
                arg = "--verify-strict"
            elif value in ("on", "true", "yes", "1"):
                arg = "--verify"
            else:
                raise UsageError(f"unknown --verify={value}", "use --verify or --verify=strict.")
        out.append(arg)
    return out


def _flags(args: list[str]) -> tuple[bool, bool]:
    """(--debug, JSON errors on stdout) read from the raw arguments, for a failure before a command runs."""
    debug = "--debug" in args
    fmt, output = None, None
    for i, arg in enumerate(args):
        nxt = args[i + 1] if i + 1 < len(args) else None
        if arg in ("--format", "-f"):
            fmt = nxt
        elif arg.startswith("--format="):
            fmt = arg.partition("=")[2]
        elif arg in ("--output", "-o"):
            output = nxt
        elif arg.startswith("--output="):
            output = arg.partition("=")[2]
    return debug, fmt == "json" and output in (None, "-") and bool(args) and args[0] == "compare"


def main() -> None:
    """The console script: a usage mistake (a missing argument, an unknown option) is one line too, and so is
    anything else that ends the run (an internal error: exit 2; a signal: the workers are stopped first)."""
    install_signal_handlers()
    args = sys.argv[1:]
    debug, json_errors = _flags(args)
    try:
        code = app(args=_argv(args), prog_name="ktdiff", standalone_mode=False)
    except typer.TyperException as exc:  # click's UsageError and friends
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `ktdiff` alone: the help (rich has printed it)
            if exc.format_message().strip():
                exc.show()
            code = exit_code(exc)
        message = " ".join(exc.format_message().split()).rstrip(".")
        where = ctx.command_path if ctx is not None else "ktdiff"
        code = _finish_code(UsageError(message, f"see `{where} --help`."), debug, json_errors)
    except typer.Abort:
        code = _finish_code(KeyboardInterrupt(), debug, json_errors)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - an internal error or a signal outside a command's own handling
        code = _finish_code(exc, debug, json_errors)
    finally:
        _cleanup()
    sys.exit(code if isinstance(code, int) else exit_code(DONE))


def _finish_code(outcome, debug: bool, json_errors: bool) -> int:
    try:
        finish(outcome, debug, json_errors)
    except typer.Exit as done:
        return done.exit_code
    return exit_code(outcome)


if __name__ == "__main__":
    main()
