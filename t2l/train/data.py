"""Examples -> token ids with the loss on output tokens only."""

from dataclasses import dataclass

IGNORE = -100


@dataclass(frozen=True)
class Example:
    task: int  # index into the list of tasks (and of their description embeddings)
    input: str
    output: str


def encode_example(tokenizer, ex: Example, max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels): the prompt as the model sees it at inference, then the output and EOS.

    With a chat template the input is the user's turn and the output the assistant's; without one, the output
    follows the input after a newline. Prompt tokens get label IGNORE; a too-long prompt is cut from the left
    so the output survives.
    """
    if tokenizer.chat_template:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": ex.input}], add_generation_prompt=True,
                                               tokenize=False)
    else:
        prompt = ex.input + "\n"
    p = tokenizer(prompt, add_special_tokens=not tokenizer.chat_template)["input_ids"]
    o = tokenizer(ex.output, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    o = o[:max_length]
    p = p[max(0, len(p) - (max_length - len(o))):]
    return p + o, [IGNORE] * len(p) + o


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int):
    """Right-padded input_ids, attention_mask and labels tensors."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return ids, mask, labels


class ExampleBatcher:
    """Tokenizes examples on first use (a collection can hold many more than a run ever draws)."""

    def __init__(self, tokenizer, examples: list[Example], max_length: int):
        self.tokenizer, self.examples, self.max_length = tokenizer, examples, max_length
        self.cache: dict[int, tuple[list[int], list[int]]] = {}

    def batch(self, rows: list[int]):
        for r in rows:
            if r not in self.cache:
                self.cache[r] = encode_example(self.tokenizer, self.examples[r], self.max_length)
        return collate([self.cache[r] for r in rows], self.tokenizer.pad_token_id)
