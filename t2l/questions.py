"""A multiple-choice question and its lettered form, shared by the letter protocol and the task builders that
write questions to train on."""

from dataclasses import dataclass

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Question:
    """An item as a plain multiple-choice question (the letter protocol letters the choices)."""

    text: str
    choices: list[str]
    gold: int


def letter_prompt(question: Question) -> str:
    lines = [
        question.text,
        *(f"{LETTERS[i]}. {c}" for i, c in enumerate(question.choices)),
        "Answer with the letter of the correct choice.",
    ]
    return "\n".join(lines)
