"""Adapters from a description and a few examples: the sampler's draws, the warm start from a description-only
hypernetwork, and AdapterMaker.make with examples, on tiny models."""

import json

import httpx
import pytest
import torch
from conftest import make_examples_hypernet, t2l

from t2l.errors import T2LError
from t2l.examples import Shot, examples_sha256, read_examples

SHOTS = [Shot("hello there", "HELLO THERE"), Shot("good day", "GOOD DAY")]


def test_the_sampler_conditions_each_draw_on_other_examples_of_its_task_only():
    from t2l.train.loop import Sampler

    tasks = [0] * 5 + [1] * 3 + [-1] * 4 + [2]  # task 2 has one example: nothing to condition on
    sampler = Sampler(tasks, [2, 2, 1], shots=3, no_description=0.5, pool=4)
    rows, descs, shots = sampler.draw(torch.Generator().manual_seed(0), 400)
    assert all(
        r not in s and all(tasks[x] == tasks[r] for x in s) and len(s) <= 3 and len(set(s)) == len(s)
        for r, s in zip(rows, shots)
    )
    assert all(s == [] for r, s in zip(rows, shots) if tasks[r] == 2)
    assert {len(s) for r, s in zip(rows, shots) if tasks[r] == 0} == {0, 1, 2, 3}
    assert all(x < 4 for r, s in zip(rows, shots) if tasks[r] == 0 for x in s)  # task 0's first 4 are its pool
    dropped = [d == -1 for d, s in zip(descs, shots) if s]
    assert 0.3 < sum(dropped) / len(dropped) < 0.7 and all(d >= 0 for d, s in zip(descs, shots) if not s)
    plain = Sampler(tasks, [2, 2, 1])  # without examples the random stream is the one runs always drew
    got = plain.draw(torch.Generator().manual_seed(0), 50)
    assert got[2] == [[]] * 50 and got[:2] == Sampler(tasks, [2, 2, 1]).draw(torch.Generator().manual_seed(0), 50)[:2]


@pytest.fixture
def examples_hypernet(trained_hypernet, tmp_path):
    """The tiny trained hypernetwork made to read up to 3 examples (conftest.make_examples_hypernet)."""
    return make_examples_hypernet(trained_hypernet[0], tmp_path / "examples-hypernet")


def test_adapters_follow_their_examples_and_record_them(examples_hypernet, trained_hypernet):
    from t2l.make import AdapterMaker

    maker = AdapterMaker(examples_hypernet)
    (words,) = maker.make(["answer in upper case"])
    (both,) = maker.make(["answer in upper case"], examples=SHOTS)
    (alone,) = maker.make([], examples=SHOTS)
    (old,) = AdapterMaker(trained_hypernet[0]).make(["answer in upper case"])
    assert all(torch.equal(words.tensors[k], old.tensors[k]) for k in old.tensors)  # no examples: as before
    key = next(k for k in both.tensors if "lora_B" in k)
    assert not torch.equal(both.tensors[key], words.tensors[key])
    assert not torch.equal(alone.tensors[key], both.tensors[key])
    assert both.info.examples == {"count": 2, "sha256": examples_sha256(SHOTS)} and alone.info.description == ""
    assert "examples" not in words.info.to_json()  # words alone: the adapter's bytes are what they always were
    with pytest.raises(T2LError, match="trained with at most 3: give 3 or fewer"):
        maker.make(["x"], examples=SHOTS * 2)
    with pytest.raises(T2LError, match="reads descriptions only"):
        AdapterMaker(trained_hypernet[0]).make(["x"], examples=SHOTS)


def test_a_text_hypernetwork_reads_the_description_and_examples_as_one_text(trained_hypernet, tmp_path):
    """examples_as "text": no weights of its own (the description-only hypernetwork's, as a warm start leaves them),
    so an adapter is the one the description-only hypernetwork makes from the joint text's embedding."""
    from t2l.examples import conditioning_text
    from t2l.make import AdapterMaker

    make_examples_hypernet(trained_hypernet[0], tmp_path / "text", examples_as="text")
    assert json.loads((tmp_path / "text" / "config.json").read_text())["hypernet"]["examples_as"] == "text"
    maker, plain = AdapterMaker(tmp_path / "text"), AdapterMaker(trained_hypernet[0])
    assert maker.max_examples == 3
    (words,) = maker.make(["answer in upper case"])
    (both,) = maker.make(["answer in upper case"], examples=SHOTS)
    (alone,) = maker.make([], examples=SHOTS)
    (old,) = plain.make(["answer in upper case"])
    (as_text,) = plain.make([conditioning_text("answer in upper case", SHOTS)])
    (shots_text,) = plain.make([conditioning_text("", SHOTS)])
    assert (
        conditioning_text("", SHOTS) == "Input: hello there\nOutput: HELLO THERE\n\nInput: good day\nOutput: GOOD DAY"
    )
    for got, want in ((words, old), (both, as_text), (alone, shots_text)):
        assert all(torch.equal(got.tensors[k], want.tensors[k]) for k in want.tensors)
    assert both.info.examples == {"count": 2, "sha256": examples_sha256(SHOTS)} and alone.info.description == ""
    warned = []
    maker.make(["answer in upper case"], examples=[Shot("word " * 300, "x")], on_warning=warned.append)
    assert warned and warned[0].startswith("description 1 and the examples are longer than the encoder's")


def test_an_examples_file_is_checked_line_by_line(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"input": s.input, "output": s.output}) + "\n\n" for s in SHOTS))
    assert read_examples(good) == SHOTS
    cases = {
        '{"input": "a"}\n': "example 1 has no string 'output'",
        '["a", "b"]\n': "is a JSON list",
        '{"input": "a", "output": "b"}\n{oops\n': "line 2 is not JSON",
        "\n\n": "holds no examples",
        '{"input": " ", "output": "b"}\n': "empty input",
    }
    for text, message in cases.items():
        (bad := tmp_path / "bad.jsonl").write_text(text)
        with pytest.raises(T2LError, match=message):
            read_examples(bad)
    (bad := tmp_path / "latin1.jsonl").write_bytes(b'{"input": "caf\xe9", "output": "x"}\n')
    with pytest.raises(T2LError, match="not UTF-8"):
        read_examples(bad)


def test_make_with_examples_registers_and_shows_them(examples_hypernet, tmp_path):

    from t2l.adapter import read_info
    from t2l.card import card

    shots = tmp_path / "shots.jsonl"
    shots.write_text("".join(json.dumps({"input": s.input, "output": s.output}) + "\n" for s in SHOTS))
    made = json.loads(
        t2l(
            "make",
            "answer in upper case",
            "--examples",
            shots,
            "--hypernet",
            examples_hypernet,
            "-o",
            tmp_path / "up.safetensors",
            "--json",
        ).stdout
    )[0]
    assert made["examples_count"] == 2 and made["examples_sha256"] == examples_sha256(SHOTS)
    shown = json.loads(t2l("show", "up", "--json").stdout)
    assert shown["examples_count"] == 2 and shown["examples_sha256"] == examples_sha256(SHOTS)
    alone = json.loads(
        t2l("make", "--examples", shots, "--hypernet", examples_hypernet, "--name", "shots", "--json").stdout
    )[0]
    assert alone["description"] == "" and alone["examples_count"] == 2
    info = read_info(tmp_path / "up.safetensors")
    assert "a task description and 2 input/output examples" in card(info, "up", [], None)
    words = json.loads(t2l("make", "answer in upper case", "--hypernet", examples_hypernet, "--json").stdout)[0]
    assert words["examples_count"] == 0 and words["examples_sha256"] is None
    assert "reads descriptions only" in t2l("make", "x", "--examples", shots, code=1).output


def shots_file(folder, shots=SHOTS, name="shots.jsonl"):
    path = folder / name
    path.write_text("".join(json.dumps({"input": s.input, "output": s.output}) + "\n" for s in shots))
    return path


def test_run_with_examples_reuses_only_an_adapter_of_the_same_examples(examples_hypernet, trained_hypernet, tmp_path):
    """`t2l run --describe D --examples F` makes (once) the adapter of D and F: never the one of D alone, nor of D
    and other examples, and the one of D alone is never taken for it either."""

    shots, one = shots_file(tmp_path), shots_file(tmp_path, SHOTS[:1], "one.jsonl")
    sampling = ["--hypernet", examples_hypernet, "--max-new-tokens", 6, "--seed", 1, "--temperature", 1]

    def run(*args):
        return json.loads(t2l("run", *args, "hi", *sampling, "--json").stdout)

    words = run("--describe", "answer in upper case")
    both = run("--describe", "answer in upper case", "--examples", shots)
    assert both["adapter_id"] != words["adapter_id"] and both["adapter"] == "t2l:answer in upper case + 2 examples"
    assert run("--describe", "answer in upper case", "--examples", shots)["adapter_id"] == both["adapter_id"]
    assert run("--describe", "answer in upper case")["adapter_id"] == words["adapter_id"]
    assert run("--describe", "answer in upper case", "--examples", one)["adapter_id"] not in (
        words["adapter_id"],
        both["adapter_id"],
    )
    shown = json.loads(t2l("show", both["adapter_id"], "--json").stdout)
    assert shown["examples_count"] == 2 and shown["examples_sha256"] == examples_sha256(SHOTS)
    alone = run("--examples", shots)  # the one argument is the prompt
    assert alone["adapter"] == "t2l:(2 examples)" and run("--examples", shots)["adapter_id"] == alone["adapter_id"]
    assert json.loads(t2l("show", alone["adapter_id"], "--json").stdout)["description"] == ""
    unsaved = run("--describe", "answer in upper case", "--examples", shots, "--no-save")
    assert unsaved["adapter_id"] is None and unsaved["text"] == both["text"]
    assert len(json.loads(t2l("ls", "--json").stdout)) == 4
    refused = t2l("run", "--describe", "x", "--examples", shots, "hi", "--hypernet", trained_hypernet[0], code=1)
    assert "reads descriptions only" in refused.output and "sft-examples" in refused.output
    assert "not both" in t2l("run", "base", "hi", "--examples", shots, code=2).output


def test_chat_takes_examples_and_the_examples_command(examples_hypernet, tiny_base_dir, tmp_path):

    shots = shots_file(tmp_path)

    def run(*args, seed):
        return json.loads(
            t2l(
                "run",
                *args,
                "hello",
                "--hypernet",
                examples_hypernet,
                "--max-new-tokens",
                6,
                "--seed",
                seed,
                "--temperature",
                1,
                "--json",
            ).stdout
        )["text"]

    for seed in range(2, 12):  # a seed at which the three adapters answer apart, else the comparisons prove nothing
        words, both = (
            run("--describe", "answer in upper case", seed=seed),
            run("--describe", "answer in upper case", "--examples", shots, seed=seed),
        )
        alone = run("--examples", shots, seed=seed)
        if len({words, both, alone}) == 3:
            break
    else:
        raise AssertionError("no seed from 2 to 11 told the three adapters' answers apart")
    sampling = ["--hypernet", examples_hypernet, "--max-new-tokens", 6, "--seed", seed, "--temperature", 1]
    lines = [
        "/describe answer in upper case",
        "hello",
        f"/examples {shots}",
        "/reset",
        "hello",
        "/save withshots",
        "/examples off",
        "/reset",
        "hello",
        f"/examples {tmp_path / 'nosuch.jsonl'}",
        "/reset",
        "hello",
        "",
    ]
    result = t2l("chat", "base", "--base", tiny_base_dir, *sampling, input="\n".join(lines))
    assert result.stdout.splitlines() == [words, both, words, words]
    assert "t2l:answer in upper case + 2 examples" in result.stderr and "cannot read examples" in result.stderr
    assert json.loads(t2l("show", "withshots", "--json").stdout)["examples_count"] == 2
    started = t2l(
        "chat", "--examples", shots, *sampling, input="hello\n/describe answer in upper case\n/reset\nhello\n"
    )
    assert started.stdout.splitlines() == [alone, both]  # /describe keeps the conversation's examples
    assert "talking to t2l:(2 examples)" in started.stderr
    assert (
        "/describe TEXT first"
        in t2l("chat", "base", "--base", tiny_base_dir, *sampling, input="/examples off\n").stderr
    )


ROWS = [{"input": s.input, "output": s.output} for s in SHOTS]


@pytest.fixture
def examples_url(examples_hypernet, tiny_base_dir):
    """A live `t2l serve` over the tiny base and the hypernetwork that reads up to 3 examples."""
    from t2l_cli.server.api import create_app
    from t2l_cli.server.background import serving
    from t2l_cli.server.service import ServeSettings, Service

    with serving(create_app(Service(ServeSettings(base=str(tiny_base_dir), hypernet=str(examples_hypernet))))) as url:
        yield url


def test_serve_makes_described_models_from_examples_in_the_request(examples_url, examples_hypernet, tmp_path):
    """t2l:<description> with t2l_examples (OpenAI's client: extra_body) answers as `t2l run --describe D
    --examples F` does; the words alone, the examples alone (`t2l:`) and the two together are three adapters, each
    made once; POST /v1/adapters takes examples too."""
    import openai

    client = openai.OpenAI(base_url=f"{examples_url}/v1", api_key="unused", max_retries=0)
    shots = shots_file(tmp_path)

    def ask(model, **extra):
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=8, temperature=1.0, seed=11, **extra
        )
        return reply.choices[0].message.content

    def run(*args):
        return json.loads(
            t2l(
                "run",
                *args,
                "hi",
                "--hypernet",
                examples_hypernet,
                "--max-new-tokens",
                8,
                "--temperature",
                1,
                "--seed",
                11,
                "--json",
            ).stdout
        )

    both = ask("t2l:answer in upper case", extra_body={"t2l_examples": ROWS})
    words = ask("t2l:answer in upper case")
    alone = ask("t2l:", extra_body={"t2l_examples": ROWS})
    assert ask("t2l:answer in upper case", extra_body={"t2l_examples": ROWS}) == both
    rows = json.loads(t2l("ls", "--json").stdout)
    assert sorted((r["description"], r["examples_count"]) for r in rows) == [
        ("", 2),
        ("answer in upper case", 0),
        ("answer in upper case", 2),
    ]
    ran = run("--describe", "answer in upper case", "--examples", shots)
    assert ran["text"] == both and ran["adapter_id"] in [r["id"] for r in rows]  # the server's adapter, reused
    assert run("--describe", "answer in upper case")["text"] == words and run("--examples", shots)["text"] == alone
    made = httpx.post(f"{examples_url}/v1/adapters", json={"examples": ROWS, "name": "shots"}, timeout=60)
    assert made.status_code == 201
    assert made.json()["examples_count"] == 2 and made.json()["examples_sha256"] == examples_sha256(SHOTS)
    assert made.json()["name"] == "shots" and made.json()["id"] == next(r["id"] for r in rows if not r["description"])


def error_of(response) -> dict:
    assert response.status_code == 400, response.text
    return response.json()["error"]


CHAT = {"model": "t2l:answer in upper case", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.mark.parametrize(
    "examples, says",
    [
        ("hello", "Input should be a valid list"),
        ([{"input": "a"}], "example 1 has no string 'output'"),
        ([{"input": "a", "output": 5}], "example 1 has no string 'output'"),
        (["a"], "example 1 is a JSON str, not an object"),
        ([{"input": "a", "output": " "}], "example 1 has an empty output"),
        ([{"input": "a" * 2001, "output": "b"}], "longer than 2000 characters"),
        (ROWS * 2, "4 examples given; this server's hypernetwork was trained with at most 3"),
        (ROWS * 40, "at most 64 items"),
    ],
)
def test_bad_examples_are_a_400_naming_the_field(examples_url, examples, says):
    got = error_of(
        httpx.post(f"{examples_url}/v1/chat/completions", json=CHAT | {"t2l_examples": examples}, timeout=60)
    )
    assert got["param"].startswith("t2l_examples") and says in got["message"]
    made = error_of(
        httpx.post(f"{examples_url}/v1/adapters", json={"description": "x", "examples": examples}, timeout=60)
    )
    assert made["param"].startswith("examples") and says in made["message"]


def test_examples_need_a_described_model_and_a_hypernetwork_that_reads_them(examples_url, serve_url):

    got = error_of(
        httpx.post(f"{examples_url}/v1/completions", json={"model": "base", "prompt": "hi", "t2l_examples": ROWS})
    )
    assert got["param"] == "t2l_examples" and "t2l:<description> model" in got["message"]
    got = error_of(httpx.post(f"{serve_url}/v1/chat/completions", json=CHAT | {"t2l_examples": ROWS}, timeout=60))
    assert got["param"] == "t2l_examples" and "reads descriptions only" in got["message"]
    assert "--hypernet" in got["message"]
    got = error_of(httpx.post(f"{serve_url}/v1/adapters", json={"examples": ROWS}, timeout=60))
    assert got["param"] == "examples" and "reads descriptions only" in got["message"]
    assert "empty description" in error_of(httpx.post(f"{examples_url}/v1/adapters", json={}))["message"]
    assert json.loads(t2l("ls", "--json").stdout) == []  # nothing was made
