"""Verbs that talk to an adapter: run (one prompt) and chat (a conversation in the terminal)."""

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from registry import RegistryError
from t2l.errors import T2LError
from t2l.sampling import Sampling  # light: no torch
from t2l.text import decode_utf8, require_utf8
from t2l_cli.actions import use as actions
from t2l_cli.actions.common import open_registry
from t2l_cli.console import JsonOpt, err, errors_to_exit, out, print_json, warn

app = typer.Typer()

RefArg = Annotated[
    Optional[str],
    typer.Argument(
        help="'base', an adapter id, name, .safetensors file or PEFT "
        "folder (leave out with --describe). A word that is both a name and "
        "a file here is refused: write ./PATH or the id."
    ),
]
DescribeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--describe",
        help="Make an adapter from this description first (reuses one the hypernetwork made from the same words).",
    ),
]
HypernetOpt = Annotated[
    str, typer.Option(help="Hypernetwork for --describe: 'default', a hypernetwork folder, or a registered name or id.")
]
ExamplesOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="Make the adapter from input/output examples too: a "
        'JSONL file, one {"input": ..., "output": ...} per line '
        "(with --describe, or alone). Needs a hypernetwork trained with "
        "examples."
    ),
]
NoSaveOpt = Annotated[bool, typer.Option("--no-save", help="Keep a described adapter in memory only.")]
BaseOpt = Annotated[Optional[str], typer.Option(help="Base model (default: the adapter's own).")]
DeviceOpt = Annotated[str, typer.Option(help="auto (a GPU when there is one), cpu, cuda or cuda:N.")]
MaxTokensOpt = Annotated[
    Optional[int],
    typer.Option(help=f"Most tokens to generate (default: {Sampling.max_new_tokens}, or what the context leaves)."),
]
TemperatureOpt = Annotated[float, typer.Option(help="0 picks the likeliest token; higher is more varied (to 2).")]
TopPOpt = Annotated[float, typer.Option(help="Draw only from the likeliest tokens holding this much probability.")]
SeedOpt = Annotated[Optional[int], typer.Option(help="Same seed, same answer.")]
SystemOpt = Annotated[Optional[str], typer.Option(help="A system message before the conversation.")]


class Session:
    """The loaded base and the adapter being talked to, swapped without reloading the base."""

    def __init__(
        self,
        ref: str | None,
        describe: str | None,
        hypernet: str,
        save: bool,
        base: str | None,
        device: str,
        examples: Path | None = None,
    ):
        from t2l.chat import Engine
        from t2l.examples import read_examples

        described = describe is not None or examples is not None
        if (ref is None) == (not described):
            raise typer.BadParameter(
                "name an adapter (or 'base') or pass --describe TEXT (or --examples FILE), not both"
            )
        self.examples = read_examples(examples) if examples is not None else []  # before the model loads
        self.reg, self.hypernets = open_registry(), actions.Hypernets()
        self.hypernet, self.save, self.description = hypernet, save, describe
        with err.status("loading"):
            chosen = (
                actions.describe_adapter(self.reg, self.hypernets, describe, hypernet, save, base, warn, self.examples)
                if described
                else actions.choose_adapter(self.reg, ref)
            )
            self.engine = Engine.load(actions.base_for([chosen], base), device=device)
        self.switch(chosen)

    def switch(self, chosen: "actions.Chosen") -> None:
        self.adapter = actions.load_chosen(self.engine, chosen)  # checked against the base before anything changes
        self.chosen = chosen

    def describe(self, text: str | None, examples: list | None = None) -> None:
        """Talk to the adapter made from `text` and the conversation's examples (`examples`, when given, replace
        them from now on; an empty list drops them)."""
        shots = self.examples if examples is None else examples
        with err.status("making the adapter"):
            self.switch(
                actions.describe_adapter(
                    self.reg, self.hypernets, text, self.hypernet, self.save, on_warning=warn, examples=shots
                )
            )
        self.description, self.examples = text, shots

    def sampling(
        self, prompt_ids: list[int], max_new_tokens: int | None, temperature: float, top_p: float, seed: int | None
    ):
        room = self.engine.context_length - len(prompt_ids)
        return Sampling(
            max_new_tokens if max_new_tokens is not None else max(1, min(Sampling.max_new_tokens, room)),
            temperature,
            top_p,
            seed,
        )


SEEDS = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed takes


def check_settings(
    max_new_tokens: int | None, temperature: float, top_p: float, seed: int | None, system: str | None
) -> None:
    """Refuse what no generation can run with before the model loads (seconds), each naming its option."""
    if max_new_tokens is not None and max_new_tokens < 1:
        raise T2LError(
            f"--max-new-tokens must be 1 or more, not {max_new_tokens}; leave it out for "
            f"{Sampling.max_new_tokens} tokens or what the context leaves"
        )
    if seed is not None and not SEEDS[0] <= seed <= SEEDS[1]:
        raise T2LError(f"--seed {seed} does not fit in 64 bits; use a number from 0 to {SEEDS[1]}")
    Sampling(max_new_tokens or 1, temperature, top_p, seed).check()
    if system is not None:
        require_utf8(system, "--system")


def read_prompt(prompt: str) -> str:
    """The prompt, from stdin when it is '-', refused when empty or not UTF-8."""
    if prompt == "-":
        prompt = decode_utf8(sys.stdin.buffer.read(), "the prompt on stdin")
    if not require_utf8(prompt, "the prompt").strip():
        raise T2LError("empty prompt: give the text to answer, as an argument or on stdin with '-'")
    return prompt


def _messages(prompt: str, system: str | None) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def _record(generation, chosen) -> dict:
    return {
        "text": generation.text,
        "tokens": generation.completion_tokens,
        "prompt_tokens": generation.prompt_tokens,
        "seconds": round(generation.seconds, 3),
        "finish_reason": generation.finish_reason,
        "adapter": None if chosen.is_base else chosen.label,
        "adapter_id": chosen.adapter_id,
    }


def together(*generations) -> None:
    """Run the generations side by side, as rows of one batch, until all are done."""
    import threading

    workers = [threading.Thread(target=g.run, daemon=True) for g in generations[1:]]
    for w in workers:
        w.start()
    try:
        generations[0].run()
    finally:
        for g in generations[1:]:
            if not g.done.is_set():
                g.cancel()
        for w in workers:
            w.join()


def stream_columns(columns: list[tuple[str, object]]) -> None:
    """Answers generated together, each in its own column, redrawn as their pieces come."""
    import threading

    from rich.live import Live
    from rich.text import Text

    def table() -> Table:
        t = Table(box=None, expand=True)
        for label, _ in columns:
            t.add_column(Text(label))
        t.add_row(*(Text(g.text) for _, g in columns))  # the model's text as it is, never read as markup
        return t

    runner = threading.Thread(target=together, args=[g for _, g in columns], daemon=True)
    with Live(table(), console=out, refresh_per_second=8, transient=False) as live:
        runner.start()
        try:
            while runner.is_alive():
                runner.join(0.1)
                live.update(table())
        finally:
            for _, g in columns:
                g.cancel()
            runner.join()
        live.update(table())


def stream(generation) -> None:
    """Print the answer as it is generated."""
    for piece in generation:
        out.file.write(piece)
        out.file.flush()
    out.file.write("\n")


@app.command()
@errors_to_exit
def run(
    ref: RefArg = None,
    prompt: Annotated[Optional[str], typer.Argument(help="The prompt; '-' reads it from stdin.")] = None,
    describe: DescribeOpt = None,
    examples: ExamplesOpt = None,
    hypernet: HypernetOpt = "default",
    no_save: NoSaveOpt = False,
    base: BaseOpt = None,
    max_new_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = Sampling.temperature,
    top_p: TopPOpt = Sampling.top_p,
    seed: SeedOpt = None,
    system: SystemOpt = None,
    raw: Annotated[bool, typer.Option(help="Plain completion of the prompt, without the chat template.")] = False,
    compare: Annotated[bool, typer.Option(help="Also answer with the bare base and show both side by side.")] = False,
    device: DeviceOpt = "auto",
    json_: JsonOpt = False,
):
    """Answer one prompt with an adapter (or the base), streaming the tokens as they come."""
    if (describe is not None or examples is not None) and prompt is None:
        ref, prompt = None, ref  # `t2l run --describe TEXT PROMPT`: the one argument is the prompt
    if prompt is None:
        raise typer.BadParameter("give a prompt after the adapter, or '-' to read it from stdin")
    prompt = read_prompt(prompt)
    check_settings(max_new_tokens, temperature, top_p, seed, system)
    session = Session(ref, describe, hypernet, not no_save, base, device, examples)
    engine = session.engine
    ids = engine.raw_ids(prompt) if raw else engine.chat_ids(_messages(prompt, system))
    sampling = session.sampling(ids, max_new_tokens, temperature, top_p, seed)
    answer = engine.generate(ids, sampling, session.adapter)
    if compare:
        plain = engine.generate(ids, sampling, None)
        if json_:
            together(plain, answer)
            print_json({"base": _record(plain, actions.Chosen("base")), "adapter": _record(answer, session.chosen)})
            return
        stream_columns([("base", plain), (session.chosen.label, answer)])
    elif json_:
        print_json(_record(answer.run(), session.chosen))
    else:
        stream(answer)


CHAT_HELP = (
    "/adapter NAME  talk to another adapter   /describe TEXT  make one and talk to it   /base  the bare "
    "base\n/examples FILE  make the adapter again from the last description and these examples (JSONL; "
    "/describe uses them too; /examples off drops them)\n/reset  forget the conversation   /save NAME  "
    "keep this adapter under a name   /rename NAME  rename a saved one\nCtrl-C stops a reply (at the "
    "prompt: clears the line), Ctrl-D leaves"
)


@app.command()
@errors_to_exit
def chat(
    ref: RefArg = None,
    describe: DescribeOpt = None,
    examples: ExamplesOpt = None,
    hypernet: HypernetOpt = "default",
    no_save: NoSaveOpt = False,
    base: BaseOpt = None,
    max_new_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = Sampling.temperature,
    top_p: TopPOpt = Sampling.top_p,
    seed: SeedOpt = None,
    system: SystemOpt = None,
    device: DeviceOpt = "auto",
):
    """A conversation in the terminal with an adapter (or the base), in the base model's chat template."""
    check_settings(max_new_tokens, temperature, top_p, seed, system)
    session = Session(ref, describe, hypernet, not no_save, base, device, examples)
    start = [{"role": "system", "content": system}] if system else []
    history = list(start)
    err.print(f"talking to {session.chosen.label}\n{CHAT_HELP}")
    while True:
        err.print(f"{session.chosen.label}> ", end="")
        try:
            raw = sys.stdin.buffer.readline()
        except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line; Ctrl-D leaves
            err.print("")
            continue
        if not raw:  # Ctrl-D
            break
        try:
            line = decode_utf8(raw, "that line").strip()
        except T2LError as e:
            warn(str(e))
            continue
        if not line:
            continue
        if line.startswith("/"):
            if _command(session, line):
                history = list(start)
            continue
        history.append({"role": "user", "content": line})
        ids = session.engine.chat_ids(history)
        answer = session.engine.generate(
            ids, session.sampling(ids, max_new_tokens, temperature, top_p, seed), session.adapter
        )
        try:
            stream(answer)
        except KeyboardInterrupt:
            out.file.write("\n")
            err.print("(stopped)")
        history.append({"role": "assistant", "content": answer.text})
    err.print("")


def _command(session: Session, line: str) -> bool:
    """Carry out a /command; True when the conversation starts over. Mistakes are reported, the chat goes on."""
    verb, _, arg = line.partition(" ")
    arg = arg.strip()
    try:
        if verb == "/reset":
            err.print("conversation cleared")
            return True
        if verb == "/base":
            session.switch(actions.Chosen("base"))
        elif verb == "/adapter" and arg:
            session.switch(actions.choose_adapter(session.reg, arg))
        elif verb == "/describe" and arg:
            session.describe(arg)
        elif verb == "/examples" and arg:
            from t2l.examples import read_examples

            shots = [] if arg == "off" else read_examples(Path(arg))
            if not shots and not session.description:
                raise T2LError("no description to make an adapter from without examples; /describe TEXT first")
            session.describe(session.description, shots)
        elif verb == "/save" and arg:
            named = session.chosen.adapter_id and session.reg.get_adapter(session.chosen.adapter_id).name
            if named and named != arg:
                warn(
                    f"this adapter is saved already as {named}; renaming it would leave whoever uses {named} (a "
                    f"server's clients, a script) without it: /rename {arg} does that on purpose"
                )
                return False
            session.chosen = actions.save_chosen(session.reg, session.chosen, arg)
            err.print(f"saved as {arg} ({session.chosen.adapter_id[:8]})")
            return False
        elif verb == "/rename" and arg and session.chosen.adapter_id:
            session.chosen = actions.save_chosen(session.reg, session.chosen, arg)
            err.print(f"renamed to {arg} ({session.chosen.adapter_id[:8]})")
            return False
        else:
            err.print(CHAT_HELP)
            return False
        err.print(f"now talking to {session.chosen.label}; it sees the conversation so far (/reset starts over)")
    except (T2LError, RegistryError, ValueError) as e:  # a bad /command must not end the conversation
        warn(str(e))
    return False
