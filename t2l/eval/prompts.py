"""What goes around a bench's own prompt: few-shot examples, an instruction, the chat template.

Few-shot examples follow lm-evaluation-harness 0.4: drawn with `random.Random(1234)` once per bench, in document
order; each example is its prompt, the target delimiter and the gold answer, followed by a blank line. When the
examples come from the split being evaluated (the packaged data have no train split), k + 1 are drawn and the item
itself is left out, as the harness does. With the chat template the whole text becomes one user message and the
choices follow the assistant prompt without the leading space (the harness's `--apply_chat_template`).
"""

import random
from dataclasses import dataclass, replace

from t2l.eval.benches import Item

FEWSHOT_SEED = 1234
FEWSHOT_DELIMITER = "\n\n"


@dataclass(frozen=True)
class PromptSettings:
    shots: int = 0  # few-shot examples before each item
    chat_template: bool = False  # wrap the prompt in the tokenizer's chat template (lm-eval protocol)
    instruction: str | None = None  # text put before every prompt, then a blank line (the description baseline)
    fewshot_source: str = ""  # the split the examples come from, recorded with the protocol

    def tag(self) -> str:
        """What these settings add to the protocol version stored with a score."""
        parts = [f"{self.shots}shot:{self.fewshot_source}"] if self.shots else []
        parts += ["chat"] if self.chat_template else []
        parts += ["instruction"] if self.instruction else []
        return "".join(f"+{p}" for p in parts)


def fewshot_examples(docs: list[dict], pool: list[dict], shots: int, same_split: bool) -> list[list[dict]]:
    """For each document in order, the `shots` pool documents shown before it."""
    rnd = random.Random(FEWSHOT_SEED)
    chosen = []
    for doc in docs:
        if not same_split:
            chosen.append(rnd.sample(pool, shots))
            continue
        drawn = [d for d in rnd.sample(pool, shots + 1) if d != doc][:shots]
        if len(drawn) < shots:  # the item was drawn more than once (duplicates in the pool): draw from the rest
            drawn = rnd.sample([d for d in pool if d != doc], shots)
        chosen.append(drawn)
    return chosen


def solved(item: Item) -> str:
    """An example as the harness shows it: the gold prompt and answer, then the few-shot delimiter."""
    return item.contexts[item.gold] + item.continuations[item.gold] + FEWSHOT_DELIMITER


def chat(tokenizer, body: str) -> str:
    """`body` as the single user turn of the tokenizer's chat template, ready for the assistant's answer."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": body}], add_generation_prompt=True, tokenize=False
    )


def with_instruction(body: str, instruction: str | None) -> str:
    """The instruction (the description-in-the-prompt baseline), a blank line, then the prompt."""
    return instruction + "\n\n" + body if instruction else body


def wrap(text: str, prefix: str, settings: PromptSettings, tokenizer) -> str:
    body = with_instruction(prefix + text, settings.instruction)
    return chat(tokenizer, body) if settings.chat_template else body


def dress_items(items: list[Item], prefixes: list[str], settings: PromptSettings, tokenizer) -> list[Item]:
    """Items with few-shot prefixes, instruction and chat template applied to their contexts."""
    out = []
    for item, prefix in zip(items, prefixes):
        contexts = [wrap(c, prefix, settings, tokenizer) for c in item.contexts]
        conts = [c.removeprefix(" ") for c in item.continuations] if settings.chat_template else item.continuations
        out.append(replace(item, contexts=contexts, continuations=conts))
    return out


def check_chat_template(tokenizer) -> None:
    from t2l.errors import T2LError

    if not tokenizer.chat_template:
        raise T2LError("this base model's tokenizer has no chat template; drop --chat-template")
