"""Render evaluation JSON (from ``marginalia ml evaluate``) as the markdown tables of
docs/results.md::

    python -m ml.report runs/saf/eval_unseen.json runs/saf/eval_cv.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = [
    ("accuracy", "Acc"),
    ("macro_f1", "M-F1"),
    ("weighted_f1", "W-F1"),
    ("mse", "MSE"),
    ("mae", "MAE"),
    ("qwk", "QWK"),
    ("sacrebleu", "SacreBLEU"),
    ("rouge2", "ROUGE-2"),
    ("meteor", "METEOR*"),
    ("bertscore", "BERTScore†"),
]
SUITES = {"unseen_answers": "unseen answers", "question_cv": "held-out questions (CV)"}


def fmt(value: object, key: str) -> str:
    if not isinstance(value, int | float):
        return "–"
    return f"{value:.3f}" if key in ("mse", "mae", "qwk") else f"{value:.1f}"


def table(files: list[Path]) -> str:
    head = "| model | split | lang | n | " + " | ".join(c for _, c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (4 + len(COLUMNS))]
    for f in files:
        data = json.loads(Path(f).read_text())
        for suite, label in SUITES.items():
            for lang, r in data.get(suite, {}).items():
                cells = " | ".join(fmt(r.get(k), k) for k, _ in COLUMNS)
                split = label
                if r.get("graded_per_question"):
                    split = f"{label}, {r['graded_per_question']} graded per question"
                lines.append(f"| {data['model']} | {split} | {lang} | {r['n']} | {cells} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table([Path(p) for p in sys.argv[1:]]))
