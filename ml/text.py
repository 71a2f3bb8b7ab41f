"""Language-agnostic text helpers (pure python): tokens, sentences, overlap similarity."""

from __future__ import annotations

import math
import re
from collections import Counter

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SENT = re.compile(r"(?<=[.!?;。！？；])\s*|\n+")

# Very common function words; removing them makes overlap focus on content.
STOPWORDS = frozenset(
    """a an the of to in on for and or is are was were be been it its this that these those with
    as by at from can will would should which what when how why there their they we you i not no
    der die das und oder ist sind ein eine einen dem den des zu im in mit auf für von ich du er sie
    es wir ihr nicht auch dass wenn so wie bei sich
    的 了 是 在 和 与 或 也 就 都 而 及 着 一个""".split()  # noqa: SIM905
)


def tokens(text: str, *, drop_stopwords: bool = False) -> list[str]:
    """Lower-cased word tokens; each CJK character is one token."""
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        if _CJK.search(word):
            out.extend(ch for ch in word if not ch.isspace())
        else:
            out.append(word)
    if drop_stopwords:
        out = [t for t in out if t not in STOPWORDS]
    return out


def sentences(text: str) -> list[str]:
    parts = [p.strip() for p in _SENT.split(text) if p and p.strip()]
    return parts or ([text.strip()] if text.strip() else [])


def _char_ngrams(text: str, n: int = 3) -> Counter[str]:
    norm = " ".join(tokens(text))
    return Counter(norm[i : i + n] for i in range(max(0, len(norm) - n + 1)))


def cosine(a: Counter[str], b: Counter[str]) -> float:
    if not a or not b:
        return 0.0
    dot = sum(v * b.get(k, 0) for k, v in a.items())
    norm_a = math.sqrt(sum(v * v for v in a.values()))
    norm_b = math.sqrt(sum(v * v for v in b.values()))
    return dot / (norm_a * norm_b)


def recall(answer: str, target: str) -> float:
    """Share of the target's content tokens that the answer contains."""
    tgt = set(tokens(target, drop_stopwords=True))
    if not tgt:
        return 0.0
    ans = set(tokens(answer, drop_stopwords=True))
    return len(tgt & ans) / len(tgt)


def similarity(answer: str, target: str) -> float:
    """Blend of content-word recall and character-trigram cosine, in 0..1."""
    if not answer.strip() or not target.strip():
        return 0.0
    return 0.6 * recall(answer, target) + 0.4 * cosine(_char_ngrams(answer), _char_ngrams(target))


NEGATIONS = frozenset(
    """not no never none nothing neither nor cannot without
    nicht kein keine keinen keinem keiner keines nie niemals nichts ohne weder
    不 没 没有 无 非 未 别""".split()  # noqa: SIM905
)


def negations(text: str) -> int:
    """How many negation cue words/characters the text contains."""
    low = text.lower().replace("n't", " not")
    return sum(1 for t in tokens(low) if t in NEGATIONS)


def char_similarity(answer: str, target: str, n: int = 4) -> float:
    """Cosine of character n-gram counts (n=4 by default), in 0..1."""
    return cosine(_char_ngrams(answer, n), _char_ngrams(target, n))


def best_sentence(answer: str, target: str) -> tuple[str, float]:
    """The answer sentence most similar to ``target`` (the evidence for a criterion)."""
    best, score = "", 0.0
    for sent in sentences(answer):
        s = similarity(sent, target)
        if s > score:
            best, score = sent, s
    return best, score
