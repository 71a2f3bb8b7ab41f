"""Teacher labels for distillation, stored as JSONL (one row per training example id)::

{"id": "...", "verdict_probs": [p_correct, p_partial, p_incorrect], "score": 0.75,
 "feedback": "teacher generation", "teacher": "smollm2-135m-lora@run"}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ml.errors import DatasetError


@dataclass(frozen=True)
class TeacherLabel:
    id: str
    verdict_probs: tuple[float, float, float]
    score: float  # normalised 0..1
    feedback: str = ""
    teacher: str = ""


def write_labels(labels: list[TeacherLabel], path: Path) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for lab in labels:
            fh.write(json.dumps(asdict(lab), ensure_ascii=False) + "\n")


def read_labels(path: Path) -> dict[str, TeacherLabel]:
    out = {}
    try:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                probs = tuple(float(p) for p in row["verdict_probs"])
                if len(probs) != 3:
                    raise ValueError("verdict_probs needs 3 values")
                out[row["id"]] = TeacherLabel(
                    row["id"],
                    probs,
                    float(row["score"]),
                    row.get("feedback", ""),
                    row.get("teacher", ""),
                )
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"{path}: bad teacher labels: {exc}") from exc
    return out
