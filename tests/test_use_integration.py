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

    result = CliRunner().invoke(app, ["run", "--describe", "answer in French", "Good morning!", "--max-new-tokens",
                                      "12", "--seed", "0", "--json"])
    assert result.exit_code == 0, result.output
    ran = json.loads(result.stdout)
    _, tok, _ = load_base()
    chat = tok.apply_chat_template([{"role": "user", "content": "Good morning!"}], add_generation_prompt=True,
                                   tokenize=False)
    assert ran["prompt_tokens"] == len(tok(chat, add_special_tokens=False)["input_ids"]) and ran["text"].strip()
    with serving(create_app(Service(ServeSettings()))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="t2l:answer in French", max_tokens=12, seed=0, temperature=0.7,
                                               messages=[{"role": "user", "content": "Good morning!"}])
        assert reply.choices[0].message.content == ran["text"]
        assert [m.id for m in client.models.list().data][1] == ran["adapter_id"]  # made once, by run
