"""Verbs that look after the registry itself (`t2l registry ...`), and the registered hypernetworks
(`t2l hypernets ...`)."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from t2l.home import t2l_home
from t2l_cli.actions.common import open_registry
from t2l_cli.actions.registry import hypernet_details, verify_registry
from t2l_cli.console import JsonOpt, err, errors_to_exit, out, print_json, short, visible

registry_app = typer.Typer(help="The registry database and its files.", no_args_is_help=True)
hypernets_app = typer.Typer(help="Registered hypernetworks: list (no verb), show, rm, import.")


@hypernets_app.callback(invoke_without_command=True)
@errors_to_exit
def hypernets(ctx: typer.Context, json_: JsonOpt = False):
    """List registered hypernetworks (`t2l hypernets import PATH` adds one of the Text-to-LoRA authors')."""
    if ctx.invoked_subcommand is not None:
        return
    rows = open_registry().list_hypernets()
    if json_:
        print_json([r.as_dict() for r in rows])
        return
    table = Table(
        "id", "name", "variant", "rank", "base", "encoder", "recipe", "steps", "final loss", "created", box=None
    )
    for r in rows:
        table.add_row(
            short(r.id),
            r.name or "",
            r.variant,
            str(r.rank),
            r.base_name,
            r.encoder_name,
            r.recipe or "",
            str(r.steps or ""),
            f"{r.final_loss:.3f}" if r.final_loss is not None else "",
            r.created.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


@hypernets_app.command("import")
@errors_to_exit
def hypernets_import(
    path: Annotated[
        Path,
        typer.Argument(
            help="The authors' run folder (hypermod.pt, args.yaml, "
            "adapter_config.json) or a step's subfolder of it (checkpoints/it_N)."
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Registry name (default: the run folder's name).")] = None,
    base: Annotated[str | None, typer.Option(help="The base model (default: args.yaml's model_dir).")] = None,
    encoder: Annotated[
        str | None, typer.Option(help="The description encoder (default: args.yaml's emb_model).")
    ] = None,
):
    """Convert a hypernetwork of the Text-to-LoRA authors' release once into a t2l hypernetwork and register it."""
    from t2l_cli.actions.registry import import_hypernet

    row, new = import_hypernet(path, name, base, encoder, busy=err.status)
    done = "registered hypernetwork" if new else "this hypernetwork (weights, config and base) is registered already as"
    out.print(
        f"{done} {row.name or ''} ({short(row.id)}): variant {row.variant}, rank {row.rank}, "
        f"base {row.base_name}, encoder {row.encoder_name}; use it with `t2l make --hypernet "
        f'{row.name or short(row.id)} "DESCRIPTION"`'
    )


@hypernets_app.command("show")
@errors_to_exit
def hypernets_show(
    ref: Annotated[str, typer.Argument(help="Hypernetwork id (or unique prefix) or name.")], json_: JsonOpt = False
):
    """Everything known about one hypernetwork: its row, where it is stored, and the adapters it made."""
    data = hypernet_details(ref)
    if json_:
        print_json(data)
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        if key != "config":  # the hypernetwork's whole config: --json shows it
            table.add_row(key, visible(str(value)))
    out.print(table)


@hypernets_app.command("rm")
@errors_to_exit
def hypernets_rm(ref: Annotated[str, typer.Argument(help="Hypernetwork id (or unique prefix) or name.")]):
    """Remove a hypernetwork and its stored copy; the adapters it made stay (their files record its sha256)."""
    row, made = open_registry().remove_hypernet(ref)
    out.print(
        f"removed hypernetwork {short(row.id)} {row.name or ''}".rstrip()
        + (f"; its {made} adapters stay, unlinked" if made else "")
    )


@registry_app.command("path")
@errors_to_exit
def registry_path():
    """Where the registry lives ($T2L_HOME)."""
    out.print(str(t2l_home()))


@registry_app.command("stats")
@errors_to_exit
def registry_stats(json_: JsonOpt = False):
    """Counts and sizes."""
    stats = open_registry().stats()
    if json_:
        print_json(stats)
        return
    for key, value in stats.items():
        out.print(f"{key:15} {value}")


@registry_app.command("vacuum")
@errors_to_exit
def registry_vacuum():
    """Compact the database."""
    open_registry().vacuum()
    out.print("vacuumed")


@registry_app.command("backup")
@errors_to_exit
def registry_backup(dest: Path):
    """Copy the database consistently to DEST (VACUUM INTO), even while others write."""
    out.print(str(open_registry().backup(dest)))


@registry_app.command("verify")
@errors_to_exit
def registry_verify(
    fix: Annotated[
        bool,
        typer.Option(
            help="Remove rows whose file is missing (asks first), and orphan and "
            "temporary files older than ten minutes; restore damaged hypernetworks "
            "from an intact copy (the shipped default, or --hypernet-source)."
        ),
    ] = False,
    hypernet_source: Annotated[
        Optional[list[Path]],
        typer.Option(help="An intact hypernetwork folder to restore a damaged stored copy from (repeatable)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    json_: JsonOpt = False,
):
    """Check every adapter file is present and matches its sha256 (exit 1 if not); list files no row refers to."""

    def show(report: dict) -> None:
        if json_:
            print_json(report)
            return
        for kind, items in report.items():
            if kind == "unwritten":  # make -o outputs never written: the make was interrupted after its commit
                items = [
                    f"{short(i['id'])} {visible(i['path'])} (run the same make again, or `t2l export "
                    f"{short(i['id'])} {visible(i['path'])}`)"
                    for i in items
                ]
            out.print(f"{kind}: {len(items)}" + "".join(f"\n  {i}" for i in items))

    def restored(hn_id: str, source: Path | None) -> None:
        err.print(
            f"restored hypernetwork {short(hn_id)} from {source}"
            if source
            else f"no intact copy of hypernetwork {short(hn_id)}: pass --hypernet-source DIR, or remove it with "
            f"`t2l hypernets rm {short(hn_id)}`"
        )

    if verify_registry(
        fix,
        hypernet_source or [],
        on_report=show,
        confirm=lambda q: yes or typer.confirm(q, err=True),
        say=err.print,
        on_restore=restored,
    ):
        raise typer.Exit(1)
