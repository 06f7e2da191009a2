"""Scores of a generated answer against the reference: normalised exact match and ROUGE-L.

Normalisation is SQuAD's (lower case, punctuation and the articles a/an/the dropped, whitespace collapsed). ROUGE-L
is the F-measure of the longest common subsequence of tokens, with the tokenisation of Google's `rouge_score` (lower
case, every run of characters other than a-z and 0-9 a separator) and no stemming; Super-NaturalInstructions, where
the paper reports it, scores the same way with a Porter stemmer on top.
"""

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalise(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalise(prediction) == normalise(reference))


def rouge_tokens(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    p, r = rouge_tokens(prediction), rouge_tokens(reference)
    if not p or not r:
        return float(p == r)
    common = _lcs(p, r)
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)
