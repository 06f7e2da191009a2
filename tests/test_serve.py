"""`t2l serve` as a user's code meets it: a live server on a free localhost port, called with the official openai
client (and plain HTTP for what the client hides), its answers checked against `t2l run` with the same seed."""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile

import httpx
import openai
import pytest

from conftest import char_tokenizer, long_sample, t2l
from t2l_cli.server.api import MAX_CHARS, create_app
from t2l_cli.server.background import free_port, serving

SAMPLING = {"max_tokens": 8, "temperature": 1.0, "seed": 11}


def run_text(ref, prompt, *extra, max_tokens=8, temperature=1.0, seed=11):
    return json.loads(
        t2l(
            "run",
            ref,
            prompt,
            "--max-new-tokens",
            max_tokens,
            "--temperature",
            temperature,
            "--seed",
            seed,
            *extra,
            "--json",
        ).stdout
    )["text"]


@pytest.fixture
def client(serve_url):
    return openai.OpenAI(base_url=f"{serve_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture
def two(hn_path):
    t2l("make", "answer in upper case", "--hypernet", hn_path, "--name", "up")
    t2l("make", "answer in small letters", "--hypernet", hn_path, "--name", "low")


def test_models_and_chat_answers_match_t2l_run(client, two, tiny_base_dir):
    ids = [m.id for m in client.models.list().data]
    assert ids == ["base", "low", "up"]
    for model in ("up", "base"):
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}], **SAMPLING)
        want = run_text(model, "hello", *(["--base", tiny_base_dir] if model == "base" else []))
        assert reply.choices[0].message.content == want and reply.model == model
        assert reply.usage.completion_tokens <= 8 and reply.usage.prompt_tokens == len("User: hello\nAssistant:")
        assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_stream_gives_the_same_answer_in_pieces_with_usage(client, two):
    seed, want = long_sample(lambda s: run_text("up", "hello", seed=s), 3)  # enough text for several pieces
    sampling = SAMPLING | {"seed": seed}
    stream = client.chat.completions.create(
        model="up",
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
        **sampling,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert text == want
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    whole = client.chat.completions.create(model="up", messages=[{"role": "user", "content": "hello"}], **sampling)
    assert chunks[-1].usage == whole.usage and not chunks[-1].choices


def test_completions_are_raw_and_stop_strings_cut(client, two):
    reply = client.completions.create(model="up", prompt="Q: 2+2?\nA:", **SAMPLING)
    assert reply.choices[0].text == run_text("up", "Q: 2+2?\nA:", "--raw")
    seed, full = long_sample(lambda s: run_text("up", "Q: 2+2?\nA:", "--raw", max_tokens=20, seed=s), 8)
    cut_at = full[6:8]
    stopped = client.completions.create(
        model="up", prompt="Q: 2+2?\nA:", stop=[cut_at], **(SAMPLING | {"max_tokens": 20, "seed": seed})
    )
    assert stopped.choices[0].text == full[: full.find(cut_at)] and stopped.choices[0].finish_reason == "stop"
    pieces = client.completions.create(model="up", prompt="Q: 2+2?\nA:", stream=True, **SAMPLING)
    assert "".join(c.choices[0].text for c in pieces if c.choices) == reply.choices[0].text


def test_a_described_model_is_made_once_registered_and_listed(client):
    ask = dict(model="t2l:answer in upper case", messages=[{"role": "user", "content": "hi"}], **SAMPLING)
    first = client.chat.completions.create(**ask).choices[0].message.content
    assert client.chat.completions.create(**ask).choices[0].message.content == first
    rows = json.loads(t2l("ls", "--json").stdout)
    assert [r["description"] for r in rows] == ["answer in upper case"]
    assert rows[0]["id"] in [m.id for m in client.models.list().data]
    assert run_text(rows[0]["id"], "hi") == first


def test_two_streams_to_two_adapters_at_once_do_not_mix(client, two):
    """The engine generates one answer at a time; two concurrent streams each get exactly their adapter's answer
    (the tiny hypernetwork was trained to answer q-prompts with ABC for one description, xyz for the other)."""
    got, start = {}, threading.Barrier(2)

    def ask(model):
        start.wait()
        stream = client.completions.create(model=model, prompt="q1", stream=True, **(SAMPLING | {"max_tokens": 30}))
        got[model] = "".join(c.choices[0].text for c in stream if c.choices)

    threads = [threading.Thread(target=ask, args=(m,)) for m in ("up", "low")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert got["up"] == run_text("up", "q1", "--raw", max_tokens=30)
    assert got["low"] == run_text("low", "q1", "--raw", max_tokens=30)
    assert got["up"] != got["low"]


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.mark.parametrize(
    "body, status, says",
    [
        ({"model": "nosuch", "messages": [{"role": "user", "content": "hi"}]}, 404, "does not exist"),
        ({"model": "base", "messages": []}, 400, "messages is empty"),
        ({"model": "base", "messages": [{"role": "user", "content": "x" * (MAX_CHARS + 1)}]}, 400, "characters"),
        (
            {"model": "base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10_000},
            400,
            "exceed the model's context of 256 tokens",
        ),
        ({"model": "base", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, 400, "temperature"),
        ({"model": "base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "5"}, 400, "max_tokens"),
        ({"model": "base", "messages": [{"role": "robot", "content": "hi"}]}, 400, "role"),
        ({"model": "base", "messages": "hi"}, 400, "messages"),
        ({"model": "base", "messages": [{"role": "user", "content": "hi"}], "n": 9}, 400, "n: Input should be less"),
        (
            {
                "model": "base",
                "messages": [{"role": "user", "content": "hi"}],
                "response_format": {"type": "json_object"},
            },
            400,
            "response_format is not supported",
        ),
        ({"model": "base", "messages": [{"role": "user", "content": "hi"}], "tools": []}, 400, "tools is not"),
        (
            {"model": "base", "messages": [{"role": "user", "content": "hi"}], "logit_bias": {"x": 1}},
            400,
            "logit_bias key 'x' is not a token id",
        ),
        (
            {"model": "base", "messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2},
            400,
            "top_logprobs needs logprobs",
        ),
        ({"model": "base", "messages": [{"role": "user", "content": "hi"}], "seed": 2**64}, 400, "seed"),
        ({"model": "t2l:  ", "messages": [{"role": "user", "content": "hi"}]}, 400, "empty description"),
    ],
)
def test_bad_requests_get_openai_shaped_errors(serve_url, body, status, says):
    response = httpx.post(f"{serve_url}/v1/chat/completions", json=body)
    assert response.status_code == status and says in error_of(response)["message"]


def test_unknown_fields_are_ignored_and_the_client_sees_errors(client, serve_url):
    reply = client.chat.completions.create(
        model="base",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"frobnicate": True, "logit_bias": {}},
        **SAMPLING,
    )
    assert reply.choices[0].message.content
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nosuch", messages=[{"role": "user", "content": "hi"}])
    assert e.value.code == "model_not_found"
    assert (
        httpx.post(
            f"{serve_url}/v1/completions", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )


def test_api_key_guards_every_route_but_health(serve_service):
    with serving(create_app(serve_service, api_key="s3cret")) as serve_url:
        assert httpx.get(f"{serve_url}/health").status_code == 200
        for path in ("/v1/models", "/v1/adapters"):
            assert error_of(httpx.get(f"{serve_url}{path}"))["code"] == "invalid_api_key"
            assert httpx.get(f"{serve_url}{path}", headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert httpx.get(f"{serve_url}{path}", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{serve_url}/v1", api_key="wrong", max_retries=0).models.list()
        assert openai.OpenAI(base_url=f"{serve_url}/v1", api_key="s3cret").models.list().data[0].id == "base"


def test_adapter_routes_make_list_show_and_download(serve_url, hn_path):
    from registry import Registry
    from t2l.home import t2l_home

    made = httpx.post(
        f"{serve_url}/v1/adapters", json={"description": "answer in upper case", "name": "up"}, timeout=60
    )
    assert made.status_code == 201 and made.json()["name"] == "up"
    adapter_id = made.json()["id"]
    httpx.post(f"{serve_url}/v1/adapters", json={"description": "answer in small letters"}, timeout=60)
    found = httpx.get(f"{serve_url}/v1/adapters", params={"q": "upper"}).json()["data"]
    assert [a["id"] for a in found] == [adapter_id]
    assert len(httpx.get(f"{serve_url}/v1/adapters").json()["data"]) == 2
    shown = httpx.get(f"{serve_url}/v1/adapters/up").json()
    assert shown["id"] == adapter_id and "answer in upper case" in shown["card"] and shown["scores"] == []
    reg = Registry(t2l_home())
    stored = reg.adapter_file(reg.get_adapter("up")).read_bytes()
    single = httpx.get(f"{serve_url}/v1/adapters/{adapter_id[:8]}/download")
    assert single.content == stored and 'filename="up.safetensors"' in single.headers["content-disposition"]
    peft = httpx.get(f"{serve_url}/v1/adapters/up/download", params={"format": "peft"})
    folder = zipfile.ZipFile(io.BytesIO(peft.content))
    assert sorted(folder.namelist()) == ["up/README.md", "up/adapter_config.json", "up/adapter_model.safetensors"]
    assert folder.read("up/adapter_model.safetensors") == stored
    assert error_of(httpx.get(f"{serve_url}/v1/adapters/nosuch"))["message"].startswith("no adapter named")
    assert httpx.post(f"{serve_url}/v1/adapters", json={"description": ""}).status_code == 400
    assert httpx.post(f"{serve_url}/v1/adapters", json={"description": 5}).status_code == 400
    too_long = httpx.post(f"{serve_url}/v1/adapters", json={"description": "x" * 2001})
    assert too_long.status_code == 400 and "longer than 2000 characters" in error_of(too_long)["message"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_binds_localhost_and_shuts_down_cleanly_on_a_signal(hn_path, tiny_base_dir, t2l_home, sig):
    port = free_port()
    env = os.environ | {"PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "t2l_cli",
            "serve",
            "--port",
            str(port),
            "--base",
            str(tiny_base_dir),
            "--hypernet",
            hn_path,
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.3)
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/completions", json={"model": "base", "prompt": "hi", "max_tokens": 3}
        )
        assert reply.json()["usage"]["completion_tokens"] <= 3
        answers = []  # a non-streamed answer under way when the signal comes still gets its reply
        asking = threading.Thread(
            target=lambda: answers.append(
                httpx.post(
                    f"http://127.0.0.1:{port}/v1/completions",
                    timeout=60,
                    json={"model": "base", "prompt": "hi", "max_tokens": 240, "logit_bias": {"2": -100}},
                )
            )
        )
        asking.start()
        time.sleep(0.2)
        proc.send_signal(sig)
        asking.join(30)
        assert answers[0].status_code == 200 and answers[0].json()["choices"][0]["finish_reason"] == "length"
        assert proc.wait(30) == 0
        assert "127.0.0.1" in (log := proc.stderr.read()) and "stopped" in log
    finally:
        if proc.poll() is None:
            proc.kill()


def test_n_answers_are_rows_of_one_request_with_consecutive_seeds(client, two):
    reply = client.chat.completions.create(model="up", messages=[{"role": "user", "content": "hello"}], n=3, **SAMPLING)
    texts = [c.message.content for c in sorted(reply.choices, key=lambda c: c.index)]
    assert texts == [run_text("up", "hello", seed=11 + j) for j in range(3)]
    assert len(set(texts)) > 1 and reply.usage.completion_tokens <= 3 * 8
    stream = client.chat.completions.create(
        model="up", messages=[{"role": "user", "content": "hello"}], n=2, stream=True, **SAMPLING
    )
    parts = {0: "", 1: ""}
    for chunk in stream:
        for c in chunk.choices:
            parts[c.index] += c.delta.content or ""
    assert [parts[0], parts[1]] == texts[:2]


def test_logprobs_logit_bias_and_penalties_through_the_client(client, two):
    greedy = dict(max_tokens=6, temperature=0, seed=1)
    reply = client.chat.completions.create(
        model="up", messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=3, **greedy
    )
    tokens = reply.choices[0].logprobs.content
    assert len(tokens) == reply.usage.completion_tokens
    specials = set(char_tokenizer().all_special_tokens)  # listed with their logprobs, left out of the text
    assert "".join(t.token for t in tokens if t.token not in specials) == reply.choices[0].message.content.replace(
        " ", ""
    )
    assert all(
        len(t.top_logprobs) == 3 and t.logprob == pytest.approx(t.top_logprobs[0].logprob) and t.logprob <= 0
        for t in tokens
    )  # greedy: the chosen token is the likeliest
    raw = client.completions.create(model="up", prompt="Q:", logprobs=2, **greedy)
    assert (
        len(raw.choices[0].logprobs.token_logprobs)
        == len(raw.choices[0].logprobs.tokens)
        == raw.usage.completion_tokens
    )
    z = str(char_tokenizer().convert_tokens_to_ids("Z"))
    forced = client.completions.create(model="up", prompt="Q:", logit_bias={z: 100}, **greedy)
    assert forced.choices[0].text.replace(" ", "") == "ZZZZZZ"
    penalised = client.completions.create(
        model="up", prompt="Q:", frequency_penalty=2, presence_penalty=2, **greedy | {"max_tokens": 20}
    )  # the formulas: tests/test_batching.py
    letters = penalised.choices[0].text.replace(" ", "")
    plain = client.completions.create(model="up", prompt="Q:", **greedy | {"max_tokens": 20}).choices[0].text
    assert len(set(letters)) >= len(set(plain.replace(" ", "")))  # repeats only get less likely


def test_models_retrieve_metrics_and_cors(client, two, serve_service):
    assert client.models.retrieve("up").id == "up" and client.models.retrieve("base").owned_by == "t2l"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nosuch")
    z = str(char_tokenizer().convert_tokens_to_ids("Z"))
    client.completions.create(model="up", prompt="Q:", max_tokens=3, temperature=0, logit_bias={z: 100})
    text = httpx.get(str(client.base_url).replace("/v1/", "/metrics")).text
    counters = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert int(counters["t2l_requests_total"]) >= 1 and int(counters["t2l_generated_tokens_total"]) >= 1
    assert counters["t2l_batch_rows"] == "0" and int(counters["t2l_first_token_seconds_count"]) >= 1
    with serving(create_app(serve_service, cors_origin="https://app.example")) as serve_url:
        pre = httpx.options(
            f"{serve_url}/v1/models", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
        )
        assert pre.headers["access-control-allow-origin"] == "https://app.example"
        other = httpx.get(f"{serve_url}/v1/models", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    with serving(create_app(serve_service)) as serve_url:  # off by default
        assert (
            "access-control-allow-origin"
            not in httpx.get(f"{serve_url}/v1/models", headers={"Origin": "https://app.example"}).headers
        )
