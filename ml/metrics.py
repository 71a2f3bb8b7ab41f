"""Evaluation metrics (standard implementations).

Verdicts: accuracy, macro-F1, weighted-F1 (scikit-learn). Scores (normalised 0..1): MSE, MAE and
QWK (``cohen_kappa_score(weights="quadratic")`` on scores rounded to quarters, 0..4).
Feedback: SacreBLEU (corpus BLEU, sacrebleu default 13a tokenizer), ROUGE-2 F1 (rouge-score,
no stemming: German/Chinese), METEOR (nltk ``meteor_score`` on ``wordpunct_tokenize`` tokens;
WordNet synonym matching disabled because no WordNet data ships offline - exact + Porter-stem
matches only), BERTScore F1 (bert-score with
all-MiniLM-L6-v2, layer 6, no baseline rescaling). All reported on a 0..100 scale.
"""

from __future__ import annotations

from typing import Any


class _NoWordNet:
    """Stands in for nltk's WordNet reader: no synonyms (data not available offline)."""

    def synsets(self, *args: Any, **kwargs: Any) -> list:
        return []


def verdict_metrics(gold: list[str], pred: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": 100 * accuracy_score(gold, pred),
        "macro_f1": 100 * f1_score(gold, pred, average="macro", zero_division=0),
        "weighted_f1": 100 * f1_score(gold, pred, average="weighted", zero_division=0),
    }


def score_metrics(gold: list[float], pred: list[float]) -> dict[str, float]:
    from sklearn.metrics import cohen_kappa_score

    n = max(1, len(gold))
    mse = sum((g - p) ** 2 for g, p in zip(gold, pred, strict=True)) / n
    mae = sum(abs(g - p) for g, p in zip(gold, pred, strict=True)) / n
    gq = [round(g * 4) for g in gold]
    pq = [round(p * 4) for p in pred]
    qwk = cohen_kappa_score(gq, pq, weights="quadratic", labels=list(range(5)))
    return {"mse": mse, "mae": mae, "qwk": float(qwk)}


def text_metrics(
    refs: list[str], hyps: list[str], *, bertscore_model: str | None = None
) -> dict[str, float]:
    import sacrebleu
    from nltk.tokenize import wordpunct_tokenize
    from nltk.translate.meteor_score import meteor_score
    from rouge_score import rouge_scorer

    out: dict[str, float] = {}
    out["sacrebleu"] = sacrebleu.corpus_bleu(hyps, [refs]).score
    scorer = rouge_scorer.RougeScorer(["rouge2"], use_stemmer=False)
    r2 = [scorer.score(r, h)["rouge2"].fmeasure for r, h in zip(refs, hyps, strict=True)]
    out["rouge2"] = 100 * sum(r2) / max(1, len(r2))
    wn = _NoWordNet()
    met = [
        meteor_score([wordpunct_tokenize(r)], wordpunct_tokenize(h), wordnet=wn)
        for r, h in zip(refs, hyps, strict=True)
    ]
    out["meteor"] = 100 * sum(met) / max(1, len(met))
    if bertscore_model is not None:
        out["bertscore"] = bertscore(refs, hyps, bertscore_model)
    return out


def bertscore(refs: list[str], hyps: list[str], model_path: str) -> float:
    import bert_score
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    _, _, f1 = bert_score.score(hyps, refs, model_type=model_path, num_layers=6, verbose=False)
    return 100 * float(f1.mean())
