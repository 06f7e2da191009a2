"""Recipes, the training loop's resume and distributed equivalence, and the lora/mt-lora recipes, on tiny models."""

import itertools
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import TASKS, t2l, tiny_model

from t2l.errors import T2LError
from t2l.tasks.collection import Manifest, Task, write_collection
from t2l.train.recipe import Recipe, available_recipes, dump_recipe, load_recipe, recipe_path
from t2l.train.run import run_recipe


@pytest.fixture
def collection(tmp_path):
    tasks = [
        Task(name, descs, [(f"question {i}", answer) for i in range(6)]) for name, (descs, answer) in TASKS.items()
    ]
    tasks.append(Task("count", ["count the letters"], [("abc", "3"), ("ab", "2"), ("abcd", "4")]))
    folder = tmp_path / "collection"
    write_collection(folder, tasks, Manifest(name="tiny", source="test", license="MIT"))
    return folder


def tiny_overrides(collection, base, encoder, out, recipe="sft", steps=6):
    return [
        f"base={base}",
        f"encoder={encoder}",
        f"data.tasks={collection}",
        f"run.out={out}",
        f"train.steps={steps}",
        "train.batch_size=4",
        "train.lr=0.003",
        "train.warmup_steps=0",
        "train.max_length=32",
        "run.checkpoint_every=3",
        "data.holdout=1",
        "data.eval_examples=4",
        "hypernet.hidden_dim=16",
        "hypernet.task_dim=8",
        "hypernet.pos_dim=4",
        "lora.rank=2",
    ]


@pytest.mark.parametrize("name", available_recipes())
def test_every_shipped_recipe_loads(name):
    needs = {"lora": ["data.task=some_task"], "recon": ["recon.sources=[a.safetensors]"]}
    recipe = load_recipe(name, needs.get(name, []))
    recipe.check_runnable()
    assert name.startswith(recipe.kind)  # the file names its kind of training (sft-wide is an sft recipe)
    assert recipe.name == name and load_recipe(str(recipe_path(name))).name == name


def test_recipe_files_say_kind_and_old_ones_say_recipe(tmp_path):
    """`recipe:` was the kind's key (users' own files, and the recipe.yaml of runs started before the rename)."""
    old = tmp_path / "mine.yaml"
    old.write_text("recipe: mt-lora\ntrain:\n  steps: 7\n")
    recipe = load_recipe(str(old))
    assert (recipe.kind, recipe.name, recipe.train.steps) == ("mt-lora", "mine", 7)
    assert load_recipe(str(old), ["recipe=sft"]).kind == "sft"  # the old key as an override too
    assert load_recipe(str(recipe_path("sft")), name_from_stem=False).name == "sft"  # unnamed: its kind
    old.write_text("kind: sft\nrecipe: sft\n")
    assert load_recipe(str(old)).kind == "sft"  # both, agreeing
    old.write_text("kind: sft\nrecipe: lora\n")
    with pytest.raises(T2LError) as refused:
        load_recipe(str(old))
    assert "kind: sft" in str(refused.value) and "recipe: lora" in str(refused.value)
    assert "\n" not in str(refused.value)
    with pytest.raises(T2LError, match="run.name=NAME"):
        load_recipe("sft", ["name=mine"])
    dumped = tmp_path / "recipe.yaml"  # a run's recipe.yaml keeps the recipe's name
    dumped.write_text(dump_recipe(load_recipe("sft-wide", ["train.steps=5"])))
    again = load_recipe(str(dumped))
    assert (again.name, again.kind, again.train.steps) == ("sft-wide", "sft", 5) and again.to_dict()["name"]
    assert Recipe(kind="lora").name == "lora"  # built in code: named by its kind


def test_lr_warms_up_to_its_peak_then_decays_to_a_tenth():
    from t2l.train.loop import TrainSettings, lr_at

    s = TrainSettings(steps=160, lr=1e-4, warmup_steps=100)
    lrs = [lr_at(step, s) for step in range(1, 161)]
    assert lrs[49] == pytest.approx(0.5e-4)  # halfway through warmup
    assert max(lrs) == pytest.approx(1e-4) == lrs[99]  # the peak is reached however short the run
    assert lrs[-1] == pytest.approx(1e-5)
    assert all(a >= b for a, b in itertools.pairwise(lrs[99:]))


def test_recipe_errors_name_the_key():
    with pytest.raises(T2LError, match="unknown recipe key train.stepz"):
        load_recipe("sft", ["train.stepz=3"])
    with pytest.raises(T2LError, match="train.steps = 'many' should be int"):
        load_recipe("sft", ["train.steps=many"])
    with pytest.raises(T2LError, match="data.task=NAME"):
        load_recipe("lora").check_runnable()
    with pytest.raises(T2LError, match="unknown recipe 'nope'"):
        load_recipe("nope")
    with pytest.raises(T2LError, match="hypernet.examples_as='pooled': use one of mean, text"):
        load_recipe("sft-examples", ["hypernet.examples_as=pooled"]).check_runnable()


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["train.description_noise=0.5"],
        ["hypernet.examples=2", "train.no_description=0.5", "train.examples_lr_scale=5"],
        ["hypernet.examples=2", "hypernet.examples_as=text", "train.no_description=0.5"],
    ],
    ids=["plain", "noise", "examples", "examples-as-text"],
)
def test_resume_continues_bit_for_bit(extra, collection, tiny_base_dir, tiny_encoder_dir, tmp_path):
    from safetensors.torch import load_file

    def overrides(out):
        return [*tiny_overrides(collection, tiny_base_dir, tiny_encoder_dir, out), *extra]

    straight = run_recipe(load_recipe("sft", overrides(tmp_path / "a")))

    class Interrupt(Exception):
        pass

    def stop_after_checkpoint(kind, payload):
        if kind == "step" and payload.step == 4:
            raise Interrupt  # as if killed: the checkpoint of step 3 is the last one on disk

    recipe = load_recipe("sft", overrides(tmp_path / "b"))
    with pytest.raises(Interrupt):
        run_recipe(recipe, on_event=stop_after_checkpoint)
    assert json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())["step"] == 3
    resumed = run_recipe(recipe, resume=tmp_path / "b")
    assert resumed.steps == straight.steps == 6 and resumed.completed
    a = load_file(straight.artifact / "hypernet.safetensors")
    b = load_file(resumed.artifact / "hypernet.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = [json.loads(line) for line in open(tmp_path / "a" / "metrics.jsonl")]
    assert [m["step"] for m in losses if "loss" in m] == [1, 2, 3, 4, 5, 6]
    heldout = json.loads((straight.artifact / "config.json").read_text())["training"]["heldout_tasks"]
    assert len(heldout) == 1


def test_a_run_copied_to_another_machine_resumes_on_its_collection_only(
    collection, tiny_base_dir, tiny_encoder_dir, tmp_path
):
    """Interrupted here, the run folder and its collection copied elsewhere (the collection under another path):
    resuming there with data.tasks=COPY finishes bit for bit as an uninterrupted packed run; a different collection
    is refused before any step."""
    import shutil

    from safetensors.torch import load_file

    def overrides(out, data=collection):
        return [*tiny_overrides(data, tiny_base_dir, tiny_encoder_dir, out), "train.packing=true"]

    straight = run_recipe(load_recipe("sft", overrides(tmp_path / "a")))

    class Interrupt(Exception):
        pass

    def stop(kind, payload):
        if kind == "step" and payload.step == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_recipe(load_recipe("sft", overrides(tmp_path / "b")), on_event=stop)
    moved, data = tmp_path / "elsewhere" / "run", tmp_path / "elsewhere" / "tasks"
    shutil.copytree(tmp_path / "b", moved)
    shutil.copytree(collection, data)
    shutil.rmtree(tmp_path / "b")
    other = tmp_path / "other"
    write_collection(
        other,
        [Task(n, ["count the letters"], [("abc", "3"), ("ab", "2")]) for n in ("count", "tally")],
        Manifest(name="tiny", source="test", license="MIT"),
    )
    with pytest.raises(T2LError, match="but this run trained on tiny"):
        run_recipe(load_recipe("sft", overrides(moved, other)), resume=moved)
    resumed = run_recipe(load_recipe("sft", overrides(moved, data)), resume=moved)
    assert resumed.completed and resumed.steps == 6
    a, b = load_file(straight.artifact / "hypernet.safetensors"), load_file(resumed.artifact / "hypernet.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_description_noise_perturbs_training_only():
    from conftest import char_tokenizer, tiny_model

    from t2l.config import HypernetConfig
    from t2l.train.data import Example
    from t2l.train.sft import HypernetObjective, build_hypernet

    base = tiny_model()
    hypernet = build_hypernet(base, HypernetConfig(rank=2, embed_dim=8, task_dim=4, pos_dim=4, hidden_dim=16))
    for head in hypernet.heads.values():  # as if trained: the adapter now depends on the description
        torch.nn.init.normal_(head.weight, std=0.1)
    embeddings = [torch.nn.functional.normalize(torch.randn(1, 8), dim=-1)]

    def loss(noise: float, training: bool) -> float:
        objective = HypernetObjective(
            hypernet, base, char_tokenizer(), [Example(0, "question", "answer")], embeddings, 32, noise
        )
        hypernet.train(training)
        try:
            return objective.loss_sum(hypernet, [0], [0])[0].item()
        finally:
            objective.close()

    clean = loss(0.0, True)
    assert loss(1.0, False) == pytest.approx(clean)  # held-out evaluation sees the description as it is
    assert abs(loss(1.0, True) - clean) > 1e-4
    with pytest.raises(T2LError, match="description_noise must be 0 or more"):
        load_recipe("sft", ["train.description_noise=-0.5"])


def test_time_budget_stops_cleanly_with_a_result(collection, tiny_base_dir, tiny_encoder_dir, tmp_path):
    over = tiny_overrides(collection, tiny_base_dir, tiny_encoder_dir, tmp_path / "r", steps=1000)
    result = run_recipe(load_recipe("sft", over + ["run.max_minutes=0.0001"]))
    assert not result.completed and result.steps < 1000
    assert (result.artifact / "hypernet.safetensors").is_file() and (tmp_path / "r" / "checkpoint").is_dir()


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stops_after_the_step_with_a_checkpoint_and_resume_finishes(
    signame, collection, tiny_base_dir, tiny_encoder_dir, tmp_path
):
    import os
    import signal

    sig = getattr(signal, signame)

    def press(kind, payload):
        if kind == "step" and payload.step == 2:
            os.kill(os.getpid(), sig)  # a real signal, delivered to this process's handler

    # as in a terminal (a shell's background job, as CI may be, starts with SIGINT ignored, and t2l keeps it so)
    before = signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    try:
        recipe = load_recipe(
            "sft", tiny_overrides(collection, tiny_base_dir, tiny_encoder_dir, tmp_path / "r", steps=6)
        )
        stopped = run_recipe(recipe, on_event=press)
        assert not stopped.completed and stopped.steps == 2  # checkpoint_every is 3: written on the stop
        assert json.loads((tmp_path / "r" / "checkpoint" / "state.json").read_text())["step"] == 2
        assert signal.getsignal(sig) in (signal.default_int_handler, signal.SIG_DFL)  # the handler is put back
        assert run_recipe(recipe, resume=tmp_path / "r").completed
    finally:
        signal.signal(sig, before)


def test_a_run_started_with_sigint_ignored_keeps_it_ignored(collection, tiny_base_dir, tiny_encoder_dir, tmp_path):
    """`nohup t2l train ... &` from a script: the shell hands it SIGINT ignored, and a stray Ctrl-C must not stop it."""
    import os
    import signal

    def press(kind, payload):
        if kind == "step" and payload.step == 1:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        recipe = load_recipe(
            "sft", tiny_overrides(collection, tiny_base_dir, tiny_encoder_dir, tmp_path / "r", steps=3)
        )
        assert run_recipe(recipe, on_event=press).completed
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("kind", ["mt-lora", "lora"])
def test_lora_recipes_make_loadable_adapters(kind, collection, tiny_base_dir, tiny_encoder_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from t2l.adapter import load_adapter, read_adapter

    over = tiny_overrides(collection, tiny_base_dir, tiny_encoder_dir, tmp_path / "r") + (
        ["data.task=shout"] if kind == "lora" else []
    )
    result = run_recipe(load_recipe(kind, over))
    assert result.kind == "adapter"
    tensors, info, config = read_adapter(result.artifact)
    assert config["r"] == 2 and any(torch.count_nonzero(v) for k, v in tensors.items() if "lora_B" in k)
    if kind == "lora":
        assert info.description == TASKS["shout"][0][0]
    load_adapter(AutoModelForCausalLM.from_pretrained(tiny_base_dir), result.artifact)
    # the run's result folder names the adapter too (what `t2l train` prints, e.g. for `bench unseen --mt-lora`)
    assert read_adapter(result.artifact.parent)[0].keys() == tensors.keys()


def test_cli_train_registers_the_hypernet(collection, tiny_base_dir, tiny_encoder_dir, tmp_path):
    from typer.testing import CliRunner

    from t2l_cli.app import app

    runner = CliRunner()
    over = tiny_overrides(collection, tiny_base_dir, tiny_encoder_dir, tmp_path / "r") + ["run.name=tiny-hn"]
    r = runner.invoke(app, ["train", "--recipe", "sft", *over])
    assert r.exit_code == 0, r.output
    rows = json.loads(runner.invoke(app, ["hypernets", "--json"]).output)
    assert rows[0]["name"] == "tiny-hn" and rows[0]["recipe"] == "sft" and rows[0]["steps"] == 6
    assert rows[0]["final_loss"] > 0 and len(rows[0]["collection_sha256"]) == 64
    r = runner.invoke(app, ["make", "answer in upper case", "--hypernet", "tiny-hn", "--json"])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["recipes", "ls"]).output.count("\n") == len(available_recipes())
    r = runner.invoke(app, ["recipes", "cp", "sft", str(tmp_path / "my.yaml")])
    assert r.exit_code == 0 and load_recipe(str(tmp_path / "my.yaml")).kind == "sft"


@pytest.mark.slow
def test_two_processes_match_one(collection, tiny_base_dir, tiny_encoder_dir, tmp_path):
    """torchrun with 2 CPU processes (gloo) and the same global batch gives the weights one process gives."""
    from safetensors.torch import load_file

    env = os.environ | {"OMP_NUM_THREADS": "1"}
    results = {}
    for n in (1, 2):
        over = tiny_overrides(collection, tiny_base_dir, tiny_encoder_dir, tmp_path / f"run{n}")
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            str(n),
            "--master-port",
            str(29500 + n + os.getpid() % 1000),
            "-m",
            "t2l_cli",
            "train",
            "--recipe",
            "sft",
            *over,
        ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        results[n] = load_file(tmp_path / f"run{n}" / "result" / "hypernet.safetensors")
    for k in results[1]:
        torch.testing.assert_close(results[1][k], results[2][k], rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(results[1][k], torch.zeros_like(results[1][k])) for k in results[1] if "heads" in k)


def test_recon_learns_to_reproduce_a_lora_library(trained_hypernet, tiny_base_dir, tiny_encoder_dir, tmp_path):
    from typer.testing import CliRunner

    from t2l_cli.app import app

    runner = CliRunner()
    for i, desc in enumerate(["answer in upper case", "answer in small letters", "count the letters"]):
        r = runner.invoke(app, ["make", desc, "--hypernet", str(trained_hypernet[0]), "--name", f"src{i}"])
        assert r.exit_code == 0, r.output
    over = [
        f"base={tiny_base_dir}",
        f"encoder={tiny_encoder_dir}",
        "recon.sources=[src0, src1, src2]",
        "lora.rank=4",
        "lora.alpha=8",
        "lora.target_modules=[q_proj, v_proj, o_proj, down_proj]",
        "hypernet.hidden_dim=32",
        "hypernet.task_dim=16",
        "hypernet.pos_dim=8",
        "train.steps=40",
        "train.lr=0.003",
        "train.batch_size=3",
        "train.warmup_steps=0",
        f"run.out={tmp_path / 'recon'}",
        "run.checkpoint_every=20",
        "run.name=recon-hn",
    ]
    r = runner.invoke(app, ["train", "--recipe", "recon", *over])
    assert r.exit_code == 0, r.output
    losses = [json.loads(line)["loss"] for line in open(tmp_path / "recon" / "metrics.jsonl")]
    assert losses[-1] < 0.3 * losses[0]
    assert json.loads(runner.invoke(app, ["hypernets", "--json"]).output)[0]["recipe"] == "recon"


def test_preparation_says_each_step_and_a_resume_reads_the_embeddings_it_encoded(
    collection, tiny_base_dir, tiny_encoder_dir, tmp_path
):
    from safetensors import safe_open

    from t2l.train.run import EMBEDDINGS

    statuses = []
    on_event = lambda kind, payload: statuses.append(payload) if kind in ("status", "progress") else None  # noqa: E731
    recipe = load_recipe("sft", tiny_overrides(collection, tiny_base_dir, tiny_encoder_dir, tmp_path / "r", steps=2))
    run_recipe(recipe, on_event=on_event)
    assert statuses[statuses.index("encoding 5 descriptions") + 1] == (5, 5)  # how far, chunk by chunk (#26 case 27)
    statuses = [s for s in statuses if isinstance(s, str)]
    steps = [
        "reading the task collection",
        "loading base model",
        "loading the description encoder",
        "encoding 5 descriptions",
        "building the hypernetwork",
    ]
    first = [next((i for i, s in enumerate(statuses) if s.startswith(step)), None) for step in steps]
    assert None not in first and first == sorted(first), statuses
    with safe_open(tmp_path / "r" / EMBEDDINGS, "pt") as f:
        assert set(f.metadata()) == {"encoder_sha256", "pooling", "texts_sha256"}
    statuses.clear()
    recipe.train.steps = 3
    assert run_recipe(recipe, resume=tmp_path / "r", on_event=on_event).steps == 3
    assert "reading the 5 description embeddings of this run" in statuses
    assert not any(s.startswith("encoding") for s in statuses if isinstance(s, str))


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.steps=-5", "train.steps"),
        ("train.batch_size=0", "train.batch_size"),
        ("train.lr=0", "train.lr"),
        ("lora.rank=0", "lora.rank"),
        ("run.checkpoint_every=0", "run.checkpoint_every"),
        ("train.warmup_steps=-1", "train.warmup_steps"),
        ("lora.dropout=1.5", "lora.dropout"),
        ("run.dtype=float16", "run.dtype"),
    ],
)
def test_train_refuses_impossible_values_before_building_anything(
    override, key, collection, tiny_base_dir, tiny_encoder_dir, tmp_path
):
    from typer.testing import CliRunner

    from t2l_cli.app import app

    over = tiny_overrides(collection, tiny_base_dir, tiny_encoder_dir, tmp_path / "r") + [override]
    r = CliRunner().invoke(app, ["train", *over])
    assert r.exit_code == 1 and f"error: recipe key {key} = " in r.output, r.output
    assert not (tmp_path / "r").exists()
    assert CliRunner().invoke(app, ["hypernets", "--json"]).output.strip() == "[]"


def test_building_a_lora_shows_the_user_no_library_deprecation_warning():
    import warnings

    from t2l.train.lora import build_lora

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # peft reading a deprecated transformers alias warned here
        build_lora(tiny_model(), 2, 4.0, 0.0, ["q_proj"])


def test_resume_without_train_steps_keeps_the_runs_own_budget(collection, tiny_base_dir, tiny_encoder_dir, tmp_path):
    """`t2l train --resume RUN` took the shipped recipe's train.steps (2000 for sft) and wrote it into RUN's
    recipe.yaml; the run's own budget holds unless train.steps= is given."""
    run = tmp_path / "run"
    first = json.loads(
        t2l("train", *tiny_overrides(collection, tiny_base_dir, tiny_encoder_dir, run, steps=3), "--json").stdout
    )
    assert first["steps"] == 3 and first["completed"]
    again = json.loads(t2l("train", "--resume", run, "--json").stdout)
    assert again["steps"] == 3 and again["completed"]
    assert load_recipe(str(run / "recipe.yaml")).train.steps == 3
    more = json.loads(t2l("train", "--resume", run, "train.steps=4", "--json").stdout)
    assert more["steps"] == 4 and load_recipe(str(run / "recipe.yaml")).train.steps == 4


def test_a_resumed_run_registers_under_its_own_recipe(collection, tiny_base_dir, tiny_encoder_dir, tmp_path):
    """`t2l train --resume RUN` took the tag of what it registered from the --recipe default (sft), so a resumed
    mt-lora run's adapter was tagged sft; it is tagged with the kind that ran."""
    run = tmp_path / "run"
    over = tiny_overrides(collection, tiny_base_dir, tiny_encoder_dir, run, steps=3) + ["run.name=mine"]
    first = json.loads(t2l("train", "--recipe", "mt-lora", *over, "--json").stdout)
    again = json.loads(t2l("train", "--resume", run, "train.steps=4", "--json").stdout)
    assert (first["kind"], again["kind"], again["steps"]) == ("adapter", "adapter", 4)
    rows = {r["id"]: r for r in json.loads(t2l("ls", "--json").stdout)}
    assert rows[again["id"]]["tags"] == ["mt-lora"] and rows[again["id"]]["name"] is None
    assert rows[first["id"]]["name"] == "mine"  # the first sitting's adapter keeps the name it registered under


def test_the_loops_own_refusals_are_t2l_errors_with_a_fix(collection, tiny_base_dir, tiny_encoder_dir, tmp_path):
    """Holding every task out was ValueError, which the CLI reports as a bug in t2l; it is one line with the fix."""
    over = tiny_overrides(collection, tiny_base_dir, tiny_encoder_dir, tmp_path / "r")
    result = t2l("train", *over, "data.holdout=3", code=1)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: no training examples left after holding tasks out")
    assert "lower data.holdout" in lines[-1] and "bug" not in result.output
    for key in ("train.description_noise=-1", "train.no_description=1"):
        with pytest.raises(T2LError, match=f"set .*{key.split('=')[0]}="):
            load_recipe("sft", [key])


def test_a_run_records_its_recipes_name_and_kind_and_a_resume_keeps_them(
    collection, tiny_base_dir, tiny_encoder_dir, tmp_path, t2l_home
):
    """sft-wide is an sft recipe: its result's training says both, its run folder is named after it, and so does a
    resumed run's; a run started before runs recorded the name (recipe.yaml with `recipe: sft`) resumes as its kind."""
    over = [
        o
        for o in tiny_overrides(collection, tiny_base_dir, tiny_encoder_dir, None, steps=2)
        if not o.startswith("run.out=")
    ]
    result = run_recipe(load_recipe("sft-wide", over))
    assert result.out.parent == t2l_home / "runs" and result.out.name.startswith("sft-wide-")

    def training():
        return json.loads((result.artifact / "config.json").read_text())["training"]

    assert (training()["recipe"], training()["kind"], training()["settings"]["name"]) == ("sft-wide", "sft", "sft-wide")
    assert run_recipe(load_recipe("sft", ["train.steps=3"]), resume=result.out).steps == 3
    assert (training()["recipe"], training()["kind"], training()["steps"]) == ("sft-wide", "sft", 3)
    saved = result.out / "recipe.yaml"
    saved.write_text(
        "".join(
            line.replace("kind: sft", "recipe: sft")
            for line in saved.read_text().splitlines(True)
            if not line.startswith("name:")
        )
    )
    assert run_recipe(load_recipe("sft", ["train.steps=4"]), resume=result.out).steps == 4
    assert (training()["recipe"], training()["kind"], training()["steps"]) == ("sft", "sft", 4)
