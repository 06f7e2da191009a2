"""`t2l run` and `t2l serve` on the embedded defaults for real (SmolLM2-135M, the shipped hypernetwork). Marked
`integration`."""

import json

import pytest
from typer.testing import CliRunner

from t2l_cli.app import app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    return tmp_path_factory.mktemp("use-integration-home")  # the dequantized base is cached once for the module


@pytest.fixture
def home(shared_home, monkeypatch):
    monkeypatch.setenv("T2L_HOME", str(shared_home))
    return shared_home


def test_a_described_adapter_answers_the_same_from_run_and_from_the_openai_client(home):
    import openai

    from t2l.base import load_base
    from t2l_cli.server.api import create_app
    from t2l_cli.server.background import serving
    from t2l_cli.server.service import ServeSettings, Service

    result = CliRunner().invoke(
        app,
        ["run", "--describe", "answer in French", "Good morning!", "--max-new-tokens", "12", "--seed", "0", "--json"],
    )
    assert result.exit_code == 0, result.output
    ran = json.loads(result.stdout)
    _, tok, _ = load_base()
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "Good morning!"}], add_generation_prompt=True, tokenize=False
    )
    assert ran["prompt_tokens"] == len(tok(chat, add_special_tokens=False)["input_ids"]) and ran["text"].strip()
    with serving(create_app(Service(ServeSettings()))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="t2l:answer in French",
            max_tokens=12,
            seed=0,
            temperature=0.7,
            messages=[{"role": "user", "content": "Good morning!"}],
        )
        assert reply.choices[0].message.content == ran["text"]
        assert [m.id for m in client.models.list().data][1] == ran["adapter_id"]  # made once, by run


def test_ctrl_c_stops_a_chat_reply_and_the_chat_goes_on(home):
    """A real `t2l chat` process on the real base (slow enough to interrupt): SIGINT mid-reply stops the reply, the
    chat carries on with the next line, Ctrl-D (end of input) leaves with status 0."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = os.environ | {"PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "t2l_cli", "chat", "base", "--max-new-tokens", "400", "--temperature", "0"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        # as from a terminal: a shell's background job (`cmd &`) would hand it SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        proc.stdin.write("Tell me a very long story about a dragon.\n")
        proc.stdin.flush()
        first = proc.stdout.read(8)  # the reply has begun
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        proc.stdin.write("/reset\n")
        out, err = proc.communicate(timeout=300)  # closes stdin: Ctrl-D
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert first and "(stopped)" in err and "conversation cleared" in err
    assert "Traceback" not in err


def test_eight_requests_over_four_adapters_answer_as_each_does_alone(home):
    """Continuous batching on the real base: 8 concurrent streamed requests over 3 described adapters and the base,
    through the official client, give token for token (greedy) what each gives alone."""
    import threading

    import openai

    from t2l_cli.server.api import create_app
    from t2l_cli.server.background import serving
    from t2l_cli.server.service import ServeSettings, Service

    models = ["base", "t2l:answer in French", "t2l:answer in upper case letters", "t2l:reply with one word"]
    prompts = [
        "Good morning!",
        "What is the capital of Italy?",
        "Name a colour.",
        "Count to three.",
        "Describe the sea.",
        "Who wrote Hamlet?",
        "Say hello.",
        "What is 2 + 2?",
    ]
    with serving(create_app(Service(ServeSettings()))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)

        def ask(model, prompt, stream=False):
            args = dict(model=model, messages=[{"role": "user", "content": prompt}], max_tokens=24, temperature=0)
            if not stream:
                return client.chat.completions.create(**args).choices[0].message.content
            return "".join(
                c.choices[0].delta.content or ""
                for c in client.chat.completions.create(**args, stream=True)
                if c.choices
            )

        alone = [ask(models[i % 4], p) for i, p in enumerate(prompts)]
        together = [None] * len(prompts)

        def worker(i):
            together[i] = ask(models[i % 4], prompts[i], stream=True)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
    assert together == alone and len(set(alone)) > 4
