"""The publish verb: an adapter with its model card, to the Hugging Face Hub or to a folder."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from t2l_cli.actions import publish as actions
from t2l_cli.console import JsonOpt, err, errors_to_exit, out, print_json, short

app = typer.Typer()


@app.command()
@errors_to_exit
def publish(
    ref: Annotated[Optional[str], typer.Argument(help="Adapter id or name (default: the newest adapter).")] = None,
    repo_id: Annotated[
        Optional[str], typer.Option(help="USER/NAME on the Hub (default: your user / the adapter's name).")
    ] = None,
    private: Annotated[bool, typer.Option(help="Create the repo private.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Show what would be uploaded, upload nothing.")] = False,
    to_dir: Annotated[Optional[Path], typer.Option(help="Only write the Hub-ready folder here.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before uploading.")] = False,
    json_: JsonOpt = False,
):
    """Publish an adapter to the Hugging Face Hub with a model card (token from `hf auth login` or HF_TOKEN)."""
    if to_dir is not None:
        folder = actions.write_hub_folder(ref, to_dir, repo_id)
        out.print(f"wrote {folder}: " + ", ".join(sorted(p.name for p in folder.iterdir())))
        return
    with actions.staged_upload(ref, repo_id, dry_run=dry_run) as staged:
        where = f"adapter {short(staged.adapter.id)} ({staged.name}) to {staged.repo_id}" + (
            " (private)" if private else ""
        )
        plan = {
            "adapter": staged.adapter.id,
            "repo_id": staged.repo_id,
            "private": private,
            "files": dict(staged.files),
        }
        card = (staged.folder / "README.md").read_text()
        if dry_run:
            if json_:
                print_json(plan | {"card": card, "user_unknown": staged.user_unknown})
            else:
                out.print(f"would upload {where}:")
                for fname, size in staged.files:
                    out.print(f"  {fname}  {size:,} bytes")
                out.print(card)
            if staged.user_unknown:
                err.print(
                    f"{actions.HUB_USER_PLACEHOLDER} stands for your Hub user name, looked up when you "
                    f"publish; now it cannot be: {staged.user_unknown}",
                    markup=False,
                )
            return
        err.print(f"uploading {where}: " + ", ".join(f for f, _ in staged.files))
        if not yes and not typer.confirm("go ahead?", err=True):
            raise typer.Exit(1)
        with err.status(f"uploading to {staged.repo_id}"):
            done = actions.upload(staged, private)
    if json_:
        print_json(plan | {"commit": done.commit, "url": done.url})
    else:
        out.print(f"published {short(staged.adapter.id)} to {done.url} (commit {done.commit[:12]})")
