"""`t2l run` and `t2l chat` through Typer's runner, with the tiny base and the tiny trained hypernetwork."""

import json

import pytest
import torch

from conftest import long_sample, t2l


@pytest.fixture
def hn(trained_hypernet):
    return str(trained_hypernet[0])


def run_json(*args, input=None):
    return json.loads(t2l("run", *args, "--json", input=input).stdout)


def test_greedy_answer_through_the_hooks_matches_peft_generate(hn, tiny_base_dir):
    """The adapter applied through BatchedLoRA's hooks and the KV-cache loop give what PEFT's wrapped model and
    transformers' own generate give."""
    from t2l.adapter import load_adapter
    from t2l.base import load_base
    from t2l.chat import transcript
    from t2l_cli.actions.common import open_registry

    got = run_json(
        "--describe", "answer in upper case", "hello", "--hypernet", hn, "--temperature", 0, "--max-new-tokens", 12
    )
    model, tok, _ = load_base(str(tiny_base_dir))
    reg = open_registry()
    peft = load_adapter(model, reg.adapter_file(reg.get_adapter(got["adapter_id"])))
    ids = tok(transcript([{"role": "user", "content": "hello"}]), return_tensors="pt")["input_ids"]
    with torch.no_grad():
        gen = peft.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=12,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
    new = gen[0, ids.shape[1] :].tolist()
    assert got["text"] == tok.decode(new, skip_special_tokens=True)
    assert got["tokens"] == len([t for t in new if t != tok.eos_token_id]) and got["prompt_tokens"] == ids.shape[1]
    assert got["finish_reason"] == ("stop" if tok.eos_token_id in new else "length")
    base = run_json("base", "hello", "--base", tiny_base_dir, "--temperature", 0, "--max-new-tokens", 12)
    assert base["text"] != got["text"] and base["adapter_id"] is None


def test_describe_registers_once_and_no_save_keeps_it_in_memory(hn):
    first = run_json("--describe", "answer in upper case", "hi", "--hypernet", hn, "--max-new-tokens", 5, "--seed", 3)
    again = run_json("--describe", "answer in upper case", "hi", "--hypernet", hn, "--max-new-tokens", 5, "--seed", 3)
    assert first["adapter_id"] and again["adapter_id"] == first["adapter_id"] and again["text"] == first["text"]
    by_name = run_json(first["adapter_id"][:8], "hi", "--max-new-tokens", 5, "--seed", 3)
    assert by_name["text"] == first["text"]
    unsaved = run_json(
        "--describe", "answer in small letters", "hi", "--hypernet", hn, "--no-save", "--max-new-tokens", 5
    )
    assert unsaved["adapter_id"] is None and unsaved["adapter"] == "t2l:answer in small letters"
    assert [r["id"] for r in json.loads(t2l("ls", "--json").stdout)] == [first["adapter_id"]]


def test_streams_to_stdout_reads_stdin_and_compares(hn, tiny_base_dir):
    t2l("make", "answer in upper case", "--hypernet", hn, "--name", "up")
    settings = ["--max-new-tokens", 8, "--seed", 5, "--temperature", 1]
    streamed = t2l("run", "up", "what is this?", *settings).stdout
    assert streamed.rstrip("\n") == run_json("up", "what is this?", *settings)["text"]
    assert run_json("up", "-", *settings, input="what is this?")["text"] == streamed.rstrip("\n")
    raw = run_json("up", "Q: 2+2?\nA:", "--raw", *settings)
    assert raw["prompt_tokens"] == len("Q: 2+2?\nA:")  # the characters alone: no chat template around them
    side = json.loads(t2l("run", "up", "what is this?", *settings, "--compare", "--json").stdout)
    assert side["adapter"]["text"] == streamed.rstrip("\n")
    assert side["base"]["text"] == run_json("base", "what is this?", "--base", tiny_base_dir, *settings)["text"]
    shown = t2l("run", "up", "what is this?", *settings, "--compare").stdout
    assert "base" in shown and "up" in shown


@pytest.mark.parametrize(
    "args, message",
    [
        (["base", "hi", "--max-new-tokens", 999], "exceed the model's context of 256 tokens"),
        (["base", "hi", "--temperature", 3], "temperature must be between 0 and 2"),
        (["nosuch", "hi"], "no adapter named"),
        (["base"], "give a prompt"),
    ],
)
def test_bad_input_is_one_line(tiny_base_dir, args, message):
    assert message in t2l("run", *args, "--base", tiny_base_dir, code=1 if "hi" in args else 2).output


def test_chat_switches_saves_and_answers_as_run_does(hn, tiny_base_dir):
    settings = ["--max-new-tokens", 6, "--seed", 2, "--temperature", 1]
    lines = [
        "/describe answer in upper case",
        "hello",
        "/save shouty",
        "/reset",
        "/base",
        "hello",
        "/adapter nosuch",
        "/reset",
        "/adapter shouty",
        "hello",
        "",
    ]
    result = t2l("chat", "base", "--base", tiny_base_dir, "--hypernet", hn, *settings, input="\n".join(lines))
    adapter = run_json("shouty", "hello", *settings)["text"]
    base = run_json("base", "hello", "--base", tiny_base_dir, *settings)["text"]
    assert result.stdout.splitlines() == [adapter, base, adapter]
    assert "no adapter named or with id 'nosuch'" in result.stderr and "saved as shouty" in result.stderr
    assert json.loads(t2l("show", "shouty", "--json").stdout)["description"] == "answer in upper case"


def test_chat_keeps_the_conversation(tiny_base_dir):
    """The second answer sees the first exchange: it differs from the same question asked afresh."""
    from t2l.base import load_base
    from t2l.chat import Engine, Sampling

    settings = ["--max-new-tokens", 6, "--temperature", 0]
    out = t2l("chat", "base", "--base", tiny_base_dir, *settings, input="hello\nand then?\n").stdout.splitlines()
    model, tok, ref = load_base(str(tiny_base_dir))
    engine = Engine(model, tok, ref)
    history = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": out[0]},
        {"role": "user", "content": "and then?"},
    ]
    assert out[1] == engine.generate(engine.chat_ids(history), Sampling(6, 0)).run().text


def test_closing_a_generation_stops_it_and_frees_the_engine(tiny_base_dir):
    from t2l.base import load_base
    from t2l.chat import Engine, Sampling

    model, tok, ref = load_base(str(tiny_base_dir))
    engine = Engine(model, tok, ref)
    ids = engine.chat_ids([{"role": "user", "content": "hi"}])
    seed, full = long_sample(lambda s: engine.generate(ids, Sampling(50, 1.0, seed=s)).run().text, 6)
    gen = engine.generate(ids, Sampling(50, 1.0, seed=seed))
    pieces = iter(gen)
    seen = next(pieces) + next(pieces)
    pieces.close()  # the row leaves the batch at the next step, and the counts are final when close returns
    assert gen.finish_reason == "interrupted" and 2 <= gen.completion_tokens < 50 and gen.text.startswith(seen)
    assert full.startswith(gen.text) and gen.done.is_set()
    stop_at = full[4:6]
    cut = engine.generate(ids, Sampling(50, 1.0, seed=seed, stop=(stop_at,))).run()
    assert stop_at not in cut.text and cut.finish_reason == "stop"


def test_case_29_chat_save_asks_before_renaming_and_says_what_a_switch_keeps(hn, tiny_base_dir):
    settings = ["--max-new-tokens", 4, "--seed", 2, "--temperature", 1]
    lines = [
        b"/describe answer in upper case",
        b"hello",
        b"/save shouty",
        b"/save loud",
        b"caf\xe9?",
        b"/rename loud",
        b"/adapter loud",
        b"hi",
        b"",
    ]
    result = t2l("chat", "base", "--base", tiny_base_dir, "--hypernet", hn, *settings, input=b"\n".join(lines))
    assert "saved as shouty" in result.stderr and "saved already as shouty" in result.stderr
    assert "/rename loud does that on purpose" in result.stderr and "renamed to loud" in result.stderr
    assert "that line is not UTF-8 text (byte 0xe9 at byte 4)" in result.stderr  # case 1: the chat goes on
    assert "it sees the conversation so far (/reset starts over)" in result.stderr
    assert len(result.stdout.splitlines()) == 2  # 'hello' and 'hi' answered; the bad line was not sent
    assert json.loads(t2l("show", "loud", "--json").stdout)["description"] == "answer in upper case"


def test_case_29_ctrl_c_at_the_chat_prompt_clears_the_line_and_ctrl_d_leaves(tiny_base_dir):
    import os
    import signal
    import subprocess
    import sys
    import time

    env = os.environ | {"PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "t2l_cli",
            "chat",
            "base",
            "--base",
            str(tiny_base_dir),
            "--max-new-tokens",
            "3",
            "--temperature",
            "0",
        ],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        seen = b""
        while b"base> " not in seen:  # waiting at the prompt
            seen += proc.stderr.read1(100)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        while seen.count(b"base> ") < 2:  # the line is cleared and the prompt comes again
            seen += proc.stderr.read1(100)
        out, err = proc.communicate(b"hello\n", timeout=120)  # then a line, then end of input: Ctrl-D
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and b"Traceback" not in err
    assert out.count(b"\n") == 1 and (seen + err).count(b"base> ") == 3  # the prompt, again, a reply, the prompt
