"""Our training-example type and its JSONL format (documented in docs/training-data.md)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.errors import DatasetError
from ml.types import (
    MAX_PEER_ANSWERS,
    FeedbackRequest,
    LearnerFeatures,
    RubricCriterion,
    Verdict,
)

CORPUS_DIR = Path(__file__).resolve().parents[1] / "corpus"


@dataclass(frozen=True)
class Example:
    """One graded answer: a request plus its gold labels."""

    id: str
    question_id: str
    question: str
    reference_answer: str
    answer_text: str
    score: float  # 0..max_score
    verdict: Verdict
    feedback: str
    language: str = "en"
    max_score: float = 1.0
    rubric: tuple[RubricCriterion, ...] = ()
    # Per-criterion gold (criterion id -> met); may be empty when unknown.
    criteria_met: dict[str, bool] = field(default_factory=dict)
    image_paths: tuple[str, ...] = ()
    video_path: str | None = None
    learner: LearnerFeatures | None = None
    source: str = ""

    @property
    def score_fraction(self) -> float:
        return self.score / self.max_score

    def to_request(self, *, with_learner: bool = True) -> FeedbackRequest:
        return FeedbackRequest(
            question=self.question,
            reference_answer=self.reference_answer,
            answer_text=self.answer_text,
            max_score=self.max_score,
            rubric=self.rubric,
            image_paths=self.image_paths,
            video_path=self.video_path,
            learner=self.learner if with_learner else None,
            language=self.language,
            question_id=self.question_id,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "question_id": self.question_id,
            "language": self.language,
            "question": self.question,
            "reference_answer": self.reference_answer,
            "rubric": [
                {"id": c.id, "description": c.description, "points": c.points}
                | ({"explanation": c.explanation} if c.explanation else {})
                for c in self.rubric
            ],
            "answer_text": self.answer_text,
            "image_paths": list(self.image_paths),
            "video_path": self.video_path,
            "max_score": self.max_score,
            "score": self.score,
            "verdict": self.verdict.value,
            "criteria_met": self.criteria_met,
            "feedback": self.feedback,
            "source": self.source,
        }
        if self.learner is not None:
            lf = self.learner
            out["learner"] = {
                "attempts": lf.attempts,
                "previous_scores": list(lf.previous_scores),
                "criterion_mastery": lf.criterion_mastery,
                "times_missed": lf.times_missed,
                "detail_level": lf.detail_level,
                "language": lf.language,
            }
        return out


def example_from_json(row: dict[str, Any], *, base: Path | None = None, where: str = "") -> Example:
    try:

        def media(p: str) -> str:
            return str((base / p) if base is not None and not Path(p).is_absolute() else p)

        learner = None
        if row.get("learner"):
            lr = row["learner"]
            learner = LearnerFeatures(
                attempts=int(lr.get("attempts", 0)),
                previous_scores=tuple(float(s) for s in lr.get("previous_scores", ())),
                criterion_mastery={k: float(v) for k, v in lr.get("criterion_mastery", {}).items()},
                times_missed={k: int(v) for k, v in lr.get("times_missed", {}).items()},
                detail_level=lr.get("detail_level", "standard"),
                language=lr.get("language"),
            )
        return Example(
            id=str(row["id"]),
            question_id=str(row["question_id"]),
            question=row["question"],
            reference_answer=row["reference_answer"],
            answer_text=row.get("answer_text", ""),
            score=float(row["score"]),
            max_score=float(row.get("max_score", 1.0)),
            verdict=Verdict.parse(row["verdict"]),
            feedback=row.get("feedback", ""),
            language=row.get("language", "en"),
            rubric=tuple(
                RubricCriterion(
                    id=str(c["id"]),
                    description=c["description"],
                    points=float(c.get("points", 1.0)),
                    explanation=c.get("explanation", ""),
                )
                for c in row.get("rubric", ())
            ),
            criteria_met={k: bool(v) for k, v in row.get("criteria_met", {}).items()},
            image_paths=tuple(media(p) for p in row.get("image_paths", ())),
            video_path=media(row["video_path"]) if row.get("video_path") else None,
            learner=learner,
            source=row.get("source", where),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: bad training row: {exc}") from exc


def load_jsonl(path: Path) -> list[Example]:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} not found")
    out = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                row = json.loads(line)
                out.append(example_from_json(row, base=path.parent, where=f"{path}:{n}"))
    return out


def write_jsonl(examples: Iterable[Example], path: Path) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")


def load_corpus(directory: Path = CORPUS_DIR) -> list[Example]:
    """The small bilingual corpus shipped in ``ml/corpus`` (every ``*.jsonl`` file)."""
    files = sorted(Path(directory).glob("*.jsonl"))
    if not files:
        raise DatasetError(f"no *.jsonl corpus files in {directory}")
    return [ex for f in files for ex in load_jsonl(f)]


def classmates(
    examples: list[Example], *, seed: int = 0, dropout: float = 0.0
) -> list[tuple[str, ...]]:
    """Per example, up to MAX_PEER_ANSWERS other answers to its question in ``examples`` (a
    seeded random sample, as a worker sends an activity's latest answers), or none for a
    ``dropout`` share of them (an activity with no other answers yet)."""
    rng = random.Random(seed)
    by_question: dict[str, list[str]] = {}
    for e in examples:
        by_question.setdefault(e.question_id, []).append(e.answer_text)
    out: list[tuple[str, ...]] = []
    for e in examples:
        if rng.random() < dropout:
            out.append(())
            continue
        others = [t for t in by_question[e.question_id] if t != e.answer_text]
        out.append(tuple(rng.sample(others, min(MAX_PEER_ANSWERS, len(others)))))
    return out
