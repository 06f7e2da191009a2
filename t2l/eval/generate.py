"""Greedy generation until a stop string, in left-padded length-sorted batches."""

from collections.abc import Callable

import torch


class StopOn:
    """Stops each row once its generated text holds a stop string (decoding the new tokens, so it works with any
    tokenizer; transformers' own stop_strings needs a tokenizer whose pieces decode on their own)."""

    def __init__(self, tokenizer, until: list[str], prompt_length: int):
        self.tokenizer, self.until, self.prompt_length = tokenizer, until, prompt_length

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([any(u in t for u in self.until) for t in texts], device=input_ids.device)


def cut(text: str, until: list[str]) -> str:
    ends = [i for i in (text.find(u) for u in until) if i >= 0]
    return text[: min(ends)] if ends else text


@torch.no_grad()
def generate_until(
    model,
    tokenizer,
    prompts: list[str],
    until: list[str],
    max_new_tokens: int = 256,
    batch_size: int = 8,
    on_progress: Callable[[int], None] | None = None,
) -> list[str]:
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    device = next(model.parameters()).device
    out: list[str] = [""] * len(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            enc = tokenizer([prompts[i] for i in rows], return_tensors="pt", padding=True, add_special_tokens=False)
            from transformers import StoppingCriteriaList

            stop = StoppingCriteriaList([StopOn(tokenizer, until, enc["input_ids"].shape[1])] if until else [])
            gen = model.generate(
                input_ids=enc["input_ids"].to(device),
                attention_mask=enc["attention_mask"].to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                stopping_criteria=stop,
            )
            for r, i in enumerate(rows):
                text = tokenizer.decode(gen[r, enc["input_ids"].shape[1] :], skip_special_tokens=True)
                out[i] = cut(text, until)
            if on_progress:
                on_progress(len(rows))
    finally:
        tokenizer.padding_side = side
    return out
