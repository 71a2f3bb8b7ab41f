"""What a seed ensemble adds: the ensemble beside each of its members, in the same run.

    python bench/ensemble.py --config configs/distill_saf.json --members 5 \\
        --out runs/bench_ensemble.json [--suite unseen|cv|all] [--folds 3] [--subsets 3]

Trains the recipe with ``--members`` seeds (``train.members`` overridden) - on the recipe's data
for unseen answers (as ``marginalia ml distill``), on SAF training minus each question fold for
held-out questions (as ``marginalia ml evaluate --suite cv``) - and evaluates the whole
ensemble, the ensembles of its first ``--subsets`` members, and every member alone on the same
answers.
Prints verdict accuracy / macro-F1 (in %) and writes the full metrics as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LANGUAGES = ("en", "de")


def views(model, subsets: list[int]) -> dict:
    """The ensemble, the ensembles of its first k members (k in ``subsets``) and each member,
    as predictors."""
    from ml.inference import FeedbackModel
    from ml.models.ensemble import StudentEnsemble

    members = list(model.model.members)
    out = {f"ensemble{len(members)}": model}
    for k in subsets:
        if 2 <= k < len(members):
            sub = StudentEnsemble(members[:k])
            out[f"ensemble{k}"] = FeedbackModel(sub, model.featurizer, f"ensemble{k}")
    out |= {f"member{k}": model.member(k) for k in range(len(members))}
    return out


def summary(results: dict) -> dict:
    """Accuracy / macro-F1 per view and language, plus the members' mean and spread."""
    out: dict = {}
    for lang in LANGUAGES:
        rows = {v: (r[lang]["accuracy"], r[lang]["macro_f1"]) for v, r in results.items()}
        members = [acc for v, (acc, _) in rows.items() if v.startswith("member")]
        out[lang] = {v: f"{a:.1f} / {f:.1f}" for v, (a, f) in rows.items()}
        out[lang]["members_accuracy_mean"] = round(statistics.mean(members), 1)
        out[lang]["members_accuracy_range"] = [min(members), max(members)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, default=Path("configs/distill_saf.json"))
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--subsets", type=int, nargs="*", default=[3])
    ap.add_argument("--suite", choices=("unseen", "cv", "all"), default="all")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_ensemble.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ml.data.saf import load_saf
    from ml.evaluate import evaluate_examples, pool_folds, question_folds
    from ml.recipes import (
        DistillRecipe,
        load_sources,
        make_encoder,
        save_encoder_cache,
        train_model,
    )

    recipe = DistillRecipe.from_file(args.config)
    recipe = replace(recipe, train=replace(recipe.train, members=args.members))
    encoder = make_encoder(recipe.encoder)
    report: dict = {"config": str(args.config), "members": args.members}
    if args.suite in ("unseen", "all"):
        model, _ = train_model(load_sources(recipe.data), recipe, encoder)
        tests = {lang: load_saf("unseen_answers", lang) for lang in LANGUAGES}
        results = {
            name: {lang: evaluate_examples(view, tests[lang]) for lang in LANGUAGES}
            for name, view in views(model, args.subsets).items()
        }
        report["unseen_answers"] = {"summary": summary(results), "metrics": results}
        print(json.dumps(report["unseen_answers"]["summary"], indent=2), flush=True)
    if args.suite in ("cv", "all"):
        # Held-out questions: SAF training only, both languages in each fold's training set.
        data = {lang: load_saf("training", lang) for lang in LANGUAGES}
        per_view: dict[str, dict[str, list]] = {}
        for f in range(args.folds):
            splits = {lang: question_folds(data[lang], args.folds)[f] for lang in LANGUAGES}
            train = [e for lang in LANGUAGES for e in splits[lang][0]]
            model, _ = train_model(train, recipe, encoder)
            for name, view in views(model, args.subsets).items():
                for lang in LANGUAGES:
                    res = evaluate_examples(view, splits[lang][1])
                    per_view.setdefault(name, {}).setdefault(lang, []).append(res)
        results = {
            name: {lang: pool_folds(folds) for lang, folds in langs.items()}
            for name, langs in per_view.items()
        }
        report["question_cv"] = {"folds": args.folds, "summary": summary(results)}
        report["question_cv"]["metrics"] = results
        print(json.dumps(report["question_cv"]["summary"], indent=2), flush=True)
    save_encoder_cache(encoder)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
