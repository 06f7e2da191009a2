"""`t2l serve`'s faults of issue 26 (cases 2, 8 and 10 to 15), each through a live server on a free localhost port
(raw HTTP for what the official client hides, the openai client where it shows) or the CLI with an isolated home."""

import io
import json
import socket
import time
import types
import zipfile

import httpx
import openai
import pytest

from conftest import char_tokenizer, t2l, tiny_config
from t2l.errors import T2LError
from t2l_cli.server.api import MAX_LIST, create_app
from t2l_cli.server.background import serving
from t2l_cli.server.service import ServeSettings, Service

JSON = {"content-type": "application/json"}
HI = [{"role": "user", "content": "hi"}]


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def one_line_error(*args) -> str:
    result = t2l(*args, code=1)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


# -- 2: a lone surrogate -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "route, raw, param",
    [
        (
            "chat/completions",
            r'{"model": "base", "messages": [{"role": "user", "content": "caf\ud800"}]}',
            "messages.0.content",
        ),
        (
            "chat/completions",
            r'{"model": "base", "messages": [{"role": "user", "content": [{"type": "text", '
            r'"text": "\udfff"}]}]}',
            "messages.0.content.0.text",
        ),
        ("chat/completions", r'{"model": "t2l:\ud800", "messages": [{"role": "user", "content": "hi"}]}', "model"),
        (
            "chat/completions",
            r'{"model": "base", "messages": [{"role": "user", "content": "hi"}], "stop": ["\ud800"]}',
            "stop.0",
        ),
        ("completions", r'{"model": "base", "prompt": "\ud800"}', "prompt"),
        ("completions", r'{"model": "base", "prompt": "hi", "logit_bias": {"\ud800": 1}}', "logit_bias"),
        ("completions", r'{"model": "base", "prompt": "hi", "user": {"\ud800": 1}}', "user"),
        ("adapters", r'{"description": "answer \ud800"}', "description"),
        ("adapters", r'{"description": "answer in upper case", "name": "\udc00"}', "name"),
    ],
)
def test_case_2_a_lone_surrogate_is_a_400_naming_the_field(serve_url, route, raw, param):
    e = error_of(httpx.post(f"{serve_url}/v1/{route}", content=raw.encode(), headers=JSON), 400)
    assert e["param"] == param and e["message"].startswith(f"{param}: the text holds a lone surrogate (U+D")
    assert "send valid UTF-8" in e["message"]
    paired = r'{"model": "base", "prompt": "\ud83d\ude00", "max_tokens": 1}'  # a pair is one character: fine
    assert httpx.post(f"{serve_url}/v1/completions", content=paired.encode(), headers=JSON).status_code == 200


# -- 10: the network without a key; no server paths -----------------------------------------------------------


class Loaded(T2LError):
    pass


@pytest.fixture
def no_model(monkeypatch):
    """`t2l serve` stops where it would load the model: an error 'got past the checks' means they let it through."""

    def stop(*_, **__):
        raise Loaded("got past the checks")

    monkeypatch.setattr("t2l_cli.server.service.Service", stop)


def test_case_10_a_network_host_without_a_key_is_refused_unless_asked_for(no_model, monkeypatch):
    monkeypatch.delenv("T2L_API_KEY", raising=False)
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.com"):
        message = one_line_error("serve", "--host", host)
        assert f"--host {host} opens the server to the network" in message and "--api-key KEY" in message
        assert "--allow-no-key-on-network" in message
    for passing in (
        ["--host", "0.0.0.0", "--allow-no-key-on-network"],
        ["--host", "0.0.0.0", "--api-key", "k"],
        [],
        ["--host", "localhost"],
        ["--host", "127.0.0.2"],
        ["--host", "::1"],
    ):
        assert one_line_error("serve", *passing).endswith("got past the checks")
    monkeypatch.setenv("T2L_API_KEY", "k")
    assert one_line_error("serve", "--host", "0.0.0.0").endswith("got past the checks")


def test_case_10_no_response_carries_a_path_on_the_server(serve_url, hn_path, t2l_home):
    made = httpx.post(
        f"{serve_url}/v1/adapters", json={"description": "answer in upper case", "name": "up"}, timeout=60
    )
    assert made.status_code == 201 and "file" not in made.json()
    gone = httpx.post(f"{serve_url}/v1/adapters", json={"description": "answer in small letters"}, timeout=60).json()[
        "id"
    ]
    (t2l_home / "adapters" / f"{httpx.get(f'{serve_url}/v1/adapters/{gone}').json()['sha256']}.safetensors").unlink()
    client = openai.OpenAI(base_url=f"{serve_url}/v1", api_key="unused", max_retries=0)
    client.chat.completions.create(model="up", messages=HI, max_tokens=2)
    bodies = [made.text]
    for path in (
        "/health",
        "/metrics",
        "/",
        "/v1/models",
        "/v1/models/up",
        "/v1/adapters",
        "/v1/adapters?q=upper",
        "/v1/adapters/up",
        "/v1/adapters/up/download?format=peft",
    ):
        response = httpx.get(f"{serve_url}{path}")
        assert response.status_code == 200, (path, response.text)
        bodies.append(
            response.text
            if "zip" not in response.headers["content-type"]
            else "\n".join(
                f.decode("utf-8", "replace")
                for f in map(
                    zipfile.ZipFile(io.BytesIO(response.content)).read,
                    zipfile.ZipFile(io.BytesIO(response.content)).namelist(),
                )
            )
        )
    assert all("file" not in a for a in httpx.get(f"{serve_url}/v1/adapters").json()["data"])
    assert "file" not in httpx.get(f"{serve_url}/v1/adapters/up").json()
    for path in (f"/v1/adapters/{gone}", f"/v1/adapters/{gone}/download"):
        missing = error_of(httpx.get(f"{serve_url}{path}"), 400)  # the registry's message names the file
        assert "is missing ($T2L_HOME/adapters/" in missing["message"]
        bodies.append(str(missing))
    broken = httpx.post(f"{serve_url}/v1/chat/completions", json={"model": gone, "messages": HI, "max_tokens": 2})
    bodies.append(broken.text)
    for body in bodies:  # (an adapter made for a base in a local folder names that folder: it is the adapter's own)
        for secret in (str(t2l_home), str(t2l_home.resolve()), hn_path):
            assert secret not in body


# -- 11: an empty key ------------------------------------------------------------------------------------------


def test_case_11_an_empty_api_key_is_refused(serve_service, no_model, monkeypatch):  # the service before the patch
    for empty in ("", "  "):
        message = one_line_error("serve", "--api-key", empty)
        assert "--api-key is empty" in message and "no authentication" in message
    monkeypatch.setenv("T2L_API_KEY", "")
    assert "T2L_API_KEY is set but empty" in one_line_error("serve")
    with pytest.raises(T2LError, match="the API key is empty"):
        create_app(serve_service, api_key="")


# -- 12: a limit on the body -------------------------------------------------------------------------------------


def test_case_12_a_body_over_the_limit_is_a_413_before_it_is_parsed(serve_service, no_model):
    with serving(create_app(serve_service, max_body_bytes=2_000)) as serve_url:
        small = {"model": "base", "prompt": "hi", "max_tokens": 1}
        assert httpx.post(f"{serve_url}/v1/completions", json=small).status_code == 200
        big = {"model": "base", "prompt": "x" * 3_000, "max_tokens": 1}
        e = error_of(httpx.post(f"{serve_url}/v1/completions", json=big), 413)
        assert e["code"] == "request_too_large" and "larger than the server's limit" in e["message"]
        assert "--max-body-mb" in e["message"]

        def chunked():  # no Content-Length: counted as it arrives
            yield b'{"model": "base", "prompt": "'
            for _ in range(10):
                yield b"x" * 500
            yield b'"}'

        error_of(httpx.post(f"{serve_url}/v1/completions", content=chunked(), headers=JSON), 413)
        error_of(httpx.post(f"{serve_url}/v1/adapters", content=chunked(), headers=JSON), 413)
    assert one_line_error("serve", "--max-body-mb", "0.5").endswith("got past the checks")
    assert t2l("serve", "--max-body-mb", "0", code=2)


# -- 13: the listing's limit -------------------------------------------------------------------------------------


def test_case_13_the_adapter_listing_checks_its_limit(serve_url):
    for description in ("answer in upper case", "answer in small letters"):
        httpx.post(f"{serve_url}/v1/adapters", json={"description": description}, timeout=60)
    assert len(httpx.get(f"{serve_url}/v1/adapters", params={"limit": 1}).json()["data"]) == 1
    assert len(httpx.get(f"{serve_url}/v1/adapters", params={"limit": MAX_LIST}).json()["data"]) == 2
    for params in (
        {"limit": -1},
        {"limit": 0},
        {"limit": MAX_LIST + 1},
        {"limit": -1, "q": "answer"},
        {"limit": 0, "q": "answer"},
    ):
        e = error_of(httpx.get(f"{serve_url}/v1/adapters", params=params), 400)
        assert e["param"] == "limit" and e["message"].startswith(
            f"limit must be a number of adapters from 1 to {MAX_LIST}, not {params['limit']}"
        )
        assert "--" not in e["message"]
    e = error_of(httpx.get(f"{serve_url}/v1/adapters", params={"limit": "many"}), 400)
    assert e["param"] == "limit" and e["message"].startswith("limit: ")


# -- 14: the zip's file name -------------------------------------------------------------------------------------


def test_case_14_the_peft_zip_name_is_quoted_as_rfc_6266_says(serve_url):
    made = httpx.post(
        f"{serve_url}/v1/adapters", json={"description": "answer in upper case", "name": 'a"b;c=d'}, timeout=60
    )
    assert made.status_code == 201, made.text
    both = [
        httpx.get(f"{serve_url}/v1/adapters/{made.json()['id']}/download", params=p).headers["content-disposition"]
        for p in ({}, {"format": "peft"})
    ]
    assert both == [
        "attachment; filename*=utf-8''a%22b%3Bc%3Dd.safetensors",
        "attachment; filename*=utf-8''a%22b%3Bc%3Dd.zip",
    ]
    httpx.post(f"{serve_url}/v1/adapters", json={"description": "answer in small letters", "name": "plain"}, timeout=60)
    assert (
        httpx.get(f"{serve_url}/v1/adapters/plain/download", params={"format": "peft"}).headers["content-disposition"]
        == 'attachment; filename="plain.zip"'
    )


# -- 15: the scheme's case, HEAD, an ambiguous prefix, malformed JSON ---------------------------------------------


def test_case_15_the_bearer_scheme_is_case_insensitive(serve_service):
    with serving(create_app(serve_service, api_key="s3cret")) as serve_url:
        for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
            assert httpx.get(f"{serve_url}/v1/models", headers={"Authorization": f"{scheme} s3cret"}).status_code == 200
        for wrong in ("Basic s3cret", "Bearer s3cre", "bearer", "s3cret", "Bearers3cret"):
            e = error_of(httpx.get(f"{serve_url}/v1/models", headers={"Authorization": wrong}), 401)
            assert e["code"] == "invalid_api_key"
        client = openai.OpenAI(base_url=f"{serve_url}/v1", api_key="s3cret", max_retries=0)
        assert client.models.list().data[0].id == "base"


def test_case_15_head_is_answered(serve_url):
    for path in ("/", "/health"):
        head, get = httpx.head(f"{serve_url}{path}"), httpx.get(f"{serve_url}{path}")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]


def test_case_15_an_ambiguous_model_prefix_is_a_400_listing_the_candidates(serve_url, monkeypatch):
    import sys
    import uuid

    from registry import store

    ids = iter(["abc1" + "0" * 28, "abc2" + "0" * 28, "def0" + "0" * 28])

    def uuid4():  # the adapters' ids chosen; any other row's (the hypernetwork's, registered on first use) random
        return (
            types.SimpleNamespace(hex=next(ids)) if sys._getframe(1).f_code.co_name == "add_adapter" else uuid.uuid4()
        )

    monkeypatch.setattr(store, "uuid", types.SimpleNamespace(uuid4=uuid4))
    for description, name in (("answer in upper case", "up"), ("answer in small letters", None), ("third", None)):
        made = httpx.post(f"{serve_url}/v1/adapters", json={"description": description, "name": name}, timeout=60)
        assert made.status_code == 201, made.text
    client = openai.OpenAI(base_url=f"{serve_url}/v1", api_key="unused", max_retries=0)
    for call in (
        lambda: client.chat.completions.create(model="abc", messages=HI, max_tokens=2),
        lambda: client.completions.create(model="ab", prompt="hi", max_tokens=2),
        lambda: client.models.retrieve("abc"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            call()
        e = caught.value.body
        assert (
            e["param"] == "model"
            and "is the start of 2 adapters' ids: abc100000000 (up), abc200000000" in e["message"]
            and "give more characters" in e["message"]
        )
    assert client.completions.create(model="abc2", prompt="hi", max_tokens=2).model == "abc2"
    assert client.completions.create(model="de", prompt="hi", max_tokens=2).choices
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="abd", prompt="hi", max_tokens=2)


@pytest.mark.parametrize(
    "raw, where",
    [
        (b'{"model": "base",\n "prompt": x}', "line 2, column 12"),
        (b'{"model": "base", "prompt": "hi"', "line 1, column 33"),
        (b"{not json", "line 1, column 2"),
        ('{"model": "bäse",\n "prompt": "é" x}'.encode(), "line 2, column 16"),
    ],
)
def test_case_15_malformed_json_says_so_and_where(serve_url, raw, where):
    for route in ("completions", "chat/completions", "adapters"):
        e = error_of(httpx.post(f"{serve_url}/v1/{route}", content=raw, headers=JSON), 400)
        assert e["param"] == "body" and e["message"].startswith("the body is malformed JSON (")
        assert f" at {where})" in e["message"]


def test_case_15_json_nested_too_deep_is_a_400_saying_so(serve_url):
    for depth in (900, 5_000, 100_000):
        raw = '{"model": "base", "prompt": "hi", "max_tokens": 1, "x": ' + "[" * depth + "]" * depth + "}"
        response = httpx.post(f"{serve_url}/v1/completions", content=raw.encode(), headers=JSON)
        if depth > 900:
            e = error_of(response, 400)
            assert e["param"] == "body" and "could not be read as JSON (nested too deep?)" in e["message"]
        else:
            assert response.status_code in (200, 400), response.text


def test_case_2_bytes_that_are_not_utf8_in_a_url_are_no_500(serve_url):
    for path in (
        "/v1/adapters?q=%ED%A0%80",
        "/v1/adapters/%ED%A0%80",
        "/v1/models/%ED%A0%80",
        "/v1/adapters?q=caf%E9",
        "/v1/adapters/caf%E9/download",
    ):
        response = httpx.get(f"{serve_url}{path}")
        assert response.status_code in (200, 404), (path, response.text)
        if response.status_code == 404:
            assert "see GET /v1/adapters" in error_of(response, 404)["message"]  # API words, not `t2l ls`


# -- 8: an abandoned non-streamed request ------------------------------------------------------------------------


def gauges(url: str) -> dict[str, float]:
    lines = httpx.get(f"{url}/metrics").text.splitlines()
    return {k: float(v) for k, v in (line.split() for line in lines if line.startswith("t2l_") and "{" not in line)}


def test_case_8_an_abandoned_non_streamed_request_stops_generating(tmp_path, hn_path):
    """A client that sends a long non-streamed request and goes away: its row leaves the batch within a second
    (it was generating until its 3,000 tokens were done, and the next 3-token request waited behind it)."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "long-context"  # the tiny base with room for an answer that takes minutes
    config = tiny_config()
    config.max_position_embeddings = 4096
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    char_tokenizer().save_pretrained(folder)
    long = {"model": "base", "prompt": "hi", "max_tokens": 3000, "logit_bias": {"2": -100}}  # no end token
    with serving(create_app(Service(ServeSettings(base=str(folder), hypernet=hn_path)))) as url:
        port = int(url.rsplit(":", 1)[1])
        body = json.dumps(long).encode()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        deadline = time.monotonic() + 30
        while gauges(url)["t2l_batch_rows"] != 1 or gauges(url)["t2l_generated_tokens_total"] < 20:
            assert time.monotonic() < deadline, "the long request never started"
            time.sleep(0.05)
        sock.close()  # the client goes away before its answer
        gone = time.monotonic()
        while (seen := gauges(url))["t2l_batch_rows"] != 0:
            assert time.monotonic() - gone < 3, f"the abandoned row is still generating: {seen}"
            time.sleep(0.05)
        assert seen["t2l_generated_tokens_total"] < 3000
        start = time.monotonic()
        short = httpx.post(f"{url}/v1/completions", json={"model": "base", "prompt": "hi", "max_tokens": 3}, timeout=60)
        assert short.status_code == 200 and time.monotonic() - start < 5
        assert gauges(url)["t2l_generated_tokens_total"] <= seen["t2l_generated_tokens_total"] + 3


def test_the_cli_default_body_limit_is_the_servers():
    from t2l_cli.serve import MAX_BODY_MB
    from t2l_cli.server.api import MAX_BODY_BYTES

    assert MAX_BODY_MB * 2**20 == MAX_BODY_BYTES
