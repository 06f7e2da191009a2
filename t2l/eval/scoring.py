"""Log-likelihood of continuations, as lm-evaluation-harness computes it, with the shared context computed once.

Requests that share a context (the choices of one question) form a group: the contexts of a batch of groups run
once, their key/value cache is repeated for each choice, and only the choices' tokens run after it. Only the
positions of a continuation go through the LM head (lm-eval takes a log-softmax over the whole vocabulary at
every position). Groups are sorted longest first so padding stays small.
"""

import inspect
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F

from t2l.lm import head_logits


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of context and continuation, split the way lm-eval splits them: trailing spaces of the context move
    to the continuation, and the continuation's ids are those of the whole string after the context's."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    if not ctx:  # lm-eval conditions an empty context on the end-of-text token
        return [tokenizer.eos_token_id], whole
    return ctx, whole[len(ctx) :]


def _padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r, dtype=torch.long), 1
    return ids, mask


@torch.no_grad()
def loglikelihoods(
    model,
    tokenizer,
    pairs: list[tuple[str, str]],
    batch_size: int = 16,
    max_length: int = 2048,
    on_progress: Callable[[int], None] | None = None,
) -> list[tuple[float, bool]]:
    """(summed log-probability of the continuation, whether it is the greedy continuation) for each pair.
    `batch_size` counts contexts (questions) per forward."""
    from transformers import DynamicCache

    encoded = [encode_pair(tokenizer, c, x) for c, x in pairs]
    groups: dict[tuple, list[int]] = {}
    for i, (ctx, _) in enumerate(encoded):
        groups.setdefault(tuple(ctx), []).append(i)
    order = sorted(groups, key=lambda c: -(len(c) + max(len(encoded[i][1]) for i in groups[c])))
    decoder, device, pad = model.get_decoder(), next(model.parameters()).device, tokenizer.pad_token_id or 0
    # transformers 5 renamed past_key_values to cache; take whichever this version's decoder has
    cache_arg = "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"
    results: list[tuple[float, bool] | None] = [None] * len(pairs)
    for start in range(0, len(order), batch_size):
        contexts = order[start : start + batch_size]
        members = [groups[c] for c in contexts]
        longest = max(len(encoded[i][1]) for m in members for i in m)
        ctx_rows = [list(c)[-(max_length - longest) :] for c in contexts]  # lm-eval cuts long contexts on the left
        ctx_ids, ctx_mask = _padded(ctx_rows, pad)
        cache = DynamicCache()
        ctx_hidden = decoder(
            input_ids=ctx_ids.to(device), attention_mask=ctx_mask.to(device), use_cache=True, **{cache_arg: cache}
        ).last_hidden_state
        rows = [(g, i) for g, m in enumerate(members) for i in m]
        # A continuation's last token is only ever a target, never an input: one-token continuations (boolq's
        # yes/no) need no second pass at all, and the others one position less.
        inputs = [encoded[i][1][:-1] for _, i in rows]
        hidden = ctx_hidden.new_zeros(len(rows), 0, ctx_hidden.shape[-1])  # stays empty without a second pass
        if any(inputs):
            # an int64 tensor is a LongTensor; torch's stubs do not say so
            cache.reorder_cache(torch.tensor([g for g, _ in rows], device=device))  # type: ignore[arg-type]
            cont_ids, cont_mask = _padded(inputs, pad)
            lengths = torch.tensor([len(ctx_rows[g]) for g, _ in rows])
            positions = lengths[:, None] + torch.arange(cont_ids.shape[1])[None]
            hidden = decoder(
                input_ids=cont_ids.to(device),
                position_ids=positions.to(device),
                attention_mask=torch.cat([ctx_mask[[g for g, _ in rows]], cont_mask], 1).to(device),
                use_cache=True,
                **{cache_arg: cache},
            ).last_hidden_state
        # every continuation position of the batch goes through the LM head in one matmul: the head's weight is
        # read once per batch instead of once per choice (per-choice calls cost more than the whole decoder here)
        states = torch.cat(
            [
                torch.cat([ctx_hidden[g, len(ctx_rows[g]) - 1 : len(ctx_rows[g])], hidden[r, : len(inputs[r])]])
                for r, (g, _) in enumerate(rows)
            ]
        )
        logp = F.log_softmax(head_logits(model, states), dim=-1)
        targets = torch.tensor([t for _, i in rows for t in encoded[i][1]], device=logp.device)
        picked, greedy = logp.gather(1, targets[:, None])[:, 0], logp.argmax(-1) == targets
        offset = 0
        for _, i in rows:
            n = len(encoded[i][1])
            results[i] = (picked[offset : offset + n].sum().item(), bool(greedy[offset : offset + n].all()))
            offset += n
        if on_progress:
            on_progress(len(rows))
    return cast("list[tuple[float, bool]]", results)  # every pair's slot is filled by now
