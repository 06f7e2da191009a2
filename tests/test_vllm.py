"""t2l inside vLLM for real: `t2l serve --engine vllm` from the vLLM environment (`bash setup.sh --vllm`, which CI
runs) on the embedded base, t2l's LoRA resolver answering for registered adapters and t2l:<description>, through
the official openai client, against t2l's own engine. Marked `integration` and `slow` (vLLM takes minutes to start on
a CPU); two quick tests of the launcher run everywhere."""

import json
import os
import signal
import subprocess
import time
from importlib.util import find_spec
from pathlib import Path

import pytest
from conftest import t2l

from t2l.errors import T2LError
from t2l_cli.server.background import free_port


VLLM_ENV = Path(os.environ.get("T2L_TEST_VLLM_ENV", Path(__file__).parent.parent / ".venv-vllm"))
PROMPTS = ["Good morning! How are you today?", "Name three colours."]
KEY = "test-key-1234"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("vllm-home")


@pytest.fixture(scope="module")
def vllm_url(home, tmp_path_factory):
    """vLLM started by t2l, in a home holding two adapters of the embedded base (and, later, one of another)."""
    if not (VLLM_ENV / "bin" / "t2l").exists():
        pytest.skip(f"no vLLM environment at {VLLM_ENV}: make it with `bash setup.sh --vllm` (CI does)")
    env = os.environ | {"T2L_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for desc, name in [("answer in French", "french"), ("reply with a single number", "number")]:
        subprocess.run([str(VLLM_ENV / "bin" / "t2l"), "make", desc, "--name", name], env=env, check=True)
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-log") / "vllm.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(VLLM_ENV / "bin" / "t2l"), "serve", "--engine", "vllm", "--port", str(port), "--api-key", KEY],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(proc, url, log)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)  # t2l passes it on to vLLM
        try:
            assert proc.wait(60) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)


def _wait(proc, url: str, log: Path, timeout_s: float = 900) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"vLLM exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(2)
    raise AssertionError(f"vLLM did not answer within {timeout_s} s:\n{log.read_text()[-3000:]}")


def _client(url: str, key: str = KEY):
    import openai

    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=600)


def _vllm(client, model: str, prompt: str) -> tuple[str, int]:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=24, temperature=0
    )
    # vLLM counts the end token among the completion's tokens; t2l counts the answer's own
    ended = reply.choices[0].finish_reason == "stop"
    return reply.choices[0].message.content, reply.usage.completion_tokens - ended


def _t2l(model: str, prompt: str) -> tuple[str, int]:
    args = ["--describe", model[len("t2l:") :]] if model.startswith("t2l:") else [model]
    out = json.loads(t2l("run", *args, prompt, "--max-new-tokens", 24, "--temperature", 0, "--json").stdout)
    return out["text"], out["tokens"]


@pytest.mark.skipif(find_spec("vllm") is not None, reason="vLLM is installed in this environment")
def test_engine_vllm_without_vllm_says_how_to_set_it_up():
    result = t2l("serve", "--engine", "vllm", code=1)
    assert "vLLM is not installed" in result.output and "bash setup.sh --vllm" in result.output


def test_engine_vllm_refuses_the_settings_of_t2ls_own_server():
    result = t2l("serve", "--engine", "vllm", "--threads", 2, code=1)
    assert "--threads is a setting of t2l's own server" in result.output


def test_vllm_gets_a_rank_it_accepts_and_the_key_stays_off_its_command_line(tmp_path):
    from t2l_cli.server.vllm_launch import VLLMSettings, command, environment, max_lora_rank

    assert [max_lora_rank(r) for r in (1, 4, 8, 9, 64, 65)] == [8, 8, 8, 16, 64, 128]
    with pytest.raises(T2LError, match="larger than vLLM's largest"):
        max_lora_rank(513)
    settings = VLLMSettings(folder=tmp_path, served_name="b", base_spec="b", hypernet="default", max_rank=12)
    argv, env = command(settings), environment(settings, "secret-key")
    assert argv[argv.index("--max-lora-rank") + 1] == "16" and argv[argv.index("--model") + 1] == str(tmp_path)
    assert "secret-key" not in " ".join(argv) and env["VLLM_API_KEY"] == "secret-key"
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"


@pytest.mark.integration
@pytest.mark.slow
def test_vllm_answers_as_t2l_does_for_the_base_registered_adapters_and_a_description(vllm_url, home, monkeypatch):
    monkeypatch.setenv("T2L_HOME", str(home))
    client = _client(vllm_url)
    served = client.models.list().data[0].id
    answers = {}
    for model in [served, "french", "number", "t2l:reply in the style of a pirate"]:
        for prompt in PROMPTS:
            got = _vllm(client, model, prompt)
            want = _t2l("base" if model == served else model, prompt)
            assert got == want, (model, prompt)  # the same text from the same number of greedy tokens
            answers[model, prompt] = got[0]
    assert _vllm(client, "base", PROMPTS[0])[0] == answers[served, PROMPTS[0]]  # the name t2l's own server takes
    # the adapters change the answers, so agreeing on them means the adapters were applied alike
    assert all(answers[m, p] != answers[served, p] for m in ["french", "number"] for p in PROMPTS)


@pytest.mark.integration
@pytest.mark.slow
def test_a_second_request_for_a_description_makes_nothing_again(vllm_url, home, monkeypatch):
    monkeypatch.setenv("T2L_HOME", str(home))
    client = _client(vllm_url)
    _vllm(client, "t2l:answer with one word", PROMPTS[0])
    rows = json.loads(t2l("ls", "--json").stdout)
    folders = sorted((home / "vllm").iterdir())
    stamps = [p.stat().st_mtime_ns for p in folders]
    # the same words, written differently, name a model vLLM has not seen: t2l's resolver is asked again
    _vllm(client, "t2l:  answer with one word ", PROMPTS[1])
    assert json.loads(t2l("ls", "--json").stdout) == rows
    assert sorted((home / "vllm").iterdir()) == folders and [p.stat().st_mtime_ns for p in folders] == stamps
    assert sum(r["description"] == "answer with one word" for r in rows) == 1


@pytest.mark.integration
@pytest.mark.slow
def test_an_adapter_of_another_base_is_refused_naming_both(vllm_url, home, monkeypatch, hn_path):
    import openai

    monkeypatch.setenv("T2L_HOME", str(home))
    t2l("make", "reply with capital letters only", "--hypernet", hn_path, "--name", "tiny-one")
    with pytest.raises(openai.BadRequestError) as e:
        _vllm(_client(vllm_url), "tiny-one", PROMPTS[0])
    message = str(e.value)
    assert "was made for the base tiny-llama" in message and "smollm2-135m" in message
    with pytest.raises(openai.NotFoundError):
        _vllm(_client(vllm_url), "no-such-adapter", PROMPTS[0])


@pytest.mark.integration
@pytest.mark.slow
def test_vllm_asks_for_the_key(vllm_url):
    import openai

    with pytest.raises(openai.AuthenticationError):
        _vllm(_client(vllm_url, key="wrong"), "french", PROMPTS[0])
