"""The actions of `t2l publish`: an adapter's Hub folder with its model card, staged, uploaded and recorded."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from registry import Adapter, Registry
from t2l.errors import T2LError
from t2l_cli.actions.common import card_name, open_registry


def scores_for_card(reg: Registry, adapter_id: str):
    """The newest score of each bench, metric and protocol, for the model card."""
    from t2l.card import Score

    return [
        Score(e.bench, e.metric, e.value, e.stderr, e.n, e.protocol, e.limit)
        for _, e in sorted(reg.latest_evals(adapter_id).items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1]))
    ]


def _to_publish(reg: Registry, ref: str | None) -> Adapter:
    """The adapter `ref` names, or the newest one."""
    if ref is not None:
        return reg.get_adapter(ref)
    newest = reg.list_adapters()
    if not newest:
        raise T2LError("the registry has no adapters yet; make one with `t2l make DESCRIPTION`")
    return newest[0]


def write_hub_folder(ref: str | None, to_dir: Path, repo_id: str | None) -> Path:
    """The Hub-ready folder of an adapter (model card with its scores), written to `to_dir` only."""
    from t2l.publish import hub_folder, validate_repo_id

    reg = open_registry()
    row = _to_publish(reg, ref)
    repo_id = validate_repo_id(repo_id) if repo_id else None
    return hub_folder(reg.adapter_file(row), to_dir, card_name(row), scores_for_card(reg, row.id), repo_id)


@dataclass
class Upload:
    """A Hub folder staged for upload, with where it would go."""

    adapter: Adapter
    name: str
    repo_id: str
    folder: Path
    files: list[tuple[str, int]]  # (name, bytes), sorted
    registry: Registry  # the handle it was staged from, which records the upload
    user_unknown: str | None = None  # why repo_id's user is a placeholder (a dry run offline or logged out)


@contextmanager
def staged_upload(ref: str | None, repo_id: str | None, dry_run: bool = False) -> Iterator[Upload]:
    """The Hub folder of an adapter in a temporary folder (gone after the block), to `repo_id` or to the logged-in
    user's repo named after the adapter. A dry run needs no network: when the user cannot be looked up, the repo id
    names a placeholder user and says why."""
    import tempfile

    from t2l.publish import hub_folder, validate_repo_id

    reg = open_registry()
    row = _to_publish(reg, ref)
    name = card_name(row)
    repo_id, user_unknown = (validate_repo_id(repo_id), None) if repo_id else _own_repo(name, dry_run)
    scores = scores_for_card(reg, row.id)
    with tempfile.TemporaryDirectory(prefix="t2l-publish-") as tmp:
        folder = hub_folder(reg.adapter_file(row), Path(tmp) / "repo", name, scores, repo_id)
        yield Upload(
            row,
            name,
            repo_id,
            folder,
            [(p.name, p.stat().st_size) for p in sorted(folder.iterdir())],
            reg,
            user_unknown,
        )


HUB_USER_PLACEHOLDER = "YOUR-HUB-USER"


def _own_repo(name: str, dry_run: bool) -> tuple[str, str | None]:
    """(the logged-in user's repo named after the adapter, None); in a dry run where the user cannot be looked up,
    (the repo under a placeholder user, why)."""
    from t2l.publish import hub_user, repo_name

    try:
        return f"{hub_user()}/{repo_name(name)}", None
    except T2LError as e:
        if not dry_run:
            raise
        return f"{HUB_USER_PLACEHOLDER}/{repo_name(name)}", str(e)


def upload(staged: Upload, private: bool):
    """Upload a staged folder and record the commit in the registry."""
    from t2l.publish import upload as upload_folder

    done = upload_folder(staged.folder, staged.repo_id, private)
    staged.registry.add_publication(
        staged.adapter.id, repo_id=done.repo_id, commit_sha=done.commit, url=done.url, private=private
    )
    return done
