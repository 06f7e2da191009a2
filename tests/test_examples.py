"""Adapters from a description and a few examples: the sampler's draws, the warm start from a description-only
hypernetwork, and Generator.make with examples, on tiny models."""

import json

import pytest
import torch

from t2l.errors import T2LError
from t2l.examples import Shot, examples_sha256, read_examples

SHOTS = [Shot("hello there", "HELLO THERE"), Shot("good day", "GOOD DAY")]


def test_the_sampler_conditions_each_draw_on_other_examples_of_its_task_only():
    from t2l.train.loop import Sampler

    tasks = [0] * 5 + [1] * 3 + [-1] * 4 + [2]  # task 2 has one example: nothing to condition on
    sampler = Sampler(tasks, [2, 2, 1], shots=3, no_description=0.5, pool=4)
    rows, descs, shots = sampler.draw(torch.Generator().manual_seed(0), 400)
    assert all(r not in s and all(tasks[x] == tasks[r] for x in s) and len(s) <= 3 and len(set(s)) == len(s)
               for r, s in zip(rows, shots))
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
    """The tiny trained hypernetwork warm-started into one that reads up to 3 examples, its examples' map then set
    as if trained, saved as a checkpoint."""
    from t2l.checkpoint import load_hypernet, save_hypernet
    from t2l.hypernet import HyperLoRA
    from t2l.train.run import warm_start

    source, info = load_hypernet(trained_hypernet[0])
    info.config.examples = 3
    hn = HyperLoRA(info.config, info.targets)
    warm_start(hn, str(trained_hypernet[0]))
    emb = torch.randn(2, info.config.embed_dim)
    for got, want in zip(hn(emb, torch.randn(2, info.config.embed_dim)).values(), source(emb).values()):
        torch.testing.assert_close(got, want)  # a zero map: the same adapters whatever the examples
    torch.nn.init.normal_(hn.example_encoder.weight, std=0.5)
    folder = tmp_path / "examples-hypernet"
    save_hypernet(hn, folder, base=info.base, base_spec=info.base_spec, encoder=info.encoder,
                  encoder_spec=info.encoder_spec, pooling=info.pooling, training=info.training)
    return folder


def test_adapters_follow_their_examples_and_record_them(examples_hypernet, trained_hypernet):
    from t2l.make import Generator

    gen = Generator(examples_hypernet)
    words, = gen.make(["answer in upper case"])
    both, = gen.make(["answer in upper case"], examples=SHOTS)
    alone, = gen.make([], examples=SHOTS)
    old, = Generator(trained_hypernet[0]).make(["answer in upper case"])
    assert all(torch.equal(words.tensors[k], old.tensors[k]) for k in old.tensors)  # no examples: as before
    key = next(k for k in both.tensors if "lora_B" in k)
    assert not torch.equal(both.tensors[key], words.tensors[key])
    assert not torch.equal(alone.tensors[key], both.tensors[key])
    assert both.info.examples == {"count": 2, "sha256": examples_sha256(SHOTS)} and alone.info.description == ""
    assert "examples" not in words.info.to_json()  # words alone: the adapter's bytes are what they always were
    with pytest.raises(T2LError, match="trained with at most 3: give 3 or fewer"):
        gen.make(["x"], examples=SHOTS * 2)
    with pytest.raises(T2LError, match="reads descriptions only"):
        Generator(trained_hypernet[0]).make(["x"], examples=SHOTS)


def test_an_examples_file_is_checked_line_by_line(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"input": s.input, "output": s.output}) + "\n\n" for s in SHOTS))
    assert read_examples(good) == SHOTS
    cases = {'{"input": "a"}\n': "example 1 has no string 'output'", '["a", "b"]\n': "is a JSON list",
             '{"input": "a", "output": "b"}\n{oops\n': "line 2 is not JSON", "\n\n": "holds no examples",
             '{"input": " ", "output": "b"}\n': "empty input"}
    for text, message in cases.items():
        (bad := tmp_path / "bad.jsonl").write_text(text)
        with pytest.raises(T2LError, match=message):
            read_examples(bad)
    (bad := tmp_path / "latin1.jsonl").write_bytes(b'{"input": "caf\xe9", "output": "x"}\n')
    with pytest.raises(T2LError, match="not UTF-8"):
        read_examples(bad)


def test_make_with_examples_registers_and_shows_them(examples_hypernet, tmp_path):
    from conftest import t2l

    from t2l.adapter import read_info
    from t2l.card import card

    shots = tmp_path / "shots.jsonl"
    shots.write_text("".join(json.dumps({"input": s.input, "output": s.output}) + "\n" for s in SHOTS))
    made = json.loads(t2l("make", "answer in upper case", "--examples", shots, "--hypernet", examples_hypernet,
                          "-o", tmp_path / "up.safetensors", "--json").stdout)[0]
    assert made["examples_count"] == 2 and made["examples_sha256"] == examples_sha256(SHOTS)
    shown = json.loads(t2l("show", "up", "--json").stdout)
    assert shown["examples_count"] == 2 and shown["examples_sha256"] == examples_sha256(SHOTS)
    alone = json.loads(t2l("make", "--examples", shots, "--hypernet", examples_hypernet, "--name", "shots",
                           "--json").stdout)[0]
    assert alone["description"] == "" and alone["examples_count"] == 2
    info = read_info(tmp_path / "up.safetensors")
    assert "a task description and 2 input/output examples" in card(info, "up", [], None)
    words = json.loads(t2l("make", "answer in upper case", "--hypernet", examples_hypernet, "--json").stdout)[0]
    assert words["examples_count"] == 0 and words["examples_sha256"] is None
    assert "reads descriptions only" in t2l("make", "x", "--examples", shots, code=1).output
