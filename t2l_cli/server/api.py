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

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from registry import RegistryError
from t2l.errors import T2LError
from t2l_cli import actions
from t2l_cli.server.service import Service, UnknownModel

STATIC = Path(__file__).parent / "static"
MAX_MESSAGES = 256  # per request
MAX_CHARS = 100_000  # of message content (or prompt) per request; the context limit is checked in tokens as well
MAX_STOP = 4  # stop strings, as OpenAI allows
OPEN_PATHS = ("/health", "/", "/static/")  # reachable without the API key: the page's files hold no data


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
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None


class ChatRequest(Sampled):
    messages: list[Message]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None


class CompletionRequest(Sampled):
    prompt: str | list[str]


class AdapterRequest(Strict):
    description: str
    name: str | None = None


def error(status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
          code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}}, status)


def create_app(service: Service, api_key: str | None = None) -> FastAPI:
    app = FastAPI(title="t2l", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    _errors(app)
    if api_key:
        _require_key(app, api_key)
    _openai_routes(app, service)
    _adapter_routes(app, service)

    @app.get("/health")
    def health():
        return {"status": "ok", "base": service.base_name}

    @app.get("/")
    def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        return error(400, f"{where or 'body'}: {first['msg']}", param=where or None)

    @app.exception_handler(UnknownModel)
    async def unknown_model(request, exc):
        return error(404, str(exc), param="model", code="model_not_found")

    @app.exception_handler(T2LError)
    async def bad_request(request, exc):
        return error(400, str(exc))

    @app.exception_handler(RegistryError)
    async def not_found(request, exc):
        return error(404 if str(exc).startswith("no ") else 400, str(exc))

    @app.exception_handler(HTTPException)
    async def http(request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail))


def _require_key(app: FastAPI, api_key: str) -> None:
    expected = f"Bearer {api_key}".encode()

    @app.middleware("http")
    async def check_key(request: Request, call_next):
        path = request.url.path
        if path in OPEN_PATHS or path.startswith("/static/"):
            return await call_next(request)
        given = request.headers.get("authorization", "").encode()
        if not secrets.compare_digest(given, expected):
            return error(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY' with the "
                              "key `t2l serve --api-key` was started with", code="invalid_api_key")
        return await call_next(request)


# -- OpenAI's routes --------------------------------------------------------------------------------------------


def _check(req: Sampled) -> list[str]:
    """The request's stop strings, after the checks pydantic's types do not make."""
    if req.n != 1:
        raise T2LError(f"n must be 1 (one answer per request), not {req.n}")
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stop) > MAX_STOP or any(not s for s in stop):
        raise T2LError(f"stop takes at most {MAX_STOP} non-empty strings")
    return stop


def _checked_size(texts: list[str]) -> None:
    if sum(len(t) for t in texts) > MAX_CHARS:
        raise T2LError(f"the request holds more than {MAX_CHARS} characters of text; send less")


def _openai_routes(app: FastAPI, service: Service) -> None:
    engine = service.engine

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [
            {"id": m["id"], "object": "model", "created": int(m["created"].timestamp()) if m.get("created") else 0,
             "owned_by": "t2l", "description": m["description"], "adapter_id": m["adapter_id"]}
            for m in service.models()]}

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest):
        stop = _check(req)
        if not req.messages:
            raise T2LError("messages is empty: send at least one message")
        if len(req.messages) > MAX_MESSAGES:
            raise T2LError(f"messages holds {len(req.messages)} messages, more than the {MAX_MESSAGES} allowed")
        turns = [m.as_turn() for m in req.messages]
        _checked_size([t["content"] for t in turns])
        ids = engine.chat_ids(turns)
        return await _answer(service, req, ids, stop, req.max_completion_tokens or req.max_tokens, chat=True)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        stop = _check(req)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if len(prompts) != 1:
            raise T2LError("prompt must be one string (or a list of one)")
        _checked_size(prompts)
        return await _answer(service, req, engine.raw_ids(prompts[0]), stop, req.max_tokens or 16, chat=False)


async def _answer(service: Service, req: Sampled, ids: list[int], stop: list[str], max_tokens: int | None,
                  chat: bool):
    from t2l.chat import Sampling

    chosen = await run_in_threadpool(service.resolve, req.model)
    adapter = await run_in_threadpool(service.weights, chosen)
    engine = service.engine
    room = engine.context_length - len(ids)
    sampling = Sampling(max_tokens or max(1, min(512, room)), req.temperature, req.top_p, req.seed, tuple(stop))
    generation = engine.generate(ids, sampling, adapter)  # every check before a byte of the answer is sent
    reply = Reply(req.model, chat)
    if req.stream:
        usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(_events(generation, reply, usage), media_type="text/event-stream")
    await run_in_threadpool(generation.run)
    return reply.whole(generation)


class Reply:
    """OpenAI's response objects for one answer."""

    def __init__(self, model: str, chat: bool):
        self.model, self.chat = model, chat
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())

    def _object(self, kind: str, choices: list[dict], **extra) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "choices": choices,
                "system_fingerprint": None, **extra}

    def _choice(self, text: str | None, finish_reason: str | None, delta: bool) -> dict:
        if not self.chat:
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}
        if delta:
            return {"index": 0, "delta": {} if text is None else {"content": text}, "logprobs": None,
                    "finish_reason": finish_reason}
        return {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None}, "logprobs": None,
                "finish_reason": finish_reason}

    @staticmethod
    def usage(generation) -> dict:
        return {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
                "total_tokens": generation.prompt_tokens + generation.completion_tokens}

    def whole(self, generation) -> dict:
        return self._object("chat.completion" if self.chat else "text_completion",
                            [self._choice(generation.text, generation.finish_reason, False)],
                            usage=self.usage(generation))

    def chunk(self, text: str | None, finish_reason: str | None = None) -> dict:
        return self._object("chat.completion.chunk" if self.chat else "text_completion",
                            [self._choice(text, finish_reason, True)])

    def first(self) -> dict | None:
        if not self.chat:
            return None
        opening = self.chunk("")
        opening["choices"][0]["delta"] = {"role": "assistant", "content": ""}
        return opening

    def usage_chunk(self, generation) -> dict:
        return self._object("chat.completion.chunk" if self.chat else "text_completion", [],
                            usage=self.usage(generation))


async def _events(generation, reply: Reply, include_usage: bool):
    """Server-sent events of one answer. The answer is generated on a worker thread that hands pieces over a queue;
    when the client goes away the worker stops at the next token, so the engine is freed for the next request."""
    loop, queue, gone = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()
    end = object()

    def work():
        pieces = iter(generation)
        try:
            for piece in pieces:
                if gone.is_set():
                    break
                loop.call_soon_threadsafe(queue.put_nowait, piece)
        except Exception as e:  # noqa: BLE001 - reported to the client as the stream's last event
            loop.call_soon_threadsafe(queue.put_nowait, e)
        finally:
            pieces.close()
            loop.call_soon_threadsafe(queue.put_nowait, end)

    def event(data) -> str:
        return f"data: {json.dumps(data)}\n\n"

    worker = loop.run_in_executor(None, work)
    try:
        if (opening := reply.first()) is not None:
            yield event(opening)
        while (item := await queue.get()) is not end:
            if isinstance(item, Exception):
                yield event({"error": {"message": str(item), "type": "server_error", "param": None, "code": None}})
                continue
            yield event(reply.chunk(item))
        await worker
        yield event(reply.chunk(None, generation.finish_reason))
        if include_usage:
            yield event(reply.usage_chunk(generation))
        yield "data: [DONE]\n\n"
    finally:
        gone.set()


# -- t2l's routes -----------------------------------------------------------------------------------------------


def _adapter_routes(app: FastAPI, service: Service) -> None:
    @app.post("/v1/adapters", status_code=201)
    def make(req: AdapterRequest):
        chosen = service.describe(req.description, req.name)
        return actions.adapter_details(chosen.adapter_id)

    @app.get("/v1/adapters")
    def listing(q: str | None = None, limit: int = 200):
        if q:
            rows = [r for _, r in actions.search_adapters(q, limit, exact=True)]
        else:
            rows = actions.list_adapters(None, None, "created", "lm-eval").rows[:limit]
        reg = actions.open_registry()
        tags = reg.tags([r.id for r in rows])
        return {"object": "list", "data": [r.as_dict(tags[r.id]) for r in rows]}

    @app.get("/v1/adapters/{ref}")
    def details(ref: str):
        return actions.adapter_page(ref)

    @app.get("/v1/adapters/{ref}/download")
    def download(ref: str, format: Literal["safetensors", "peft"] = "safetensors"):
        if format == "peft":
            name, data = actions.adapter_zip(ref)
            return Response(data, media_type="application/zip",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
        name, path = actions.adapter_download(ref)
        return FileResponse(path, media_type="application/octet-stream", filename=name)
