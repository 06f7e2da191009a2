"""Log-likelihood of continuations, as lm-evaluation-harness computes it, in padded length-sorted batches.

Only the positions of the continuation go through the LM head (lm-eval takes a log-softmax over the whole
vocabulary at every position), and requests are sorted longest first so padding stays small.
"""

from collections.abc import Callable

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


@torch.no_grad()
def loglikelihoods(model, tokenizer, pairs: list[tuple[str, str]], batch_size: int = 16, max_length: int = 2048,
                   on_progress: Callable[[int], None] | None = None) -> list[tuple[float, bool]]:
    """(summed log-probability of the continuation, whether it is the greedy continuation) for each pair."""
    encoded = [encode_pair(tokenizer, c, x) for c, x in pairs]
    order = sorted(range(len(encoded)), key=lambda i: -(len(encoded[i][0]) + len(encoded[i][1])))
    decoder = model.get_decoder()
    device = next(model.parameters()).device
    results: list[tuple[float, bool] | None] = [None] * len(pairs)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        inputs, conts = [], []
        for i in rows:
            ctx, cont = encoded[i]
            inputs.append((ctx + cont)[-(max_length + 1) :][:-1])
            conts.append(cont)
        width = max(len(x) for x in inputs)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, x in enumerate(inputs):
            ids[r, : len(x)], mask[r, : len(x)] = torch.tensor(x), 1
        hidden = decoder(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        for r, (x, cont) in enumerate(zip(inputs, conts)):
            logp = F.log_softmax(head_logits(model, hidden[r, len(x) - len(cont) : len(x)]), dim=-1)
            target = torch.tensor(cont, device=logp.device)
            results[rows[r]] = (logp.gather(1, target[:, None]).sum().item(), bool((logp.argmax(-1) == target).all()))
        if on_progress:
            on_progress(len(rows))
    return results
