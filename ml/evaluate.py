"""Evaluation suites: SAF unseen answers and question-level cross-validation on SAF training."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from ml.data.examples import Example, classmates
from ml.data.saf import load_saf
from ml.metrics import score_metrics, text_metrics, verdict_metrics
from ml.types import FeedbackRequest, FeedbackResult, GradedAnswer

log = logging.getLogger(__name__)

# mBART-large (SAF authors' model card), German splits.
ANCHOR_MBART_DE = {
    "unseen_answers": {"accuracy": 80.1, "macro_f1": 80.7, "weighted_f1": 80.3, "sacrebleu": 39.5,
                       "rouge2": 29.8, "meteor": 63.3, "bertscore": 63.1},
    "unseen_questions": {"accuracy": 48.7, "macro_f1": 40.6, "weighted_f1": 46.5, "sacrebleu": 0.3,
                         "rouge2": 0.5, "meteor": 33.8, "bertscore": 31.3},
}  # fmt: skip


class Predictor(Protocol):
    def predict_batch(self, requests: list[FeedbackRequest]) -> list[FeedbackResult]: ...


def evaluate_examples(
    model: Predictor,
    examples: list[Example],
    *,
    batch_size: int = 32,
    bertscore_model: str | None = None,
    graded: dict[str, tuple[GradedAnswer, ...]] | None = None,
    peers: bool = True,
) -> dict[str, Any]:
    """``graded``: question id -> answers the instructor already graded, sent with requests.
    ``peers``: each request carries the other evaluated answers to its question as its
    classmates' answers (as a worker sends an activity's other submissions)."""
    preds: list[FeedbackResult] = []
    peer_sets = classmates(examples) if peers else [()] * len(examples)
    t0 = time.perf_counter()
    for i in range(0, len(examples), batch_size):
        chunk = zip(examples[i : i + batch_size], peer_sets[i : i + batch_size], strict=True)
        reqs = [replace(e.to_request(with_learner=False), peer_answers=p) for e, p in chunk]
        if graded:
            reqs = [replace(r, graded=graded.get(r.question_id or "", ())) for r in reqs]
        preds.extend(model.predict_batch(reqs))
    elapsed = time.perf_counter() - t0
    out: dict[str, Any] = {"n": len(examples)}
    out |= verdict_metrics([e.verdict.value for e in examples], [p.verdict.value for p in preds])
    out |= score_metrics(
        [e.score_fraction for e in examples], [p.score / p.max_score for p in preds]
    )
    out |= text_metrics(
        [e.feedback for e in examples], [p.feedback for p in preds], bertscore_model=bertscore_model
    )
    out["answers_per_s"] = len(examples) / elapsed if elapsed else 0.0
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def saf_unseen_answers(
    model: Predictor,
    languages: tuple[str, ...] = ("en", "de"),
    ids: set[str] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """Per language; ``ids`` restricts to a subset (e.g. the teacher's evaluation sample) and
    then also reports the pooled subset under "subset"."""
    out = {}
    pooled: list[Example] = []
    for lang in languages:
        examples = load_saf("unseen_answers", lang)
        if ids is not None:
            examples = [e for e in examples if e.id in ids]
            pooled += examples
        if examples:
            out[lang] = evaluate_examples(model, examples, **kw)
    if ids is not None and pooled:
        out["subset"] = evaluate_examples(model, pooled, **kw)
    return out


def question_folds(examples: list[Example], k: int) -> list[tuple[list[Example], list[Example]]]:
    """Whole questions held out: question ids sorted and dealt round-robin into k folds."""
    qids = sorted({e.question_id for e in examples})
    folds = []
    for f in range(k):
        held = set(qids[f::k])
        folds.append(
            (
                [e for e in examples if e.question_id not in held],
                [e for e in examples if e.question_id in held],
            )
        )
    return folds


def first_reviews(
    examples: list[Example], k: int, seed: int
) -> tuple[dict[str, tuple[GradedAnswer, ...]], list[Example]]:
    """Per question, ``k`` random answers play the instructor's first reviews of a new activity;
    returns them (question id -> graded answers) and the remaining answers to grade."""
    rng = random.Random(seed)
    by_question: dict[str, list[Example]] = {}
    for e in examples:
        by_question.setdefault(e.question_id, []).append(e)
    graded: dict[str, tuple[GradedAnswer, ...]] = {}
    rest: list[Example] = []
    for qid, answers in sorted(by_question.items()):
        answers = answers[:]
        rng.shuffle(answers)
        graded[qid] = tuple(
            GradedAnswer(e.answer_text, e.score_fraction, e.verdict) for e in answers[:k]
        )
        rest += answers[k:]
    return graded, rest


def saf_question_cv(
    train_fn: Callable[[list[Example]], Predictor],
    languages: tuple[str, ...] = ("en", "de"),
    k: int = 3,
    graded_per_question: int = 0,
    repeats: int = 3,
    **kw: Any,
) -> dict[str, Any]:
    """Train on SAF training minus the held-out questions (both languages), test on them.

    ``graded_per_question`` > 0: the held-out questions are new activities after the
    instructor's first reviews - that many answers per question (``repeats`` random draws) are
    sent with the requests as graded answers, and the rest are scored."""
    data = {lang: load_saf("training", lang) for lang in languages}
    results: dict[str, Any] = {}
    per_lang_preds: dict[str, list[dict[str, Any]]] = {lang: [] for lang in languages}
    for f in range(k):
        train: list[Example] = []
        tests: dict[str, list[Example]] = {}
        for lang in languages:
            tr, te = question_folds(data[lang], k)[f]
            train += tr
            tests[lang] = te
        log.info("fold %d: training on %d answers", f, len(train))
        model = train_fn(train)
        for lang in languages:
            if not graded_per_question:
                per_lang_preds[lang].append(evaluate_examples(model, tests[lang], **kw))
                continue
            for seed in range(repeats):
                graded, rest = first_reviews(tests[lang], graded_per_question, seed)
                per_lang_preds[lang].append(evaluate_examples(model, rest, graded=graded, **kw))
    draws = repeats if graded_per_question else 1
    for lang, folds in per_lang_preds.items():
        results[lang] = pool_folds(folds, draws)
        results[lang]["folds"] = k
        if graded_per_question:
            results[lang] |= {"graded_per_question": graded_per_question, "draws": draws}
    return results


def pool_folds(folds: list[dict[str, Any]], draws: int = 1) -> dict[str, Any]:
    """Answer-weighted mean of per-fold (and per-draw) metrics; ``n`` counts each answer once."""
    n = sum(r["n"] for r in folds)
    keys = [key for key in folds[0] if key != "n"]
    pooled: dict[str, Any] = {
        key: round(sum(r[key] * r["n"] for r in folds) / n, 4) for key in keys
    }
    pooled["n"] = n // draws
    return pooled
