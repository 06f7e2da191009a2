"""One running batch over a loaded base model: continuous batching with a different adapter in every row.

A request waits in a first-come-first-served queue until the batch has room, then joins at the next step: its
prompt is run (prefill, under its own adapter; requests joining at the same step together, left-padded), its KV
cache is left-padded to the batch's length and stacked in, and from then on one forward per step feeds every row
its last token. Row i gets its own A_i and B_i through `BatchedLoRA` (the per-row path training uses; a base row
gets zeros, which add exactly nothing), its own position ids, sampling settings, seed, stop strings and token
budget. A finished or abandoned row leaves at the end of the step it finished in; the others go on.

Every model forward happens on the scheduler's one thread; callers hand it a `Generation` and read its pieces from
a queue (`t2l.chat`).
"""

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from t2l.config import TargetSet
from t2l.lora_batched import BatchedLoRA, LoRAWeights
from t2l.targets import find_targets

if TYPE_CHECKING:
    from t2l.chat import Generation

END = object()  # the last item a generation's queue receives


@dataclass
class Stats:
    """What /metrics reports; updated by the scheduler thread only."""

    requests: int = 0  # rows admitted so far
    tokens: int = 0  # tokens generated so far
    rows: int = 0  # rows in the running batch now
    waiting: int = 0  # rows queued for room in the batch
    first_token_s: list[float] = field(default_factory=list)  # of every finished row (the last 1,000)
    busy_s: float = 0.0  # time spent running forwards


@dataclass
class _Row:
    gen: "Generation"
    draw: torch.Generator
    length: int  # tokens of this row in the KV cache (its next position)
    pending: int = -1  # the last sampled token, fed at the next step
    sent: int = 0  # characters of the text handed out so far


class Scheduler:
    def __init__(self, model, tokenizer, end_ids: set[int], device: str, max_batch: int = 8):
        self.model, self.tokenizer, self.end_ids, self.device = model, tokenizer, end_ids, device
        self.max_batch = max_batch
        self.cv = threading.Condition()
        self.waiting: deque["Generation"] = deque()
        self.rows: list[_Row] = []
        self.pads: list[int] = []  # left padding of each row in the batch cache
        self.cache: Any = None  # the batch's transformers Cache, None while no row runs
        self.closing = False
        self.thread: threading.Thread | None = None
        self.stats = Stats()
        self.targets = TargetSet()  # every module type an adapter has brought so far, hooked once
        self.lora: BatchedLoRA | None = None
        self.stacked: tuple | None = None  # (weights, scale) of the batch's rows, rebuilt when they change
        import inspect

        # transformers 5 renamed past_key_values to cache; the cache object is filled in place either way
        self.cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    # -- the callers' side ---------------------------------------------------------------------------------------

    def submit(self, gen: "Generation") -> None:
        from t2l.errors import T2LError

        with self.cv:
            if self.closing:
                raise T2LError("the server is shutting down; send the request again once it is back")
            self.waiting.append(gen)
            self.stats.waiting = len(self.waiting)
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="t2l-batch", daemon=True)
                self.thread.start()
            self.cv.notify()

    def wake(self) -> None:
        with self.cv:
            self.cv.notify()

    def drain(self, seconds: float) -> None:
        """Stop admitting, let running answers finish for at most `seconds`, then stop the rest ('interrupted')."""
        with self.cv:
            self.closing = True
            queued = list(self.waiting)
        for gen in queued:
            gen.cancel()
        deadline = time.monotonic() + seconds
        while (self.rows or self.waiting) and time.monotonic() < deadline:
            time.sleep(0.05)
        for row in list(self.rows):
            row.gen.cancel()
        while self.rows or self.waiting:
            time.sleep(0.01)

    # -- the loop ------------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self.cv:
                while not self.waiting and not self.rows:
                    self.cv.wait()
                room = self._room() - len(self.rows)
                joining = [self.waiting.popleft() for _ in range(min(room, len(self.waiting)))]
                self.stats.waiting = len(self.waiting)
            try:
                with torch.no_grad():
                    if joining:
                        self._admit(joining)
                    self._leave()
                    if self.rows:
                        self._step()
                        self._leave()
            except BaseException as e:  # noqa: BLE001 - every waiting caller hears of it, then the loop goes on
                for row in self.rows:
                    row.gen.fail(e)
                for gen in joining:
                    if not gen.done.is_set():
                        gen.fail(e)
                self.rows, self.pads, self.cache, self.stacked = [], [], None, None
            self.stats.rows = len(self.rows)

    def _room(self) -> int:
        """Rows the batch takes: max_batch, or 1 for a cache whose layers cannot be stacked row by row."""
        from transformers.cache_utils import DynamicLayer

        if self.cache is not None and any(type(layer) is not DynamicLayer for layer in self.cache.layers):
            return 1
        return max(1, self.max_batch)

    def _admit(self, gens: list) -> None:
        """Prefill the joining requests in one forward (left-padded to the longest prompt, each under its own
        adapter), take each one's first token, and stack the caches of those that go on into the batch. One joiner
        alone runs exactly as a lone request does: no padding, no mask."""
        from transformers import DynamicCache

        live = []
        for gen in gens:
            if gen.cancelled.is_set():
                gen.finish("interrupted")
            else:
                gen.started()
                live.append(gen)
        if not live:
            return
        width = max(len(g.prompt_ids) for g in live)
        pads = [width - len(g.prompt_ids) for g in live]
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([[pad_id] * p + g.prompt_ids for p, g in zip(pads, live)], device=self.device)
        padded = {}
        if any(pads):
            padded["attention_mask"] = torch.tensor(
                [[0] * p + [1] * len(g.prompt_ids) for p, g in zip(pads, live)], device=self.device
            )
            padded["position_ids"] = torch.tensor(
                [[0] * p + list(range(len(g.prompt_ids))) for p, g in zip(pads, live)], device=self.device
            )
        cache = DynamicCache()
        t0 = time.perf_counter()
        with self._adapters([g.adapter for g in live], running=False):
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1, **padded, **{self.cache_name: cache})
        self.stats.busy_s += time.perf_counter() - t0
        self.stats.requests += len(live)
        logits = out.logits[:, -1].float().cpu()
        rows = [_Row(g, torch.Generator().manual_seed(g.seed), len(g.prompt_ids)) for g in live]
        going = [i for i, row in enumerate(rows) if not self._take(row, self._pick(row, logits[i]))]
        if going:
            if len(going) < len(rows):
                _select(cache, torch.tensor(going, device=self.device))
            self._stack_in(cache, [rows[i] for i in going], [pads[i] for i in going])

    def _step(self) -> None:
        """One token for every row of the batch."""
        ids = torch.tensor([[r.pending] for r in self.rows], device=self.device)
        positions = torch.tensor([[r.length] for r in self.rows], device=self.device)
        width = self.cache.get_seq_length() + 1
        mask = None
        if any(self.pads):
            mask = torch.ones(len(self.rows), width, dtype=torch.long, device=self.device)
            for i, pad in enumerate(self.pads):
                mask[i, :pad] = 0
        t0 = time.perf_counter()
        with self._adapters([r.gen.adapter for r in self.rows], running=True):
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **{self.cache_name: self.cache},
            )
        self.stats.busy_s += time.perf_counter() - t0
        logits = out.logits[:, -1].float().cpu()
        for i, row in enumerate(self.rows):
            row.length += 1
            if not row.gen.cancelled.is_set():
                self._take(row, self._pick(row, logits[i]))

    @staticmethod
    def _pick(row: _Row, logits: torch.Tensor) -> int:
        gen = row.gen
        return pick(
            logits, gen.sampling, row.draw, gen.token_ids, gen.logprobs if gen.sampling.logprobs is not None else None
        )

    def _take(self, row: _Row, token: int) -> bool:
        """Record a sampled token; hand out the text no stop string can still begin in. True when the row is done.
        Text that ends inside a multi-byte character waits for the rest of it."""
        gen, s = row.gen, row.gen.sampling
        if token in self.end_ids:
            del gen.logprobs[len(gen.token_ids) :]  # the end token is no part of the answer
            return self._finish(row, "stop")
        gen.token_ids.append(token)
        self.stats.tokens += 1
        if gen.first_token_s is None:
            gen.first_token_s = time.perf_counter() - gen.submitted
        text = self.tokenizer.decode(gen.token_ids, skip_special_tokens=True)
        ends = [i for i in (text.find(x) for x in s.stop) if i >= 0]
        if ends:
            gen.text = text[: min(ends)]
            return self._finish(row, "stop")
        gen.text = text
        ready = len(text) - (max((len(x) for x in s.stop), default=1) - 1)
        if ready > row.sent and not text[:ready].endswith("\ufffd"):
            gen.put(text[row.sent : ready])
            row.sent = ready
        if len(gen.token_ids) >= s.max_new_tokens:
            return self._finish(row, "length")
        row.pending = token
        return False

    def _finish(self, row: _Row, reason: str) -> bool:
        if len(row.gen.text) > row.sent:
            row.gen.put(row.gen.text[row.sent :])
        row.gen.finish(reason)
        if row.gen.first_token_s is not None:
            self.stats.first_token_s = (self.stats.first_token_s + [row.gen.first_token_s])[-1000:]
        return True

    def _leave(self) -> None:
        """Rows that finished or whose caller went away leave the batch; the cache keeps only the others, cut to the
        longest of them."""
        for row in self.rows:
            if row.gen.cancelled.is_set() and not row.gen.done.is_set():
                row.gen.finish("interrupted")
        keep = [i for i, r in enumerate(self.rows) if not r.gen.done.is_set()]
        if len(keep) == len(self.rows):
            return
        self.stacked = None
        self.rows, self.pads = [self.rows[i] for i in keep], [self.pads[i] for i in keep]
        if not keep:
            self.cache = None
            return
        _select(self.cache, torch.tensor(keep, device=self.device), cut := min(self.pads))
        self.pads = [p - cut for p in self.pads]

    def _stack_in(self, cache, rows: list[_Row], pads: list[int]) -> None:
        """New rows' cache (left padding `pads`) joins the batch's, the shorter of the two left-padded to the other's
        length."""
        self.stacked = None
        if self.cache is None:
            _select(cache, torch.arange(len(rows), device=self.device), cut := min(pads))
            self.cache, self.rows, self.pads = cache, rows, [p - cut for p in pads]
            return
        have, new = self.cache.get_seq_length(), cache.get_seq_length()
        width = max(have, new)
        for mine, theirs in zip(self.cache.layers, cache.layers):
            mine.keys = torch.cat([_left_pad(mine.keys, width - have), _left_pad(theirs.keys, width - new)])
            mine.values = torch.cat([_left_pad(mine.values, width - have), _left_pad(theirs.values, width - new)])
        self.pads = [p + width - have for p in self.pads] + [p + width - new for p in pads]
        self.rows += rows

    # -- adapters ------------------------------------------------------------------------------------------------

    def _adapters(self, adapters: list[LoRAWeights | None], running: bool):
        """The hooks with these rows' adapters (row i: adapters[i]; None: the base), or nothing when no row has
        one. The running batch's stack is kept until a row joins or leaves."""
        from contextlib import nullcontext

        if all(a is None for a in adapters):
            return nullcontext()
        self._hook([a for a in adapters if a is not None])
        stacked = self.stacked if running and self.stacked is not None else self._stack(adapters)
        if running:
            self.stacked = stacked
        weights, scale = stacked
        assert self.lora is not None  # _hook made it
        return self.lora.use(weights, scale=scale)

    def _hook(self, adapters: list[LoRAWeights]) -> None:
        """Hooks on every module type the adapters touch (the union grows as adapters of new types arrive)."""
        modules = set(self.targets.modules)
        if all(set(a.targets.modules) <= modules for a in adapters):
            return
        if self.lora is not None:
            self.lora.remove()
        self.stacked = None
        wanted = self.targets.modules + [m for a in adapters for m in a.targets.modules if m not in modules]
        self.targets = find_targets(self.model, list(dict.fromkeys(wanted)))
        self.lora = BatchedLoRA(self.model, self.targets, 1.0)

    def _stack(self, adapters: list[LoRAWeights | None]) -> tuple[dict, torch.Tensor]:
        """Row i's A and B for every hooked module ({module: (A [N, layers, r, in], B [N, layers, out, r])}, zeros
        where row i has no adapter or none on that module; ranks padded to the largest) and each row's scaling."""
        rank = max(a.weights[m][0].shape[2] for a in adapters if a is not None for m in a.weights)
        weights = {}
        for m in self.targets.modules:
            t = self.targets.of(m)
            a_rows, b_rows = [], []
            for ad in adapters:
                a = torch.zeros(1, len(t), rank, t[0].in_features, device=self.device)
                b = torch.zeros(1, len(t), t[0].out_features, rank, device=self.device)
                if ad is not None and m in ad.weights:
                    wa, wb = ad.weights[m]
                    a[:, :, : wa.shape[2]], b[:, :, :, : wb.shape[3]] = wa, wb
                a_rows.append(a)
                b_rows.append(b)
            weights[m] = (torch.cat(a_rows), torch.cat(b_rows))
        scale = torch.tensor([a.scaling if a is not None else 0.0 for a in adapters], device=self.device)
        return weights, scale


def _select(cache, index: torch.Tensor, cut: int = 0) -> None:
    """Keep rows `index` of the cache, without its first `cut` positions (padding every kept row has)."""
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(0, index)[:, :, cut:]
        layer.values = layer.values.index_select(0, index)[:, :, cut:]


def _left_pad(t: torch.Tensor, n: int) -> torch.Tensor:
    """[B, heads, T, d] with n zero positions in front (masked out by the attention mask)."""
    return F.pad(t, (0, 0, n, 0)) if n else t


def pick(
    logits: torch.Tensor, s, draw: torch.Generator, history: Sequence[int] = (), logprobs: list | None = None
) -> int:
    """The next token from one row's logits under its sampling settings: penalties for what the row generated
    already and the logit bias first (OpenAI's formulas), then greedy or temperature and top-p. With `logprobs`
    (a list), the token's log-probability under the adjusted logits and the `s.logprobs` likeliest alternatives
    are appended to it."""
    if s.frequency_penalty or s.presence_penalty or s.logit_bias:
        logits = logits.clone()
        if history:
            seen, counts = torch.tensor(history).unique(return_counts=True)
            logits[seen] -= s.frequency_penalty * counts + s.presence_penalty
        for token, bias in s.logit_bias:
            logits[token] += bias
    if s.temperature == 0:
        token = int(logits.argmax())
    else:
        probs = torch.softmax(logits / s.temperature, -1)
        if s.top_p < 1:
            ranked, order = probs.sort(descending=True)
            ranked = ranked * (ranked.cumsum(0) - ranked < s.top_p)  # the likeliest tokens up to top_p, at least one
            token = int(order[torch.multinomial(ranked, 1, generator=draw)])
        else:
            token = int(torch.multinomial(probs, 1, generator=draw))
    if logprobs is not None:
        lp = torch.log_softmax(logits, -1)
        top = lp.topk(s.logprobs) if s.logprobs else None
        logprobs.append((float(lp[token]), list(zip(top.indices.tolist(), top.values.tolist())) if top else []))
    return token
