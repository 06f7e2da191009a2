"""Talking to a base model, bare or with an adapter applied through the hooks eval uses (no PEFT merge, no reload).

`Engine` holds one loaded base; `Engine.generate` returns a `Generation`, an iterator of text pieces as tokens are
sampled, which knows its token counts and why it stopped once it is done. Generation is a plain loop over the KV
cache, so the same prompt, settings and seed give the same tokens wherever it runs (`t2l run`, `t2l chat`,
`t2l serve`). One generation runs at a time on an engine (a lock): adapters live in forward hooks on the shared
modules, so two at once would add each other's deltas.
"""

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from t2l.errors import T2LError

Status = Callable[[str], None]


@dataclass(frozen=True)
class Sampling:
    """How the next token is picked and when generation stops."""

    max_new_tokens: int = 256
    temperature: float = 0.7  # 0: greedy (always the likeliest token)
    top_p: float = 1.0  # nucleus sampling: draw only from the likeliest tokens holding this much probability
    seed: int | None = None  # the same seed, prompt and adapter give the same answer; None: a fresh draw
    stop: tuple[str, ...] = ()  # the answer ends before the first of these strings

    def check(self) -> "Sampling":
        if self.max_new_tokens < 1:
            raise T2LError(f"max new tokens must be 1 or more, not {self.max_new_tokens}")
        if not 0 <= self.temperature <= 2:
            raise T2LError(f"temperature must be between 0 and 2, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise T2LError(f"top_p must be above 0 and at most 1, not {self.top_p}")
        return self


@dataclass
class LoadedAdapter:
    """An adapter's weights in BatchedLoRA's layout, on the engine's device, ready to hook in."""

    label: str
    targets: object  # t2l.config.TargetSet
    weights: dict
    scaling: float


def transcript(messages: list[dict]) -> str:
    """The conversation as plain text, for a base model without a chat template."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


class Engine:
    """A base model loaded once, taking adapter after adapter."""

    def __init__(self, model, tokenizer, ref, device: str = "cpu"):
        self.model, self.tokenizer, self.ref, self.device = model, tokenizer, ref, device
        self.lock = threading.Lock()
        config_eos = getattr(model.generation_config, "eos_token_id", None)
        ends = config_eos if isinstance(config_eos, list) else [config_eos]
        self.end_ids = {i for i in [tokenizer.eos_token_id, *ends] if i is not None}

    @classmethod
    def load(cls, base_spec: str, dtype: str = "float32", device: str = "auto",
             on_status: Status | None = None) -> "Engine":
        from t2l.base import load_base
        from t2l.device import resolve_device

        model, tokenizer, ref = load_base(base_spec, dtype=dtype, on_status=on_status)
        where = resolve_device(device)
        return cls(model.to(where), tokenizer, ref, where)

    @property
    def context_length(self) -> int:
        """Prompt plus answer tokens the model takes at most."""
        return int(self.model.config.max_position_embeddings)

    def adapter(self, tensors: dict, peft_config: dict, info, label: str) -> LoadedAdapter:
        """An adapter's tensors ready to apply; refused when made for another base."""
        from t2l.eval.run import adapter_weights

        if info is not None and not info.base.same_weights(self.ref):
            raise T2LError(f"{label} was made for base model {info.base.name} (sha256 {info.base.sha256[:12]}), "
                           f"not {self.ref.name} (sha256 {self.ref.sha256[:12]}); use it with --base "
                           f"{info.base_spec}")
        targets, weights, scaling = adapter_weights(self.model, tensors, peft_config)
        weights = {m: (a.to(self.device), b.to(self.device)) for m, (a, b) in weights.items()}
        return LoadedAdapter(label, targets, weights, scaling)

    def adapter_file(self, path: Path, label: str) -> LoadedAdapter:
        from t2l.adapter import read_adapter

        tensors, info, peft_config = read_adapter(path)
        return self.adapter(tensors, peft_config, info, label)

    def chat_ids(self, messages: list[dict]) -> list[int]:
        """The conversation in the base model's chat template, ready for the assistant's turn (a plain transcript
        when the tokenizer has no template)."""
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer(transcript(messages))["input_ids"]

    def raw_ids(self, text: str) -> list[int]:
        """Plain completion: the text as it is, with the tokenizer's own special tokens."""
        return self.tokenizer(text)["input_ids"]

    def check_room(self, prompt_tokens: int, max_new_tokens: int) -> None:
        if prompt_tokens + max_new_tokens > self.context_length:
            raise T2LError(f"the prompt's {prompt_tokens} tokens and {max_new_tokens} new ones exceed the model's "
                           f"context of {self.context_length} tokens; shorten the prompt or ask for fewer tokens")

    def generate(self, prompt_ids: list[int], sampling: Sampling,
                 adapter: LoadedAdapter | None = None) -> "Generation":
        """The answer to `prompt_ids`, as an iterator of text pieces; checked before anything runs."""
        if not prompt_ids:
            raise T2LError("the prompt is empty; give some text to answer")
        self.check_room(len(prompt_ids), sampling.check().max_new_tokens)
        return Generation(self, prompt_ids, sampling, adapter)


@dataclass
class Generation:
    """One answer being generated: iterate for its text pieces; the counts are final once iteration ends. Closing
    it early (or Ctrl-C) stops at the last token, with finish_reason 'interrupted'."""

    engine: Engine
    prompt_ids: list[int]
    sampling: Sampling
    adapter: LoadedAdapter | None
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # 'stop' (end token or stop string), 'length', 'interrupted'
    seconds: float = 0.0
    first_token_s: float | None = None

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)

    def __iter__(self) -> Iterator[str]:
        from contextlib import nullcontext

        from t2l.lora_batched import BatchedLoRA

        engine, start = self.engine, time.perf_counter()
        self.finish_reason = "interrupted"
        with engine.lock:
            hooks = BatchedLoRA(engine.model, self.adapter.targets, self.adapter.scaling) if self.adapter else None
            try:
                with hooks.use(self.adapter.weights) if hooks else nullcontext():
                    yield from self._pieces(start)
            finally:
                if hooks is not None:
                    hooks.remove()
                self.seconds = time.perf_counter() - start

    def _pieces(self, start: float) -> Iterator[str]:
        """Tokens sampled one by one over the KV cache; text is let out only once no stop string can still begin in
        it and it does not end inside a multi-byte character."""
        import inspect

        import torch
        from transformers import DynamicCache

        engine, s = self.engine, self.sampling
        # transformers 5 renamed past_key_values to cache; the cache object is filled in place either way
        cache = DynamicCache()
        cache_arg = {("cache" if "cache" in inspect.signature(engine.model.forward).parameters
                      else "past_key_values"): cache}
        draw = torch.Generator().manual_seed(s.seed if s.seed is not None else random.getrandbits(63))
        hold = max((len(x) for x in s.stop), default=1) - 1
        sent = 0
        with torch.no_grad():
            out = engine.model(input_ids=torch.tensor([self.prompt_ids], device=engine.device), use_cache=True,
                               logits_to_keep=1, **cache_arg)
            for _ in range(s.max_new_tokens):
                token = _pick(out.logits[0, -1].float().cpu(), s, draw)
                if token in engine.end_ids:
                    self.finish_reason = "stop"
                    break
                self.token_ids.append(token)
                if self.first_token_s is None:
                    self.first_token_s = time.perf_counter() - start
                text = engine.tokenizer.decode(self.token_ids, skip_special_tokens=True)
                ends = [i for i in (text.find(x) for x in s.stop) if i >= 0]
                if ends:
                    self.text = text[: min(ends)]
                    self.finish_reason = "stop"
                    break
                self.text = text
                ready = len(text) - hold
                if ready > sent and not text[:ready].endswith("\ufffd"):
                    yield text[sent:ready]
                    sent = ready
                out = engine.model(input_ids=torch.tensor([[token]], device=engine.device),
                                   use_cache=True, **cache_arg)
            else:
                self.finish_reason = "length"
        if len(self.text) > sent:
            yield self.text[sent:]

    def run(self) -> "Generation":
        """Generate to the end without looking at the pieces."""
        for _ in self:
            pass
        return self


def _pick(logits, s: Sampling, draw) -> int:
    import torch

    if s.temperature == 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / s.temperature, -1)
    if s.top_p < 1:
        ranked, order = probs.sort(descending=True)
        ranked = ranked * (ranked.cumsum(0) - ranked < s.top_p)  # the likeliest tokens up to top_p, at least one
        return int(order[torch.multinomial(ranked, 1, generator=draw)])
    return int(torch.multinomial(probs, 1, generator=draw))
