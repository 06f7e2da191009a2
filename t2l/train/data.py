"""Examples -> token ids with the loss on output tokens only."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads on first use
    import torch

IGNORE = -100


@dataclass(frozen=True)
class Example:
    task: int  # index into the list of tasks (and of their description embeddings)
    input: str
    output: str


def prompt_text(tokenizer, text: str) -> str:
    """The prompt as training and `t2l run` show it: the user's turn of the chat template, or the text and a
    newline for a model without one."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
    return text + "\n"


def encode_example(tokenizer, ex: Example, max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels): the prompt as the model sees it at inference, then the output and EOS.

    With a chat template the input is the user's turn and the output the assistant's; without one, the output
    follows the input after a newline. Prompt tokens get label IGNORE; a too-long prompt is cut from the left
    so the output survives.
    """
    p = tokenizer(prompt_text(tokenizer, ex.input), add_special_tokens=not tokenizer.chat_template)["input_ids"]
    o = tokenizer(ex.output, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    o = o[:max_length]
    p = p[max(0, len(p) - (max_length - len(o))) :]
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

    def encoded(self, rows: list[int]) -> list[tuple[list[int], list[int]]]:
        for r in rows:
            if r not in self.cache:
                self.cache[r] = encode_example(self.tokenizer, self.examples[r], self.max_length)
        return [self.cache[r] for r in rows]

    def batch(self, rows: list[int]):
        """One example per row, right-padded to the longest."""
        return collate(self.encoded(rows), self.tokenizer.pad_token_id)

    def pack(self, rows: list[int]) -> "Packed":
        """Examples end to end in rows of at most max_length tokens."""
        return pack(self.encoded(rows), self.max_length, self.tokenizer.pad_token_id)


@dataclass
class Packed:
    """Several examples per row, end to end: no example spans two rows and none sees another (a block-diagonal causal
    mask, positions restarting at 0). `route[i, t]` is the index (into the batch) of the example token t belongs to,
    -1 on the padding after the last example of a row."""

    ids: "torch.Tensor"  # [R, T]
    mask: "torch.Tensor"  # [R, 1, T, T] bool: True where a query may attend a key
    labels: "torch.Tensor"  # [R, T]
    positions: "torch.Tensor"  # [R, T]
    route: "torch.Tensor"  # [R, T]

    @property
    def tokens(self) -> int:
        return int((self.route >= 0).sum())


def pack(rows: list[tuple[list[int], list[int]]], width: int, pad_id: int) -> Packed:
    """As few rows of at most `width` tokens as the examples fill, balanced: longest first, each into the row that
    holds least so far (the rows' length is the longest row's, so balanced rows carry least padding)."""
    import torch

    lengths = [len(x) for x, _ in rows]
    if max(lengths) > width:
        raise ValueError(f"an example of {max(lengths)} tokens does not fit a packed row of {width}")
    n_rows = -(-sum(lengths) // width)
    while True:
        bins: list[list[int]] = [[] for _ in range(n_rows)]
        used = [0] * n_rows
        for i in sorted(range(len(rows)), key=lambda i: -lengths[i]):
            j = min(range(n_rows), key=used.__getitem__)
            bins[j].append(i)
            used[j] += lengths[i]
        if max(used) <= width:
            break
        n_rows += 1
    t = max(used)
    ids = torch.full((len(bins), t), pad_id, dtype=torch.long)
    labels = torch.full((len(bins), t), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(bins), t), dtype=torch.long)
    route = torch.full((len(bins), t), -1, dtype=torch.long)
    for r, members in enumerate(bins):
        start = 0
        for i in members:
            x, y = rows[i]
            end = start + len(x)
            ids[r, start:end], labels[r, start:end] = torch.tensor(x), torch.tensor(y)
            labels[r, start] = IGNORE  # never a target across the boundary with the example before
            positions[r, start:end], route[r, start:end] = torch.arange(len(x)), i
            start = end
    same = route[:, :, None] == route[:, None, :]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    mask = (same & causal & (route[:, None, :] >= 0))[:, None]
    mask |= torch.eye(t, dtype=torch.bool)  # padding queries attend themselves: no all-masked row (NaN in softmax)
    return Packed(ids, mask, labels, positions, route)
