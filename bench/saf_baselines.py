"""How far simple evidence goes on SAF: the baselines our targets are set against.

    python bench/saf_baselines.py --out runs/saf_baselines.json

Unseen answers (train on SAF training, test on unseen_answers), per question:
- ``tfidf_1nn``: verdict of the nearest training answer by character TF-IDF cosine;
- ``probe_minilm``: the per-question linear probe (``ml.probe``) on all-MiniLM-L6-v2 sentence
  embeddings (the model's evidence in formats 4-5);
- ``probe_layers``: the same probe on MiniLM's layer features, standardised (format 6);
- ``probe_tfidf``: the same logistic regression on character TF-IDF;
- ``probe_mean``: the mean of the two probes' probabilities.

Held-out questions (the folds of ``marginalia ml evaluate --suite questions``): logistic
regression over answers of the other questions on
- ``hand3``: cosine to the reference, cosine to the question, log length ratio;
- ``hand3_peer``: the same plus where the answer stands among the other answers to its question
  (z-scores and ranks of those features, similarity to the answers' centroid) - evidence a
  deployment has once a class has answered, without any grade;
- ``layers_peer``: the cosines and class positions of ``hand3_peer`` in every MiniLM layer (the
  class probe's inputs since model format 6).

Prints a JSON report and writes it to --out. Verdict accuracy and macro-F1 in %.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LANGUAGES = ("en", "de")


def _tfidf():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)


def unseen_answers(train, test, emb, layers) -> dict[str, list[str]]:
    """Predicted verdicts for ``test`` (in order) by each per-question method."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from ml.probe import PROBE_C, fit_probe
    from ml.types import VERDICTS

    names = np.array([v.value for v in VERDICTS])
    methods = ("tfidf_1nn", "probe_minilm", "probe_layers", "probe_tfidf", "probe_mean")
    preds: dict[str, list[str]] = {k: [""] * len(test) for k in methods}
    rows_of: dict[str, list] = {}
    for e in train:
        rows_of.setdefault(e.question_id, []).append(e)
    for qid in dict.fromkeys(e.question_id for e in test):
        rows = rows_of[qid]
        at = [i for i, e in enumerate(test) if e.question_id == qid]
        vec = _tfidf().fit([r.answer_text for r in rows])
        a, b = (
            vec.transform([r.answer_text for r in rows]),
            vec.transform([test[i].answer_text for i in at]),
        )
        nearest = (b @ a.T).toarray().argmax(1)  # [m]
        y = np.array([r.verdict.index for r in rows])
        probe = fit_probe(
            torch.from_numpy(np.stack([emb[r.answer_text] for r in rows])),
            torch.from_numpy(y),
            torch.tensor([r.score_fraction for r in rows]),
        )
        p1 = probe(torch.from_numpy(np.stack([emb[test[i].answer_text] for i in at])))
        p1 = p1[:, :3].numpy()
        layered = fit_probe(
            torch.from_numpy(np.stack([layers[r.answer_text] for r in rows])),
            torch.from_numpy(y),
            torch.tensor([r.score_fraction for r in rows]),
            standardize=True,
        )
        p3 = layered(torch.from_numpy(np.stack([layers[test[i].answer_text] for i in at])))
        p3 = p3[:, :3].numpy()
        p2 = np.zeros_like(p1)
        if len(set(y)) > 1:
            lr = LogisticRegression(C=PROBE_C, max_iter=2000).fit(a, y)
            p2[:, lr.classes_] = lr.predict_proba(b)
        else:
            p2[:, y[0]] = 1.0
        for j, i in enumerate(at):
            preds["tfidf_1nn"][i] = rows[nearest[j]].verdict.value
            preds["probe_minilm"][i] = names[p1[j].argmax()]
            preds["probe_layers"][i] = names[p3[j].argmax()]
            preds["probe_tfidf"][i] = names[p2[j].argmax()]
            preds["probe_mean"][i] = names[(p1[j] + p2[j]).argmax()]
    return preds


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-6)


def _rank(x: np.ndarray) -> np.ndarray:
    return (np.argsort(np.argsort(x)) + 0.5) / len(x)


def _question_features(rows, emb) -> tuple[np.ndarray, np.ndarray]:
    """(hand3 [n, 3], peer [n, 6]) for the answers ``rows`` to one question."""
    a = np.stack([emb[r.answer_text] for r in rows])
    ref, q = emb[rows[0].reference_answer], emb[rows[0].question]
    ratio = np.log1p([len(r.answer_text.split()) for r in rows]) - np.log1p(
        len(rows[0].reference_answer.split())
    )
    hand = np.stack([a @ ref, a @ q, ratio], 1)
    centroid = a.mean(0)
    to_centroid = a @ (centroid / np.linalg.norm(centroid))

    peer = np.stack([_z(hand[:, 0]), _rank(hand[:, 0]), _z(ratio), to_centroid, _z(to_centroid),
                     _rank(to_centroid)], 1)  # fmt: skip
    return hand, peer


def _layer_question_features(rows, layers, dim: int) -> np.ndarray:
    """[n, 7 * layers + 2]: per MiniLM layer the cosines to reference and question and the
    class positions of ``_question_features``; then the length ratio and its z-score."""

    def blocks(text: str) -> np.ndarray:
        return layers[text].reshape(-1, dim)

    a = np.stack([blocks(r.answer_text) for r in rows])  # [n, L, D]
    ref, q = blocks(rows[0].reference_answer), blocks(rows[0].question)
    centroid = a.mean(0)
    centroid /= np.linalg.norm(centroid, axis=-1, keepdims=True)
    cols = []
    for j in range(a.shape[1]):
        to_ref, to_c = a[:, j] @ ref[j], a[:, j] @ centroid[j]
        cols += [to_ref, a[:, j] @ q[j], _z(to_ref), _rank(to_ref), to_c, _z(to_c), _rank(to_c)]
    words = np.log1p([len(r.answer_text.split()) for r in rows])
    cols += [words - np.log1p(len(rows[0].reference_answer.split())), _z(words)]
    return np.stack(cols, 1)


def held_out_questions(examples, emb, layers, k: int) -> dict[str, tuple[list[str], list[str]]]:
    """(gold, predicted) verdicts over the k question folds, per feature set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ml.evaluate import question_folds

    feats: dict[str, dict[str, np.ndarray]] = {}
    by_q: dict[str, list] = {}
    for e in examples:
        by_q.setdefault(e.question_id, []).append(e)
    for qid, rows in by_q.items():
        hand, peer = _question_features(rows, emb)
        feats[qid] = {
            "hand3": hand,
            "hand3_peer": np.hstack([hand, peer]),
            "layers_peer": _layer_question_features(rows, layers, len(emb[rows[0].question])),
        }

    def x(qids: list[str], name: str) -> np.ndarray:
        return np.vstack([feats[q][name] for q in qids])

    out: dict[str, tuple[list[str], list[str]]] = {k: ([], []) for k in feats[next(iter(feats))]}
    for train, test in question_folds(examples, k):
        tr_q = list(dict.fromkeys(e.question_id for e in train))
        te_q = list(dict.fromkeys(e.question_id for e in test))
        y = [r.verdict.value for q in tr_q for r in by_q[q]]
        for name, (gold, pred) in out.items():
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            clf.fit(x(tr_q, name), y)
            gold.extend(r.verdict.value for q in te_q for r in by_q[q])
            pred.extend(clf.predict(x(te_q, name)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folds", type=int, default=3, help="question folds (as ml evaluate)")
    ap.add_argument("--out", type=Path, default=Path("runs/saf_baselines.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ml.data.saf import load_saf
    from ml.metrics import verdict_metrics
    from ml.recipes import make_encoder, save_encoder_cache

    encoder = make_encoder("minilm")
    report: dict = {"encoder": "all-MiniLM-L6-v2", "folds": args.folds}
    for lang in LANGUAGES:
        train, test = load_saf("training", lang), load_saf("unseen_answers", lang)
        texts = sorted(
            {e.answer_text for e in train + test}
            | {e.reference_answer for e in train}
            | {e.question for e in train}
        )
        emb = dict(zip(texts, encoder.encode(texts).numpy(), strict=True))
        layers = dict(zip(texts, encoder.layer_features(texts).numpy(), strict=True))
        gold = [e.verdict.value for e in test]
        res = {"n_unseen": len(test), "n_training": len(train)}
        for name, pred in unseen_answers(train, test, emb, layers).items():
            res[f"unseen/{name}"] = _rounded(verdict_metrics(gold, pred))
        for name, (g, p) in held_out_questions(train, emb, layers, args.folds).items():
            res[f"questions/{name}"] = _rounded(verdict_metrics(g, p))
        report[lang] = res
    save_encoder_cache(encoder)
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 1) for k, v in metrics.items()}


if __name__ == "__main__":
    main()
