"""The HTTP side of `t2l serve`: OpenAI's chat and completion routes (JSON or server-sent events), t2l's adapter
routes, the web page, API-key checking, and every error as a 4xx JSON body in OpenAI's shape."""

import asyncio
import json
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from registry import RegistryError
from t2l.errors import T2LError
from t2l.home import t2l_home
from t2l_cli.actions import adapters, serve
from t2l_cli.actions.common import open_registry
from t2l_cli.server.service import Service, UnknownModel

STATIC = Path(__file__).parent / "static"
MAX_MESSAGES = 256  # per request
MAX_CHARS = 100_000  # of message content (or prompt) per request; the context limit is checked in tokens as well
MAX_STOP = 4  # stop strings, as OpenAI allows
MAX_N = 8  # answers per request (each is a row of the batch)
REFUSED = ("response_format", "tools", "tool_choice", "functions", "function_call")
OPEN_PATHS = ("/health", "/", "/static/")  # reachable without the API key: the page's files hold no data
MAX_BODY_BYTES = 8 * 2**20  # of a request body, by default (`t2l serve --max-body-mb`)
MAX_EXAMPLES = 64  # input/output examples one request may send; the hypernetwork's own limit is checked after
MAX_LIST = 1_000  # adapters one GET /v1/adapters returns at most
STATUS_EVERY_S = 0.2  # how often a streamed answer waiting for its first token looks where it stands
UNREADABLE = "the body could not be read as JSON (nested too deep?); send one JSON object of the fields"


class Strict(BaseModel):
    """Wrong types are refused, not coerced; unknown fields are ignored, as OpenAI does."""

    model_config = ConfigDict(strict=True, extra="ignore")


class TextPart(Strict):
    type: Literal["text"]
    text: str


class Message(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def as_turn(self) -> dict:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class StreamOptions(Strict):
    include_usage: bool = False


class Sampled(Strict):
    """What both OpenAI generation routes take."""

    model: str
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    stop: str | list[str] | None = None
    seed: Annotated[int, Field(ge=-(2**63), le=2**64 - 1)] | None = None
    n: Annotated[int, Field(ge=1, le=MAX_N)] = 1
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] = 0.0
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] = 0.0
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    t2l_examples: Annotated[list[object], Field(max_length=MAX_EXAMPLES)] | None = None
    """Input/output examples a t2l:<description> model is made from too (OpenAI's client: extra_body=...)."""
    # what a sampler cannot do: named in a 400 instead of being ignored
    response_format: object = None
    tools: object = None
    tool_choice: object = None
    functions: object = None
    function_call: object = None


class ChatRequest(Sampled):
    messages: list[Message]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None

    def top(self) -> int | None:
        if self.top_logprobs is not None and not self.logprobs:
            raise Refused("top_logprobs needs logprobs: true", "top_logprobs")
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(Sampled):
    prompt: str | list[str]
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None
    echo: bool = False

    def top(self) -> int | None:
        if self.echo:
            raise Refused("echo is not supported: the answer is the completion alone", "echo")
        return self.logprobs


class AdapterRequest(Strict):
    description: str = ""  # may be left out when examples are given: an adapter from the examples alone
    name: str | None = None
    examples: Annotated[list[object], Field(max_length=MAX_EXAMPLES)] | None = None


def shots(rows: list | None, field: str) -> list:
    """A request's examples ([{"input": "...", "output": "..."}, ...]) as t2l.examples.Shot, each checked as an
    examples file's line is (strings, not empty, at most t2l.examples.INPUT_LIMIT characters); a 400 names the
    field."""
    from t2l.examples import parse_shots

    try:
        return parse_shots(rows or [], field)
    except T2LError as e:
        raise Refused(str(e), field) from None


class Refused(T2LError):
    """A request parameter t2l cannot honour; the 400 names it."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


def error(
    status: int, message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> JSONResponse:
    message = without_paths(message).replace("see `t2l ls`", "see GET /v1/adapters")  # the registry's words: CLI's
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}}, status)


def without_paths(text: str) -> str:
    """`text` with the server's t2l home written as $T2L_HOME: a client is never told where files live."""
    home = t2l_home()
    for shown in {str(home.resolve()), str(home)}:
        text = text.replace(shown, "$T2L_HOME")
    return text


def public(record: dict) -> dict:
    """An adapter record as the API sends it: without the stored file's path on the server."""
    return {k: v for k, v in record.items() if k != "file"}


def create_app(
    service: Service, api_key: str | None = None, cors_origin: str | None = None, max_body_bytes: int = MAX_BODY_BYTES
) -> FastAPI:
    app = FastAPI(title="t2l", docs_url=None, redoc_url=None, openapi_url=None, dependencies=[Depends(_unicode)])
    app.state.service = service
    _errors(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # inside the key check: a stranger is told 401
    if api_key is not None:
        _require_key(app, api_key)
    if cors_origin:  # added last, so it runs first: a browser's preflight needs no key
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=[cors_origin],
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type"],
        )
    _openai_routes(app, service)
    _adapter_routes(app, service)

    @app.api_route("/health", methods=["GET", "HEAD"])
    def health():
        return {"status": "ok", "base": service.base_name}

    @app.get("/metrics")
    def metrics():
        return Response(prometheus(service.engine.scheduler.stats), media_type="text/plain; version=0.0.4")

    @app.api_route("/", methods=["GET", "HEAD"])
    def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


class BodyLimit:
    """A request body over `max_bytes` is answered 413 before it is parsed: at once when its Content-Length says so,
    else (a chunked body) as soon as that many bytes have arrived. The body is read here, at most `max_bytes` of
    it, and handed on whole."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            return await self.too_large(scope, receive, send)
        body, first = bytearray(), None
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: the app is told so
                first = message
                break
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                return await self.too_large(scope, receive, send)
            if not message.get("more_body", False):
                break
        handed = False

        async def replay():
            nonlocal handed
            if handed:
                return await receive()  # what comes after the body: a disconnect
            handed = True
            return first or {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def too_large(self, scope, receive, send):
        mb = self.max_bytes / 2**20
        response = error(
            413,
            f"the request body is larger than the server's limit of {mb:g} MB "
            f"({self.max_bytes} bytes); send less, or start the server with a larger "
            "`t2l serve --max-body-mb`",
            code="request_too_large",
        )
        response.headers["connection"] = "close"
        await response(scope, receive, send)


def _surrogate(value, where: str) -> tuple[str, int, str] | None:
    """(field, position, character) of the first lone surrogate in a parsed JSON body; None when there is none."""
    if isinstance(value, str):
        for i, c in enumerate(value):
            if 0xD800 <= ord(c) <= 0xDFFF:
                return where, i + 1, f"U+{ord(c):04X}"
    elif isinstance(value, dict):
        for key, item in value.items():
            if hit := _surrogate(key, where):  # in a key: named by the field that holds it
                return hit
            if hit := _surrogate(item, f"{where}.{key}" if where else key):
                return hit
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if hit := _surrogate(item, f"{where}.{i}" if where else str(i)):
                return hit
    return None


async def _unicode(request: Request) -> None:
    """Refuse a JSON body with a lone surrogate (a \\ud800 escape without its pair) in any string: it is no Unicode
    text, and neither the tokenizer, the registry nor a JSON reply can hold it."""
    if request.method != "POST" or not (body := await request.body()):
        return
    try:
        data = json.loads(body)
    except ValueError:
        return  # FastAPI has said so already
    try:
        hit = _surrogate(data, "")
    except RecursionError:
        raise Refused(UNREADABLE, "body") from None
    if hit:
        field, at, char = hit
        raise Refused(
            f"{field or 'body'}: the text holds a lone surrogate ({char} at character {at}), which is not "
            "Unicode; send valid UTF-8 text (a \\uD800-\\uDFFF escape must be half of a pair)",
            field or "body",
        )


def _malformed(body: bytes, offset: int, reason: str) -> str:
    before = body.decode("utf-8", "replace")[:offset]  # json's position counts characters
    line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
    return (
        f"the body is malformed JSON ({reason} at line {line}, column {column}); send one JSON object, e.g. "
        '{"model": "base", "messages": [{"role": "user", "content": "hi"}]}'
    )


def _errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            offset = first["loc"][-1] if isinstance(first["loc"][-1], int) else 0
            reason = (first.get("ctx") or {}).get("error", "JSON decode error")
            return error(400, _malformed(await request.body(), offset, reason), param="body")
        loc = list(first["loc"])
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        where = ".".join(str(p) for p in loc)
        return error(400, f"{where or 'body'}: {first['msg']}", param=where or None)

    @app.exception_handler(UnknownModel)
    async def unknown_model(request, exc):
        return error(404, str(exc), param="model", code="model_not_found")

    @app.exception_handler(T2LError)
    async def bad_request(request, exc):
        return error(400, str(exc), param=getattr(exc, "param", None))

    @app.exception_handler(RegistryError)
    async def not_found(request, exc):
        return error(404 if str(exc).startswith("no ") else 400, str(exc))

    @app.exception_handler(HTTPException)
    async def http(request, exc: HTTPException):
        if exc.detail == "There was an error parsing the body":  # FastAPI's words for JSON that json cannot take
            return error(400, UNREADABLE, param="body")
        return error(exc.status_code, str(exc.detail))


def _require_key(app: FastAPI, api_key: str) -> None:
    if not api_key.strip():
        raise T2LError("the API key is empty: give a key, or none at all to serve without one")
    expected = api_key.encode()

    @app.middleware("http")
    async def check_key(request: Request, call_next):
        path = request.url.path
        if path in OPEN_PATHS or path.startswith("/static/"):
            return await call_next(request)
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        # the scheme is case-insensitive (RFC 7235): Bearer, bearer and BEARER are one
        if not (scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), expected)):
            return error(
                401,
                "missing or wrong API key: send the header 'Authorization: Bearer KEY' with the "
                "key `t2l serve --api-key` was started with",
                code="invalid_api_key",
            )
        return await call_next(request)


# -- OpenAI's routes --------------------------------------------------------------------------------------------


def _check(req: Sampled) -> list[str]:
    """The request's stop strings, after the checks pydantic's types do not make."""
    for name in REFUSED:
        if getattr(req, name) is not None:
            raise Refused(f"{name} is not supported: t2l samples plain text (no JSON mode, tools or functions)", name)
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stop) > MAX_STOP or any(not s for s in stop):
        raise Refused(f"stop takes at most {MAX_STOP} non-empty strings", "stop")
    return stop


def _logit_bias(req: Sampled, vocab: int) -> tuple[tuple[int, float], ...]:
    """OpenAI's {"token id": bias} map, checked against the tokenizer."""
    out = []
    for key, bias in (req.logit_bias or {}).items():
        if not key.isdigit() or int(key) >= vocab:
            raise Refused(f"logit_bias key {key!r} is not a token id of this model (0 to {vocab - 1})", "logit_bias")
        out.append((int(key), float(bias)))
    return tuple(out)


def _checked_size(texts: list[str]) -> None:
    if sum(len(t) for t in texts) > MAX_CHARS:
        raise T2LError(f"the request holds more than {MAX_CHARS} characters of text; send less")


def _openai_routes(app: FastAPI, service: Service) -> None:
    engine = service.engine

    def model_object(m: dict) -> dict:
        return {
            "id": m["id"],
            "object": "model",
            "created": int(m["created"].timestamp()) if m.get("created") else 0,
            "owned_by": "t2l",
            "description": m["description"],
            "adapter_id": m["adapter_id"],
        }

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [model_object(m) for m in service.models()]}

    @app.get("/v1/models/{model:path}")
    def model(model: str):
        return model_object(service.model(model))

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest, request: Request):
        stop = _check(req)
        if not req.messages:
            raise T2LError("messages is empty: send at least one message")
        if len(req.messages) > MAX_MESSAGES:
            raise T2LError(f"messages holds {len(req.messages)} messages, more than the {MAX_MESSAGES} allowed")
        turns = [m.as_turn() for m in req.messages]
        _checked_size([t["content"] for t in turns])
        ids = engine.chat_ids(turns)
        return await _answer(service, request, req, ids, stop, req.max_completion_tokens or req.max_tokens, chat=True)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        stop = _check(req)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if len(prompts) != 1:
            raise T2LError("prompt must be one string (or a list of one)")
        _checked_size(prompts)
        return await _answer(service, request, req, engine.raw_ids(prompts[0]), stop, req.max_tokens or 16, chat=False)


async def _answer(
    service: Service,
    request: Request,
    req: Sampled,
    ids: list[int],
    stop: list[str],
    max_tokens: int | None,
    chat: bool,
):
    """n answers to one prompt, each a row of the engine's batch (seeds seed, seed + 1, ...), as one JSON reply or
    as server-sent events. A client that goes away takes its rows out of the batch at the next step."""
    from dataclasses import replace

    from t2l.chat import Sampling

    engine = service.engine
    top = req.top()
    chosen = await run_in_threadpool(service.resolve, req.model, shots(req.t2l_examples, "t2l_examples"))
    adapter = await run_in_threadpool(service.weights, chosen)
    room = engine.context_length - len(ids)
    sampling = Sampling(
        max_tokens or max(1, min(512, room)),
        req.temperature,
        req.top_p,
        req.seed,
        tuple(stop),
        req.frequency_penalty,
        req.presence_penalty,
        _logit_bias(req, len(engine.tokenizer)),
        top,
    )
    seeds = [None if req.seed is None else req.seed + j if req.seed + j < 2**64 else req.seed - j for j in range(req.n)]
    # every check before a byte of the answer is sent
    generations = [engine.generate(ids, replace(sampling, seed=seed), adapter) for seed in seeds]
    reply = Reply(req.model, chat, engine.tokenizer)
    if req.stream:
        usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(_events(generations, reply, usage), media_type="text/event-stream")
    loop = asyncio.get_running_loop()
    running = [in_thread(loop, g.run) for g in generations]
    while not all(r.done() for r in running):
        await asyncio.wait(running, timeout=0.25)
        if await request.is_disconnected():
            for g in generations:
                g.cancel()
    await asyncio.gather(*running)
    if service.engine.scheduler.closing and all(
        not g.token_ids and g.finish_reason == "interrupted" for g in generations
    ):
        return error(503, "the server is shutting down; send the request again once it is back", type_="server_error")
    return reply.whole(generations)


def in_thread(loop, fn, *args) -> asyncio.Future:
    """`fn(*args)` on a thread of its own, as a future of its result. Not the loop's default executor: that holds
    min(32, cores + 4) threads, so on a small machine the seventh waiting answer would not even join the batch
    until an earlier one ended."""
    done = loop.create_future()

    def run():
        try:
            result = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting request as it is
            loop.call_soon_threadsafe(lambda error=e: done.done() or done.set_exception(error))
        else:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(result))

    threading.Thread(target=run, daemon=True).start()
    return done


def finish_reason(generation) -> str:
    """OpenAI's word for why an answer ended: an answer cut short by a shutdown ended as if at max tokens."""
    return "length" if generation.finish_reason == "interrupted" else generation.finish_reason


class Reply:
    """OpenAI's response objects for the answers to one request."""

    def __init__(self, model: str, chat: bool, tokenizer):
        self.model, self.chat, self.tokenizer = model, chat, tokenizer
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())

    def _object(self, kind: str, choices: list[dict], **extra) -> dict:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "system_fingerprint": None,
            **extra,
        }

    def _choice(self, index: int, text: str | None, finish: str | None, delta: bool, logprobs=None) -> dict:
        if not self.chat:
            return {"index": index, "text": text or "", "logprobs": logprobs, "finish_reason": finish}
        if delta:
            return {
                "index": index,
                "delta": {} if text is None else {"content": text},
                "logprobs": logprobs,
                "finish_reason": finish,
            }
        return {
            "index": index,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": logprobs,
            "finish_reason": finish,
        }

    def logprobs(self, generation, start: int = 0):
        """OpenAI's logprobs object for the answer's tokens from `start` (None when none were asked for)."""
        if generation.sampling.logprobs is None:
            return None
        word = lambda i: self.tokenizer.decode([i])  # noqa: E731
        rows = list(zip(generation.token_ids, generation.logprobs))[start:]
        if self.chat:
            return {
                "content": [
                    {
                        "token": word(t),
                        "logprob": lp,
                        "bytes": list(word(t).encode()),
                        "top_logprobs": [
                            {"token": word(i), "logprob": v, "bytes": list(word(i).encode())} for i, v in top
                        ],
                    }
                    for t, (lp, top) in rows
                ],
                "refusal": None,
            }
        return {
            "tokens": [word(t) for t, _ in rows],
            "token_logprobs": [lp for _, (lp, _) in rows],
            "top_logprobs": [{word(i): v for i, v in top} for _, (_, top) in rows],
            "text_offset": None,
        }

    @staticmethod
    def usage(generations) -> dict:
        prompt, completion = generations[0].prompt_tokens, sum(g.completion_tokens for g in generations)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def whole(self, generations) -> dict:
        return self._object(
            "chat.completion" if self.chat else "text_completion",
            [self._choice(j, g.text, finish_reason(g), False, self.logprobs(g)) for j, g in enumerate(generations)],
            usage=self.usage(generations),
        )

    def chunk(self, index: int, text: str | None, finish: str | None = None, logprobs=None) -> dict:
        return self._object(
            "chat.completion.chunk" if self.chat else "text_completion",
            [self._choice(index, text, finish, True, logprobs)],
        )

    def first(self, index: int) -> dict | None:
        if not self.chat:
            return None
        opening = self.chunk(index, "")
        opening["choices"][0]["delta"] = {"role": "assistant", "content": ""}
        return opening

    def usage_chunk(self, generations) -> dict:
        return self._object(
            "chat.completion.chunk" if self.chat else "text_completion", [], usage=self.usage(generations)
        )


def progress(generations) -> dict:
    """Where a request's answers stand before their first token: {"status": "queued", "ahead": rows waiting before
    the first of them} while one waits for room in the batch, else {"status": "generating"}. Streamed answers send it
    as an SSE comment (`: t2l {...}`), which OpenAI's clients skip, first and then whenever it changes."""
    scheduler = generations[0].engine.scheduler
    with scheduler.cv:
        waiting = list(scheduler.waiting)
    # an answer is admitted once the scheduler has started it (its finish_reason is set from then on)
    places = [
        next((i for i, w in enumerate(waiting) if w is g), len(waiting)) for g in generations if g.finish_reason is None
    ]
    return {"status": "queued", "ahead": min(places)} if places else {"status": "generating"}


async def _events(generations, reply: Reply, include_usage: bool):
    """Server-sent events of the answers. Each is generated in the engine's batch and read on a worker thread that
    hands pieces over one queue; when the client goes away the workers close their generations, so their rows leave
    the batch at the next step."""
    loop, queue, gone = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()
    end = object()

    def work(index: int, generation):
        pieces, told = iter(generation), 0
        try:
            for piece in pieces:
                if gone.is_set():
                    break
                logprobs = reply.logprobs(generation, told)
                told = len(generation.token_ids)
                loop.call_soon_threadsafe(queue.put_nowait, (index, piece, logprobs))
        except Exception as e:  # noqa: BLE001 - reported to the client as the stream's last event
            loop.call_soon_threadsafe(queue.put_nowait, e)
        finally:
            pieces.close()
            loop.call_soon_threadsafe(queue.put_nowait, end)

    def event(data) -> str:
        return f"data: {json.dumps(data)}\n\n"

    workers = [in_thread(loop, work, j, g) for j, g in enumerate(generations)]
    try:
        told = progress(generations)
        yield f": t2l {json.dumps(told)}\n\n"
        for j in range(len(generations)):
            if (opening := reply.first(j)) is not None:
                yield event(opening)
        ended, heard = 0, False
        while ended < len(generations):
            if heard:
                item = await queue.get()
            else:  # until the first piece: where the answer stands, whenever that changes
                try:
                    item = await asyncio.wait_for(queue.get(), STATUS_EVERY_S)
                except TimeoutError:
                    if (now := progress(generations)) != told:
                        told = now
                        yield f": t2l {json.dumps(told)}\n\n"
                    continue
                heard = True
            if item is end:
                ended += 1
            elif isinstance(item, Exception):
                yield event({"error": {"message": str(item), "type": "server_error", "param": None, "code": None}})
            else:
                yield event(reply.chunk(*item))
        await asyncio.gather(*workers)
        for j, g in enumerate(generations):
            yield event(reply.chunk(j, None, finish_reason(g)))
        if include_usage:
            yield event(reply.usage_chunk(generations))
        yield "data: [DONE]\n\n"
    finally:
        gone.set()


def prometheus(stats) -> str:
    """The engine's counters in Prometheus' text format."""
    first = sorted(stats.first_token_s)

    def quantile(q: float) -> float:
        return first[min(len(first) - 1, int(q * len(first)))] if first else float("nan")

    lines = [
        "# HELP t2l_requests_total Answers admitted to the batch (a request with n > 1 counts n).",
        "# TYPE t2l_requests_total counter",
        f"t2l_requests_total {stats.requests}",
        "# HELP t2l_generated_tokens_total Tokens generated.",
        "# TYPE t2l_generated_tokens_total counter",
        f"t2l_generated_tokens_total {stats.tokens}",
        "# HELP t2l_queue_depth Answers waiting for room in the batch.",
        "# TYPE t2l_queue_depth gauge",
        f"t2l_queue_depth {stats.waiting}",
        "# HELP t2l_batch_rows Answers in the running batch.",
        "# TYPE t2l_batch_rows gauge",
        f"t2l_batch_rows {stats.rows}",
        "# HELP t2l_tokens_per_second Tokens generated per second of model time, since the start.",
        "# TYPE t2l_tokens_per_second gauge",
        f"t2l_tokens_per_second {stats.tokens / stats.busy_s if stats.busy_s else 0.0:.3f}",
        "# HELP t2l_first_token_seconds Seconds from a request to its first token (the last 1,000 answers).",
        "# TYPE t2l_first_token_seconds summary",
        *(f't2l_first_token_seconds{{quantile="{q}"}} {quantile(q):.4f}' for q in (0.5, 0.9, 0.99)),
        f"t2l_first_token_seconds_sum {sum(first):.4f}",
        f"t2l_first_token_seconds_count {len(first)}",
    ]
    return "\n".join(lines) + "\n"


# -- t2l's routes -----------------------------------------------------------------------------------------------


def _adapter_routes(app: FastAPI, service: Service) -> None:
    @app.post("/v1/adapters", status_code=201)
    def make(req: AdapterRequest):
        chosen = service.describe(req.description, req.name, shots(req.examples, "examples"), "examples")
        return public(adapters.adapter_details(chosen.adapter_id))

    @app.get("/v1/adapters")
    def listing(q: str | None = None, limit: int = 200, by: Literal["words", "meaning"] = "words"):
        if not 1 <= limit <= MAX_LIST:
            raise Refused(
                f"limit must be a number of adapters from 1 to {MAX_LIST}, not {limit}; narrow the list with q=WORDS",
                "limit",
            )
        if q:  # by meaning: `t2l search`'s ranking (the description encoder's similarity), best first
            hits = adapters.search_adapters(q, limit, exact=by == "words")
        else:
            hits = [(None, r) for r in adapters.list_adapters(None, None, "created", "lm-eval").rows[:limit]]
        reg = open_registry()
        tags = reg.tags([r.id for _, r in hits])
        return {
            "object": "list",
            "data": [r.as_dict(tags[r.id]) | ({} if sim is None else {"similarity": sim}) for sim, r in hits],
        }

    @app.get("/v1/adapters/{ref}")
    def details(ref: str):
        return public(serve.adapter_page(ref))

    @app.get("/v1/adapters/{ref}/download")
    def download(ref: str, format: Literal["safetensors", "peft"] = "safetensors"):
        if format == "peft":
            name, data = serve.adapter_zip(ref)
            return Response(data, media_type="application/zip", headers={"Content-Disposition": attachment(name)})
        name, path = serve.adapter_download(ref)
        return FileResponse(path, media_type="application/octet-stream", filename=name)


def attachment(name: str) -> str:
    """A Content-Disposition offering the file `name`, quoted as the single-file route's (Starlette's FileResponse):
    a plain filename="..." when the name needs no escaping, else RFC 5987's filename*=utf-8''... (RFC 6266)."""
    from urllib.parse import quote

    quoted = quote(name)
    return f"attachment; filename*=utf-8''{quoted}" if quoted != name else f'attachment; filename="{name}"'
