"""Talking to a base model, bare or with an adapter applied through the hooks eval uses (no PEFT merge, no reload).

`Engine` holds one loaded base and its running batch (`t2l.scheduler`); `Engine.generate` returns a `Generation`,
an iterator of text pieces as tokens are sampled, which knows its token counts and why it stopped once it is done.
Many generations run at once, each in its own row of the batch with its own adapter; the same prompt, settings and
seed give the same tokens wherever it runs (`t2l run`, `t2l chat`, `t2l serve`), alone or beside others.
"""

import queue
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from t2l.callbacks import Status
from t2l.errors import T2LError
from t2l.lora_batched import LoRAWeights, lora_weights
from t2l.sampling import Sampling  # t2l.chat.Sampling too
from t2l.scheduler import END, Scheduler


def transcript(messages: list[dict]) -> str:
    """The conversation as plain text, for a base model without a chat template."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


class Engine:
    """A base model loaded once, taking adapter after adapter, up to `max_batch` answers at a time."""

    def __init__(self, model, tokenizer, ref, device: str = "cpu", max_batch: int = 8):
        self.model, self.tokenizer, self.ref, self.device = model, tokenizer, ref, device
        config_eos = getattr(model.generation_config, "eos_token_id", None)
        ends = config_eos if isinstance(config_eos, list) else [config_eos]
        self.end_ids = {i for i in [tokenizer.eos_token_id, *ends] if i is not None}
        self.scheduler = Scheduler(model, tokenizer, self.end_ids, device, max_batch)

    @classmethod
    def load(
        cls,
        base_spec: str,
        dtype: str = "float32",
        device: str = "auto",
        on_status: Status | None = None,
        max_batch: int = 8,
    ) -> "Engine":
        from t2l.base import load_base
        from t2l.device import resolve_device

        model, tokenizer, ref = load_base(base_spec, dtype=dtype, on_status=on_status)
        where = resolve_device(device)
        return cls(model.to(where), tokenizer, ref, where, max_batch)

    @property
    def context_length(self) -> int:
        """Prompt plus answer tokens the model takes at most."""
        return int(self.model.config.max_position_embeddings)

    def adapter(self, tensors: dict, peft_config: dict, info, label: str) -> LoRAWeights:
        """An adapter's tensors ready to apply; refused when made for another base."""
        if info is not None and not info.base.same_weights(self.ref):
            raise T2LError(
                f"{label} was made for base model {info.base.name} (sha256 {info.base.sha256[:12]}), "
                f"not {self.ref.name} (sha256 {self.ref.sha256[:12]}); use it with --base "
                f"{info.base_spec}"
            )
        return lora_weights(self.model, tensors, peft_config, label).to(self.device)

    def adapter_file(self, path: Path, label: str) -> LoRAWeights:
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
            raise T2LError(
                f"the prompt's {prompt_tokens} tokens and {max_new_tokens} new ones exceed the model's "
                f"context of {self.context_length} tokens; shorten the prompt or ask for fewer tokens"
            )

    def generate(self, prompt_ids: list[int], sampling: Sampling, adapter: LoRAWeights | None = None) -> "Generation":
        """The answer to `prompt_ids`, as an iterator of text pieces; checked before anything runs."""
        if not prompt_ids:
            raise T2LError("the prompt is empty; give some text to answer")
        self.check_room(len(prompt_ids), sampling.check().max_new_tokens)
        return Generation(self, prompt_ids, sampling, adapter)


@dataclass
class Generation:
    """One answer being generated: iterate for its text pieces (the answer joins the engine's batch on the first
    one); the counts are final once iteration ends. Closing it early (or Ctrl-C) drops its row at the next step,
    with finish_reason 'interrupted'."""

    engine: Engine
    prompt_ids: list[int]
    sampling: Sampling
    adapter: LoRAWeights | None
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[tuple[float, list[tuple[int, float]]]] = field(default_factory=list)  # per token, with logprobs
    finish_reason: str | None = None  # 'stop' (end token or stop string), 'length', 'interrupted'
    seconds: float = 0.0
    first_token_s: float | None = None  # from submission to the first token, waiting for room included
    submitted: float = 0.0
    seed: int = 0
    pieces: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def __post_init__(self):
        self.seed = self.sampling.seed if self.sampling.seed is not None else random.getrandbits(63)

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)

    def __iter__(self) -> Iterator[str]:
        self.submitted = time.perf_counter()
        self.engine.scheduler.submit(self)
        try:
            while (item := self.pieces.get()) is not END:
                yield item
            if self.error is not None:
                raise self.error
        finally:
            if not self.done.is_set():  # closed early: the row leaves at the next step; wait for the final counts
                self.cancel()
                self.done.wait()

    def run(self) -> "Generation":
        """Generate to the end without looking at the pieces."""
        for _ in self:
            pass
        return self

    def cancel(self) -> None:
        """Stop at the next step (a caller that went away); iteration then ends with 'interrupted'."""
        self.cancelled.set()
        self.engine.scheduler.wake()

    # -- called by the scheduler's thread ------------------------------------------------------------------------

    def started(self) -> None:
        self.finish_reason = "interrupted"

    def put(self, piece: str) -> None:
        self.pieces.put(piece)

    def finish(self, reason: str) -> None:
        self.finish_reason, self.seconds = reason, time.perf_counter() - self.submitted
        self.done.set()
        self.pieces.put(END)

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.finish("interrupted")
