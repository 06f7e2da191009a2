"""Reading answers out of generated text: lm-eval's gsm8k filters, and the letter protocol's letter and number."""

import re

from t2l.questions import LETTERS

STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
IGNORED = [",", r"\$", r"(?s).*#### ", r"\.$"]  # removed from prediction and reference before comparing
INVALID = "[invalid]"


def _pick(matches: list, index: int) -> str:
    if not matches:
        return INVALID
    m = matches[index]
    return next((g for g in m if g), INVALID) if isinstance(m, tuple) else m


def strict_match(text: str) -> str:
    """The first "#### number" (lm-eval's strict-match filter)."""
    return _pick(STRICT.findall(text), 0)


def flexible_extract(text: str) -> str:
    """The last number-looking span (lm-eval's flexible-extract filter)."""
    return _pick(FLEXIBLE.findall(text), -1)


def normalize(answer: str) -> str:
    for pattern in IGNORED:
        answer = re.sub(pattern, "", answer)
    return answer.lower()


def gsm8k_correct(extracted: str, reference: str) -> bool:
    return normalize(extracted) == normalize(reference)


def parse_letter(text: str, n_choices: int) -> int:
    """Index of the first standalone choice letter in the output, or -1."""
    m = re.search(rf"\b([{LETTERS[:n_choices]}])\b", text)
    return LETTERS.index(m.group(1)) if m else -1


def final_number(text: str) -> str:
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    return numbers[-1].replace(",", "").rstrip(".") if numbers else INVALID
