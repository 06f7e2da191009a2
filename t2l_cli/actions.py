"""Where the library meets the registry: what each verb does once its arguments are parsed, without Typer or Rich.

The verb files under t2l_cli/ call one of these and print what comes back; another front end (`t2l serve`) calls
the same. Progress and warnings come back through the callbacks passed in. Heavy imports stay inside the functions,
so `t2l --help` and `t2l ls` never load torch.
"""

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from registry import Adapter, Registry, RegistryError
from t2l.errors import T2LError
from t2l.home import t2l_home

Busy = Callable[[str], AbstractContextManager]  # shows that a long step is under way, e.g. a spinner
Warn = Callable[[str], None]


def _idle(message: str) -> AbstractContextManager:
    return nullcontext()


def _ignore(message: str) -> None:
    pass


def open_registry() -> Registry:
    return Registry(t2l_home())


def registered_hypernet(reg: Registry, spec: str):
    """The registry row of a hypernetwork named by `spec`: 'default', a checkpoint folder (registered on first
    use), or a registered name or id."""
    from t2l.checkpoint import hypernet_path, read_hypernet_info

    folder = hypernet_path(spec)
    if folder is None:
        return reg.get_hypernet(spec)
    return reg.add_hypernet(folder, **read_hypernet_info(folder).registry_fields())


def hypernet_details(ref: str) -> dict:
    """A hypernetwork's row, where its copy is stored, and how many adapters it made."""
    reg = open_registry()
    row = reg.get_hypernet(ref)
    made = [a for a in reg.list_adapters() if a.hypernet_id == row.id]
    try:
        reg.hypernet_dir(row)
        intact = True
    except RegistryError:
        intact = False
    return row.as_dict() | {"stored": str(reg.hypernets_dir / row.sha256), "intact": intact, "adapters": len(made)}


def restore_hypernets(reg: Registry, ids: list[str], sources: list[Path]) -> tuple[dict[str, Path], list[str]]:
    """Damaged stored hypernetworks restored from the first intact copy among `sources` and the shipped default:
    ({id: source} restored, ids with no intact copy)."""
    from t2l.checkpoint import DEFAULT_HYPERNET_DIR

    restored, left = {}, []
    for hn_id in ids:
        source = reg.restore_hypernet(hn_id, [*sources, DEFAULT_HYPERNET_DIR])
        if source is None:
            left.append(hn_id)
        else:
            restored[hn_id] = source
    return restored, left


def make_and_store(reg: Registry, generator, hn_row, texts: list[str], names: list, tags: list[str], force: bool,
                   on_warning: Warn = _ignore, examples: list = ()) -> list[Adapter]:
    """Generate adapters for `texts` (from `examples` too) and store each under its name; the rows, in order."""
    adapters = generator.make(texts, on_warning=on_warning, examples=examples)
    return [reg.add_adapter(made.to_bytes(), name=name, tags=tags, force=force, hypernet_id=hn_row.id,
                            **made.info.registry_fields()) for made, name in zip(adapters, names)]


# -- adapters ---------------------------------------------------------------------------------------------------


def make_adapters(descriptions: list[str], from_file: Path | None, output: Path | None, name: str | None,
                  hypernet: str, base: str | None, tags: list[str], force: bool, busy: Busy = _idle,
                  on_warning: Warn = _ignore,
                  examples: Path | None = None) -> list[tuple[Adapter, list[str], Path | None]]:
    """Make and store one adapter per description (each also from the examples in `examples`, a JSONL file; with
    examples and no description, one adapter from the examples alone), each written to its output too when there
    is one; (row, its tags, output) per adapter. Outputs and names are checked before anything is loaded."""
    from t2l.examples import read_examples
    from t2l.export import check_output, export_adapter
    from t2l.make import Generator, output_plan, read_descriptions, validate_description

    texts = [validate_description(d) for d in descriptions]
    texts += read_descriptions(from_file) if from_file else []
    shots = read_examples(examples) if examples else []
    if not texts and not shots:
        raise T2LError("no description given; pass one or more descriptions, --from-file FILE or --examples FILE")
    plan = output_plan(max(1, len(texts)), output, name)
    reg = open_registry()
    reg.require_writable()
    for (adapter_name, path), text in zip(plan, texts or [""]):
        if path is not None:
            check_output(path, force)
        if adapter_name is not None and not force:
            reg.check_name_free(adapter_name, text)
    with busy("loading hypernetwork and encoder"):
        hn_row = registered_hypernet(reg, hypernet)
        generator = Generator(reg.hypernet_dir(hn_row), base=base)
    stored = make_and_store(reg, generator, hn_row, texts, [n for n, _ in plan], tags, force, on_warning, shots)
    for row, (_, path) in zip(stored, plan):
        if path is not None:
            export_adapter(reg.adapter_file(row), path, force=force, name=_card_name(row))
    tags_of = reg.tags([row.id for row in stored])
    return [(row, tags_of[row.id], path) for row, (_, path) in zip(stored, plan)]


@dataclass
class Listing:
    """Adapters with what `t2l ls` shows beside them."""

    protocol: str  # the stored protocol version the scores are of
    rows: list[Adapter]
    scores: dict  # adapter id -> bench -> its newest acc row
    tags: dict  # adapter id -> tags
    published: dict  # adapter id -> publications, newest first


def list_adapters(tag: str | None, bench: str | None, sort: str, protocol: str) -> Listing:
    from t2l.eval.benches import BENCHES

    if sort not in ("created", "name", "score"):
        raise T2LError(f"unknown sort {sort!r}: use created, name or score")
    if bench is not None and bench not in BENCHES:
        raise T2LError(f"unknown bench {bench!r}; choose from {', '.join(BENCHES)}")
    if sort == "score" and bench is None:
        raise T2LError("--sort score ranks by one bench's score: add --bench B")
    reg = open_registry()
    version = _protocol_version(reg, protocol)
    rows = reg.list_adapters(tag=tag)
    scores = reg.latest_scores([r.id for r in rows], protocol=version)
    if bench is not None:
        rows = [r for r in rows if bench in scores[r.id]]
    if sort == "score":
        rows.sort(key=lambda r: -scores[r.id][bench].value)
    elif sort == "name":
        rows.sort(key=lambda r: (r.name is None, r.name or ""))
    ids = [r.id for r in rows]
    return Listing(version, rows, scores, reg.tags(ids), reg.publications(ids))


def _protocol_version(reg: Registry, protocol: str) -> str:
    """The stored version string of a protocol named by its name (lm-eval, letter) or by a version a stored score
    carries; anything else is refused rather than shown as an empty column."""
    from t2l.eval.benches import PROTOCOLS, protocol_name

    if protocol_name(protocol) in PROTOCOLS:
        return PROTOCOLS[protocol_name(protocol)]
    stored = reg.protocols() | set(PROTOCOLS.values())
    if protocol not in stored:
        raise T2LError(f"unknown protocol {protocol!r}: use {' or '.join(PROTOCOLS)}, or a stored protocol version "
                       f"({', '.join(sorted(stored))})")
    return protocol


def search_adapters(text: str, limit: int, exact: bool, busy: Busy = _idle) -> list[tuple[float | None, Adapter]]:
    """The best `limit` adapters for `text`: by the description encoder's similarity, or (exact) every word present,
    newest first, without a similarity."""
    if limit <= 0:
        raise T2LError(f"--limit must be a positive number of results, not {limit}")
    rows = open_registry().list_adapters()
    if exact:
        from t2l.search import substring_hits

        hits = substring_hits(text, [f"{r.description} {r.name or ''}" for r in rows])
        return [(None, r) for r, hit in zip(rows, hits) if hit][:limit]
    from t2l.search import similarities

    with busy("ranking descriptions"):
        sims = similarities(text, [r.description for r in rows])
    return sorted(zip(sims, rows), key=lambda x: -x[0])[:limit]


def adapter_details(ref: str) -> dict:
    """Everything the registry knows about one adapter: its row, stored file, scores, uploads and hypernetwork."""
    reg = open_registry()
    row = reg.get_adapter(ref)
    data = row.as_dict(reg.tags([row.id])[row.id])
    data["file"] = str(reg.stored_path(row.sha256))
    data["evals"] = [e.as_dict() for e in reg.evals(row.id)]
    data["published"] = [p.as_dict() for p in reg.publications([row.id])[row.id]]
    if row.hypernet_id:
        hn = reg.get_hypernet(row.hypernet_id)
        data["hypernet"] = {"id": hn.id, "name": hn.name, "variant": hn.variant, "recipe": hn.recipe,
                            "sha256": hn.sha256}
    return data


def export(ref: str, path: Path, force: bool) -> Path:
    """A stored adapter, hash-checked, copied to `path` as one file or a PEFT folder."""
    from t2l.export import export_adapter

    reg = open_registry()
    row = reg.get_adapter(ref)
    return export_adapter(reg.adapter_file(row), path, force=force, name=_card_name(row))


def _adapter_path(reg: Registry, ref: str) -> tuple[Path, str | None]:
    """(file or folder, registry id or None) for an adapter named by id, name, path, or Hub repo id (USER/NAME, as
    `t2l publish` uploads it: downloaded, or taken from the Hugging Face cache). Names cannot hold '/', so a repo id
    or a path with a '/' is never a name; a bare word that is both a registered adapter and a file or folder here
    is refused, never silently taken as either."""
    from t2l.locate import hub_snapshot, looks_like_hub_id

    if Path(ref).exists():
        _refuse_ambiguous(reg, ref)
        return Path(ref), None
    if looks_like_hub_id(ref):
        return hub_snapshot(ref, "adapter"), None
    row = reg.get_adapter(ref)
    return reg.adapter_file(row), row.id


def _refuse_ambiguous(reg: Registry, ref: str) -> None:
    if "/" in ref or "\\" in ref:
        return  # a path: names cannot hold either
    try:
        row = reg.get_adapter(ref)
    except RegistryError:
        return
    raise T2LError(f"{ref!r} is both a registered adapter and a file or folder here; say which: "
                   f"./{ref} for the path, or its id {row.id[:8]} for the registered adapter")


def diff_adapters(a: str, b: str, plot: Path | None):
    """(t2l.diff's comparison, the scores both have with B minus A) of two adapters (ids, names or paths); the heat
    map of per-layer similarity goes to `plot` when given."""
    from t2l.diff import compare, heatmap_png
    from t2l.files import check_writable

    if plot is not None:
        check_writable(plot, "--plot")
    reg = open_registry()
    (path_a, id_a), (path_b, id_b) = _adapter_path(reg, a), _adapter_path(reg, b)
    result = compare(path_a, path_b)
    scores = []
    if id_a and id_b:
        la, lb = reg.latest_evals(id_a), reg.latest_evals(id_b)
        scores = [{"bench": k[0], "metric": k[1], "protocol": k[2], "a": la[k].value, "b": lb[k].value,
                   "b_minus_a": lb[k].value - la[k].value} for k in sorted(la.keys() & lb.keys())]
    if plot is not None:
        heatmap_png(result, plot)
    return result, scores


# -- evaluation -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSettings:
    """How `t2l eval` scores, besides what it scores."""

    limit: int | None = None
    batch_size: int = 16
    dtype: str = "float32"
    device: str = "auto"
    data_dir: Path | None = None
    from_hub: bool = False
    protocol: str = "lm-eval"
    shots: int = 0
    chat_template: bool = False


def evaluate(refs: list[str], bench: str, settings: EvalSettings, base: str | None = None, describe: bool = False,
             hypernet: str = "default", output: Path | None = None,
             on_progress: Callable[[str, int, int], None] | None = None, on_warning: Warn = _ignore) -> list[dict]:
    """Score the subjects (refs, and with `describe` adapters made from each bench's own descriptions) on the
    benches; every finished bench is stored in the registry at once. One row per subject, bench and metric; written
    lm-eval-shaped to `output` when given."""
    from t2l.eval.benches import select
    from t2l.eval.prompts import PromptSettings
    from t2l.device import resolve_device
    from t2l.eval.run import check_settings, run_eval
    from t2l.files import check_writable

    check_settings(settings.limit, settings.protocol, settings.shots, settings.batch_size, settings.dtype)
    if output is not None:
        check_writable(output, "--output")  # before the run, not after its scores are stored
    resolve_device(settings.device)  # a missing GPU is said before any model loads
    benches = select(bench)
    reg = open_registry()
    reg.require_writable()  # scores are stored as each bench finishes
    subjects = _subjects(reg, refs)
    if describe:
        subjects += _described_subjects(reg, benches, hypernet, on_warning)
    if not subjects:
        raise T2LError("nothing to evaluate: name 'base', adapters, or pass --describe")
    base = base or _base_of([s for s, _ in subjects])
    rows: list[dict] = []
    run_eval([s for s, _ in subjects], benches, base, limit=settings.limit, batch_size=settings.batch_size,
             dtype=settings.dtype, data_dir=settings.data_dir, from_hub=settings.from_hub, protocol=settings.protocol,
             prompt=PromptSettings(shots=settings.shots, chat_template=settings.chat_template), device=settings.device,
             on_progress=on_progress,
             on_result=_score_recorder(reg, {s.label: key for s, key in subjects}, base, settings, rows))
    if output is not None:
        from t2l.eval.run import lm_eval_shaped
        from t2l.files import write_text_atomic

        write_text_atomic(output, json.dumps(lm_eval_shaped(rows, base, settings.limit, settings.batch_size,
                                                            settings.dtype), indent=2))
    return rows


def _subjects(reg: Registry, refs: list[str]) -> list[tuple[object, tuple[str | None, str]]]:
    """(eval Subject, (adapter id or None, the subject key scores are stored under)) for each ref: 'base', an
    adapter file, folder or Hub repo (keyed by its weights' sha256), or a registered adapter."""
    from t2l.adapter import weights_file
    from t2l.eval.run import Subject
    from t2l.hashing import sha256_file

    subjects = []
    for ref in refs:
        if ref == "base":
            subjects.append((Subject("base"), (None, "base")))
            continue
        path, adapter_id = _adapter_path(reg, ref)
        if adapter_id is None:
            subjects.append((Subject(ref, path), (None, f"file:{sha256_file(weights_file(path))}")))
        else:
            row = reg.get_adapter(adapter_id)
            subjects.append((Subject(row.name or row.id[:8], path), (row.id, row.id)))
    return subjects


def _described_subjects(reg: Registry, benches, hypernet: str, on_warning: Warn) -> list:
    """Zero-shot T2L: an adapter made and stored from each of a bench's own descriptions, evaluated on that bench."""
    from t2l.eval.run import Subject
    from t2l.make import Generator

    hn_row = registered_hypernet(reg, hypernet)
    generator = Generator(reg.hypernet_dir(hn_row))
    subjects = []
    for b in benches:
        made = make_and_store(reg, generator, hn_row, list(b.descriptions), [None] * len(b.descriptions),
                              ["describe", b.name], False, on_warning)
        subjects += [(Subject(f"t2l:{b.name}#{i}", reg.adapter_file(row), [b.name]), (row.id, row.id))
                     for i, row in enumerate(made, 1)]
    return subjects


def _base_of(subjects) -> str:
    """The base the first t2l adapter among `subjects` was made for; the embedded default when none says."""
    from t2l.adapter import read_info
    from t2l.base import DEFAULT_BASE

    infos = [read_info(s.path) for s in subjects if s.path is not None]
    return next((i.base_spec for i in infos if i is not None), DEFAULT_BASE)


def _score_recorder(reg: Registry, keys: dict, base: str, settings: EvalSettings, rows: list[dict]):
    """An on_result handler (`keys`: subject label -> (adapter id, subject key)): stores each finished bench of a
    subject in the registry (one transaction) and adds its metrics to `rows`."""
    import t2l
    from t2l.base import identify_base

    base_ref = identify_base(base)

    def store(subject, result):
        adapter_id, subject_key = keys[subject.label]
        reg.add_eval(result.metrics, adapter_id=adapter_id, subject=subject_key, base_name=base_ref.name,
                     base_sha256=base_ref.sha256, bench=result.bench, split=result.split, n=result.n,
                     protocol=result.protocol, data_sha256=result.data_sha256, limit=result.limit,
                     dtype=settings.dtype, batch_size=settings.batch_size, t2l_version=t2l.__version__,
                     shots=settings.shots)
        rows.extend({"subject": subject.label, "bench": result.bench, "split": result.split, "metric": metric,
                     "value": value, "stderr": stderr, "n": result.n, "limit": result.limit,
                     "protocol": result.protocol} for metric, (value, stderr) in result.metrics.items())

    return store


# -- training ---------------------------------------------------------------------------------------------------


def train(recipe: str, overrides: list[str], resume: Path | None, on_event):
    """Run a recipe and register what it made; (the run's result, its registry row or None on a rank other than 0:
    under torchrun rank 0 alone registers)."""
    from t2l.train.recipe import load_recipe
    from t2l.train.run import run_recipe

    settings = load_recipe(recipe, overrides)
    if settings.recipe == "recon":
        settings.recon.sources = _recon_sources(settings.recon.sources)
    result = run_recipe(settings, resume=resume, on_event=on_event)
    if result.rank != 0:
        return result, None
    return result, _register_result(open_registry(), result, settings)


def _recon_sources(sources: list) -> list:
    """Recon sources with registered adapters' names or ids replaced by their stored, hash-checked files."""
    reg = open_registry()
    return [s if isinstance(s, dict) or Path(s).exists() else str(reg.adapter_file(reg.get_adapter(s)))
            for s in sources]


def _register_result(reg: Registry, result, settings):
    if result.kind == "hypernet":
        from t2l.checkpoint import read_hypernet_info

        return reg.add_hypernet(result.artifact, name=settings.run.name,
                                **read_hypernet_info(result.artifact).registry_fields())
    from t2l.adapter import read_info

    return reg.add_adapter(result.artifact.read_bytes(), name=settings.run.name, tags=[settings.recipe],
                           **read_info(result.artifact).registry_fields())


# -- task collections and experiments ---------------------------------------------------------------------------


def build_tasks(source_kind: str, out_dir: Path, source: Path | None, max_examples: int, force: bool,
                on_status: Callable[[str], None], on_progress: Callable[[int, int], None],
                descriptions: Path | None = None):
    """Build a task collection from `source_kind` (sni from a folder, with the paper's descriptions from
    `descriptions`; the built-in training sources, several joined with '+'; or the unseen suite, decontaminated
    against every built-in training collection) into `out_dir`; its manifest."""
    from t2l.tasks.collection import check_rebuild, write_collection

    check_rebuild(out_dir, force)  # before the build, which can take minutes
    if descriptions is not None and source_kind != "sni":
        raise T2LError("--descriptions reads the paper's metadata.yaml files for SNI tasks: use it with --from sni")
    if source_kind == "sni":
        from t2l.tasks.sni import build_sni

        if source is None:
            raise T2LError("--from sni needs --source FOLDER with the task JSON files")
        tasks, manifest = build_sni(source, max_examples=max_examples, on_progress=on_progress,
                                    descriptions=descriptions)
    elif source_kind == "unseen":
        from t2l.tasks.unseen import build_unseen, training_tasks

        tasks, manifest = build_unseen(max_examples, training=training_tasks(on_status),
                                       on_progress=on_progress)
    else:
        from t2l.tasks.builtin import build_builtin

        tasks, manifest = build_builtin(source_kind, t2l_home() / "cache", wheel=source, max_examples=max_examples,
                                        on_status=on_status, on_progress=on_progress)
    write_collection(out_dir, tasks, manifest, force=force)
    return manifest


def bench_paper(settings, report: Path | None, findings: Path | None, command: str, on_event):
    """Run (or continue) `t2l bench paper` and write its report and chart; (the tables as markdown with T2L's
    paired differences, the report's path, the chart's path or None without matplotlib)."""
    from t2l.bench.paper import paired, read_results, run_paper
    from t2l.bench.report import bar_chart, tables_markdown, write_report

    tables = run_paper(settings, on_event)
    report = report or settings.out / "results.md"
    chart = bar_chart(tables, settings, report.with_suffix(".png"))
    write_report(tables, settings, report, command, chart, findings.read_text() if findings else "")
    diffs = paired(read_results(settings.out / "results.jsonl"), settings)
    return tables_markdown(tables, settings, diffs), report, chart


def bench_unseen(settings, hypernet: str, mt_lora: str | None, report: Path | None, findings: Path | None,
                 command: str, on_event):
    """Run (or continue) `t2l bench unseen` with a hypernetwork and an mt-lora adapter named as everywhere else
    (registered names or ids, folders, files); (the tables as markdown, the report's path)."""
    from dataclasses import replace

    from t2l.bench.unseen import resolve_suite, run_unseen
    from t2l.bench.unseen_report import markdown, write_report
    from t2l.tasks.collection import read_manifest

    reg = open_registry()
    settings = replace(settings, hypernet=str(reg.hypernet_dir(registered_hypernet(reg, hypernet))),
                       mt_lora=str(_adapter_path(reg, mt_lora)[0]) if mt_lora else None)
    rows = run_unseen(settings, on_event)
    report = report or settings.out / "results.md"
    suite = resolve_suite(settings.suite)
    write_report(settings, rows, suite, report, command, findings.read_text() if findings else "")
    return markdown(rows, read_manifest(suite).build.get("answer_types")), report


# -- publishing -------------------------------------------------------------------------------------------------


def scores_for_card(reg: Registry, adapter_id: str):
    """The newest score of each bench, metric and protocol, for the model card."""
    from t2l.card import Score

    return [Score(e.bench, e.metric, e.value, e.stderr, e.n, e.protocol, e.limit)
            for _, e in sorted(reg.latest_evals(adapter_id).items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1]))]


def _to_publish(reg: Registry, ref: str | None) -> Adapter:
    """The adapter `ref` names, or the newest one."""
    if ref is not None:
        return reg.get_adapter(ref)
    newest = reg.list_adapters()
    if not newest:
        raise T2LError("the registry has no adapters yet; make one with `t2l make DESCRIPTION`")
    return newest[0]


def _card_name(row: Adapter) -> str:
    return row.name or f"t2l-{row.id[:8]}"


def write_hub_folder(ref: str | None, to_dir: Path, repo_id: str | None) -> Path:
    """The Hub-ready folder of an adapter (model card with its scores), written to `to_dir` only."""
    from t2l.publish import hub_folder, validate_repo_id

    reg = open_registry()
    row = _to_publish(reg, ref)
    repo_id = validate_repo_id(repo_id) if repo_id else None
    return hub_folder(reg.adapter_file(row), to_dir, _card_name(row), scores_for_card(reg, row.id), repo_id)


@dataclass
class Upload:
    """A Hub folder staged for upload, with where it would go."""

    adapter: Adapter
    name: str
    repo_id: str
    folder: Path
    files: list[tuple[str, int]]  # (name, bytes), sorted
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
    name = _card_name(row)
    repo_id, user_unknown = (validate_repo_id(repo_id), None) if repo_id else _own_repo(name, dry_run)
    scores = scores_for_card(reg, row.id)
    with tempfile.TemporaryDirectory(prefix="t2l-publish-") as tmp:
        folder = hub_folder(reg.adapter_file(row), Path(tmp) / "repo", name, scores, repo_id)
        yield Upload(row, name, repo_id, folder, [(p.name, p.stat().st_size) for p in sorted(folder.iterdir())],
                     user_unknown)


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
    open_registry().add_publication(staged.adapter.id, repo_id=done.repo_id, commit_sha=done.commit, url=done.url,
                                    private=private)
    return done


# -- imported hypernetworks ---------------------------------------------------------------------------------------


def import_hypernet(path: Path, name: str | None, base: str | None, encoder: str | None,
                    busy: Busy = _idle) -> tuple[object, bool]:
    """Convert the Text-to-LoRA authors' checkpoint at `path` once into a t2l checkpoint and register it (named
    `name`, else after its folder); (the registry row, whether it is new: False when this very conversion, config
    and base included, was registered before, under the row's name). The converted folder is built in a temporary
    folder under the t2l home and copied into the store, so an interrupted import leaves nothing registered."""
    import tempfile

    from t2l.authors import find_checkpoint, import_checkpoint

    reg = open_registry()
    run = find_checkpoint(path).run
    name = name or run.name
    with tempfile.TemporaryDirectory(dir=t2l_home(), prefix=".import-") as tmp:
        with busy(f"converting {path}"):
            info = import_checkpoint(path, Path(tmp) / "hypernet", base=base, encoder=encoder)
        known = {row.id for row in reg.list_hypernets()}
        row = reg.add_hypernet(Path(tmp) / "hypernet", name=name, **info.registry_fields())
        return row, row.id not in known


# -- talking to adapters (t2l run, t2l chat, t2l serve) ---------------------------------------------------------


@dataclass
class Chosen:
    """What a conversation talks to: the bare base (no path, nothing made), an adapter file (stored or not), or one
    made just now and kept in memory only (--no-save)."""

    label: str
    adapter_id: str | None = None
    path: Path | None = None
    made: object = None  # t2l.make.GeneratedAdapter, not stored
    hypernet_id: str | None = None  # of the hypernetwork that made it, when known

    @property
    def is_base(self) -> bool:
        return self.adapter_id is None and self.path is None and self.made is None


def choose_adapter(reg: Registry, ref: str) -> Chosen:
    """'base', an adapter id, name, file or PEFT folder."""
    if ref == "base":
        return Chosen("base")
    path, adapter_id = _adapter_path(reg, ref)
    return chosen_row(reg, reg.get_adapter(adapter_id)) if adapter_id else Chosen(str(path), path=path)


def chosen_row(reg: Registry, row: Adapter) -> Chosen:
    """A registered adapter, its file hash-checked."""
    return Chosen(row.name or row.id[:8], row.id, reg.adapter_file(row), hypernet_id=row.hypernet_id)


class Hypernets:
    """Hypernetworks (with their encoders) loaded once per process, by registry id: a chat or a server makes many
    adapters from the same one."""

    def __init__(self):
        self.loaded: dict[str, object] = {}

    def get(self, reg: Registry, row, base: str | None = None):
        """The t2l.make.Generator of a registered hypernetwork (`base`: checked against the one it was trained for)."""
        from t2l.make import Generator

        if row.id not in self.loaded:
            self.loaded[row.id] = Generator(reg.hypernet_dir(row), base=base)
        return self.loaded[row.id]


def describe_adapter(reg: Registry, hypernets: Hypernets, description: str, hypernet: str, save: bool = True,
                     base: str | None = None, on_warning: Warn = _ignore) -> Chosen:
    """An adapter for `description`: the newest registered one this hypernetwork made from the same words (its
    forward is deterministic, so making it again would give the same bytes), else one made now and registered as
    `t2l make` does, or with `save` False kept in memory only."""
    from dataclasses import replace

    from t2l.make import validate_description

    text = validate_description(description)
    hn_row = registered_hypernet(reg, hypernet)
    label = f"t2l:{text}"
    same = next((r for r in reg.list_adapters() if r.description == text and r.hypernet_id == hn_row.id), None)
    if save and same:
        return replace(chosen_row(reg, same), label=label)
    generator = hypernets.get(reg, hn_row, base)
    if save:
        return replace(chosen_row(reg, make_and_store(reg, generator, hn_row, [text], [None], [], False,
                                                      on_warning)[0]), label=label)
    return Chosen(label, made=generator.make([text], on_warning=on_warning)[0], hypernet_id=hn_row.id)


def base_for(chosen: list[Chosen], base: str | None) -> str:
    """The base model to load: `base` when given, else the one the first t2l adapter among `chosen` was made for."""
    if base:
        return base
    made = next((c.made.info.base_spec for c in chosen if c.made is not None), None)
    return made or _base_of([c for c in chosen if c.path is not None])


def hypernet_base(reg: Registry, hypernet: str) -> str:
    """The base model spec a hypernetwork was trained for, read from its checkpoint without loading it."""
    from t2l.checkpoint import read_hypernet_info

    return read_hypernet_info(reg.hypernet_dir(registered_hypernet(reg, hypernet))).base_spec


def load_chosen(engine, chosen: Chosen):
    """`chosen`'s weights ready for t2l.chat.Engine.generate; None for the base."""
    if chosen.made is not None:
        return engine.adapter(chosen.made.tensors, chosen.made.info.peft_config(), chosen.made.info, chosen.label)
    if chosen.path is not None:
        return engine.adapter_file(chosen.path, chosen.label)
    return None


def save_chosen(reg: Registry, chosen: Chosen, name: str) -> Chosen:
    """Keep `chosen` under `name`: a registered adapter is renamed, an unregistered one stored with that name."""
    from t2l.adapter import read_info, weights_file

    if chosen.is_base:
        raise T2LError("the conversation has no adapter to save; pick one with /adapter NAME or /describe TEXT")
    if chosen.adapter_id:
        row = reg.rename(chosen.adapter_id, name)
    elif chosen.made is not None:
        row = reg.add_adapter(chosen.made.to_bytes(), name=name, hypernet_id=chosen.hypernet_id,
                              **chosen.made.info.registry_fields())
    else:
        info = read_info(chosen.path)
        if info is None:
            raise T2LError(f"{chosen.path} was not made by t2l; the registry keeps only t2l adapters")
        row = reg.add_adapter(weights_file(chosen.path).read_bytes(), name=name, **info.registry_fields())
    return chosen_row(reg, row)


def adapter_page(ref: str) -> dict:
    """adapter_details plus the model card `t2l publish` would write and the scores on it, for the web page."""
    from dataclasses import asdict

    from t2l.adapter import read_info
    from t2l.card import card

    data = adapter_details(ref)
    reg = open_registry()
    row = reg.get_adapter(data["id"])
    scores = scores_for_card(reg, row.id)
    info = read_info(reg.adapter_file(row))
    return data | {"card": card(info, _card_name(row), scores, None) if info else None,
                   "scores": [asdict(s) for s in scores]}


def adapter_download(ref: str) -> tuple[str, Path]:
    """(file name to offer, stored file, hash-checked) of a registered adapter's single-file form."""
    reg = open_registry()
    row = reg.get_adapter(ref)
    return f"{_card_name(row)}.safetensors", reg.adapter_file(row)


def adapter_zip(ref: str) -> tuple[str, bytes]:
    """(file name, bytes) of a stored adapter's PEFT folder as a zip, the folder's name inside it."""
    import io
    import tempfile
    import zipfile

    reg = open_registry()
    name = _card_name(reg.get_adapter(ref))
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="t2l-zip-") as tmp:
        folder = export(ref, Path(tmp) / name, force=False)
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(folder.iterdir()):
                z.write(p, f"{name}/{p.name}")
    return f"{name}.zip", buffer.getvalue()
