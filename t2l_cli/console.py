"""What every verb shares: the two consoles, JSON output, progress bars and their event handlers, and known errors
turned into one line and an exit code."""

import functools
import json
import re
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sqlalchemy.exc import DatabaseError

import registry
import t2l
import t2l_cli
from registry import RegistryError
from registry.db import damaged
from t2l.errors import T2LError
from t2l.home import t2l_home

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # progress, warnings and errors: stdout stays data

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


# where a bug goes: the project names no public tracker yet (pyproject.toml has no URL); put its address here
REPORT_BUGS = "t2l's issue tracker, with the command you ran, this line and `t2l --version`"


# Typer's exits and usage errors; ClickException is click's, or the copy of click newer Typers carry inside
_TYPERS_OWN = (typer.Exit, typer.Abort, next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"))


def errors_to_exit(fn):
    """t2l's own errors (a user can fix them) become one 'error: ...' line and exit code 1; any other exception is
    a bug in t2l, said as one: not dressed up as an input error. Ctrl-C exits 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (T2LError, RegistryError) as e:
            fail(e)
        except DatabaseError as e:  # found damaged after it opened: a page read mid-command
            fail(damaged(t2l_home() / "registry.db", e))
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except _TYPERS_OWN:
            raise  # usage errors (exit 2) and exits are Typer's to print
        except Exception as e:  # noqa: BLE001 - anything else is a bug in t2l: one line naming it, then exit 1
            bug(e)

    return wrapper


def fail(e: Exception):
    err.print(f"[red]error:[/red] {escape(str(e))}", markup=True)
    raise typer.Exit(1) from None


_PACKAGES = [Path(m.__file__).parent for m in (registry, t2l, t2l_cli)]


def bug(e: Exception):
    """One line that says an unexpected exception is t2l's fault, where in t2l it was raised (the innermost frame of
    t2l's own packages, else the innermost), and where to report it."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename != __file__]  # not this wrapper
    ours = [f for f in frames if any(Path(f.filename).is_relative_to(root) for root in _PACKAGES)]
    where = (ours or frames)[-1]
    text = (str(e).strip().splitlines() or [""])[0]
    err.print(
        f"[red]error:[/red] a bug in t2l, not in your input: {type(e).__name__} at {Path(where.filename).name}:"
        f"{where.lineno}: {escape(text)}; please report it to {REPORT_BUGS}",
        markup=True,
    )
    raise typer.Exit(1) from None


# control characters, and the bidirectional ones that make text print as other text (U+202E reverses what follows)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _written_out(char: str) -> str:
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) <= 0xFF else f"\\u{ord(char):04x}")


def visible(text: str) -> str:
    """Stored text as a terminal shows it safely: control characters (escape sequences, newlines, bidi overrides)
    written out as \\x1b, \\n, \\u202e..., and Rich markup escaped, so a description can neither restyle the
    terminal nor the table, nor print as other words."""
    return escape(_CONTROL.sub(lambda m: _written_out(m.group()), text))


def short(id_: str | None) -> str:
    return id_[:8] if id_ else ""


def print_json(data) -> None:
    out.print_json(json.dumps(data, default=str))


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {message}")


def progress_bars():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    return Progress(*columns, console=err, transient=False)


def transient_bars():
    """Bars that vanish when done, for work whose result is printed after it."""
    from rich.progress import Progress

    return Progress(console=err, transient=True)


class NamedBars:
    """A (name, done, total) progress handler: one bar per name, added on its first report."""

    def __init__(self, progress, **fields):
        self.progress, self.fields, self.bars = progress, fields, {}

    def __call__(self, name: str, done: int, total: int) -> None:
        if name not in self.bars:
            self.bars[name] = self.progress.add_task(name, total=total, **self.fields)
        self.progress.update(self.bars[name], completed=done, total=total)

    def clear(self) -> None:
        for bar in self.bars.values():
            self.progress.remove_task(bar)
        self.bars.clear()


def training_events(progress, label: str = "training"):
    """A run_recipe event handler that drives one progress bar."""
    bar = progress.add_task(f"{label}: preparing", total=None, info="")

    def on_event(kind, payload):
        if kind == "status":
            progress.update(bar, description=f"{label}: {payload}")
        elif kind == "progress":
            progress.update(bar, completed=payload[0], total=payload[1])
        elif kind == "start":
            progress.update(
                bar, description=label, total=payload["steps"], completed=payload["start"], info=f"run {payload['out']}"
            )
        elif kind == "step":
            progress.update(
                bar, completed=payload.step, info=f"loss {payload.loss:.3f}  {payload.tokens_per_s:.0f} tok/s"
            )
        elif kind == "eval":
            with_examples = (
                f", with examples {payload['heldout_loss_examples']:.4f}" if "heldout_loss_examples" in payload else ""
            )
            err.print(f"{label} step {payload['step']}: held-out loss {payload['heldout_loss']:.4f}{with_examples}")

    return on_event


def named_training_events(progress):
    """An event handler for several training runs at once, (name, kind, payload): one progress bar per run."""
    handlers = {}

    def on_event(name, kind, payload):
        if name not in handlers:
            handlers[name] = training_events(progress, name)
        handlers[name](kind, payload)

    return on_event


def paper_events(progress):
    """A `run_paper` event handler: phases as lines, a bar per training run and per bench being evaluated, and each
    finished (method, bench, protocol) as a line that clears the eval bars."""
    train_events, eval_bars = named_training_events(progress), NamedBars(progress, info="")

    def on_event(kind, payload):
        if kind == "phase":
            err.print(payload)
        elif kind == "train":
            train_events(*payload)
        elif kind == "eval":
            bench, done, total = payload
            eval_bars(f"eval {bench}", done, total)
        elif kind == "result":
            value = payload["metrics"].get("acc") or next(iter(payload["metrics"].values()))
            err.print(
                f"{payload['protocol']:8} {payload['method']:28} {payload['bench']:14} "
                f"{100 * value[0]:5.1f} ± {100 * value[1]:.1f}"
            )
            eval_bars.clear()

    return on_event


def unseen_events(progress):
    """A `run_unseen` event handler: phases as lines, one bar over the (method, task) cells, a line per cell."""
    bar = progress.add_task("unseen tasks", total=None, info="")

    def on_event(kind, payload):
        if kind == "phase":
            err.print(payload)
        elif kind == "cell":
            done, total, method, task = payload
            progress.update(bar, completed=done - 1, total=total, info=f"{method} / {task}")
        elif kind == "result":
            n = payload["n"]
            err.print(
                f"{payload['method']:30} {payload['task']:28} loss {sum(payload['loss']) / n:6.3f}  "
                f"ROUGE-L {100 * sum(payload['rouge_l']) / n:5.1f}  "
                f"EM {100 * sum(payload['exact_match']) / n:5.1f}"
            )
            progress.advance(bar)

    return on_event
