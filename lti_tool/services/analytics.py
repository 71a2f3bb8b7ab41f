"""Numbers about one activity: score distribution, verdicts, the criteria most often missed.

Each learner counts once, with their latest scored attempt (graded or released), so a learner
who tried five times does not weigh five times. The pure functions (``histogram``,
``criteria_missed``, ``summarize_rows``) take plain rows so they can be tested and reused
without a database; ``summarize`` loads the rows of one activity the caller already scoped.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from lti_tool.extensions import db
from lti_tool.models import Activity, Submission, SubmissionStatus

HISTOGRAM_BINS = 10
VERDICT_ORDER = ("correct", "partially correct", "incorrect")


@dataclass(frozen=True)
class ScoredRow:
    """What analytics needs from one scored attempt."""

    user_id: int
    attempt: int
    score: float
    verdict: str | None = None
    criteria: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    count: int
    last: bool = False  # the last bin includes its upper bound

    @property
    def label(self) -> str:
        close = "]" if self.last else ")"
        return f"[{_fmt(self.low)}, {_fmt(self.high)}{close}"


@dataclass(frozen=True)
class CriterionStat:
    criterion_id: str
    description: str
    points: float
    assessed: int
    missed: int

    @property
    def miss_rate(self) -> float:
        return self.missed / self.assessed if self.assessed else 0.0


@dataclass(frozen=True)
class Summary:
    learners: int
    max_score: float
    mean: float | None
    median: float | None
    bins: list[Bin]
    verdicts: dict[str, int]
    criteria: list[CriterionStat]
    attempts: int = 0
    pending: int = 0

    @property
    def mean_percent(self) -> float | None:
        return None if self.mean is None or not self.max_score else self.mean / self.max_score


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def latest_per_learner(rows: Iterable[ScoredRow]) -> list[ScoredRow]:
    latest: dict[int, ScoredRow] = {}
    for row in rows:
        if row.user_id not in latest or row.attempt > latest[row.user_id].attempt:
            latest[row.user_id] = row
    return sorted(latest.values(), key=lambda r: r.user_id)


def histogram(scores: Sequence[float], max_score: float, bins: int = HISTOGRAM_BINS) -> list[Bin]:
    """Equal-width bins over 0..max_score; scores outside are clamped into the end bins."""
    if max_score <= 0 or bins < 1:
        raise ValueError("max_score and bins must be positive")
    width = max_score / bins
    counts = [0] * bins
    for score in scores:
        index = int(min(max(score, 0.0), max_score) / width) if width else 0
        counts[min(index, bins - 1)] += 1
    return [
        Bin(
            low=round(i * width, 4),
            high=round((i + 1) * width, 4) if i < bins - 1 else float(max_score),
            count=counts[i],
            last=i == bins - 1,
        )
        for i in range(bins)
    ]


def criteria_missed(
    rows: Sequence[ScoredRow], rubric: Sequence[dict[str, Any]]
) -> list[CriterionStat]:
    """Per rubric criterion: how many assessments there were and how many missed it.

    Most often missed first (by rate, then by count); criteria no longer in the rubric are
    left out: their numbers describe a question the learners no longer see.
    """
    assessed: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    for row in rows:
        for item in row.criteria:
            criterion_id = str(item.get("criterion_id", ""))
            assessed[criterion_id] += 1
            if not item.get("met"):
                missed[criterion_id] += 1
    stats = [
        CriterionStat(
            criterion_id=str(c.get("id")),
            description=str(c.get("description", "")),
            points=float(c.get("points") or 0),
            assessed=assessed[str(c.get("id"))],
            missed=missed[str(c.get("id"))],
        )
        for c in rubric
    ]
    return sorted(stats, key=lambda s: (-s.miss_rate, -s.missed, s.criterion_id))


def summarize_rows(
    rows: Sequence[ScoredRow],
    max_score: float,
    rubric: Sequence[dict[str, Any]],
    bins: int = HISTOGRAM_BINS,
) -> Summary:
    latest = latest_per_learner(rows)
    scores = [r.score for r in latest]
    verdicts = Counter(r.verdict for r in latest if r.verdict)
    ordered = {v: verdicts.get(v, 0) for v in VERDICT_ORDER}
    ordered.update({v: n for v, n in verdicts.items() if v not in ordered})
    return Summary(
        learners=len(latest),
        max_score=max_score,
        mean=round(statistics.fmean(scores), 2) if scores else None,
        median=round(statistics.median(scores), 2) if scores else None,
        bins=histogram(scores, max_score, bins),
        verdicts=ordered,
        criteria=criteria_missed(latest, rubric),
        attempts=len(rows),
    )


def scored_rows(activity_id: int) -> list[ScoredRow]:
    results = db.session.execute(
        select(
            Submission.user_id,
            Submission.attempt,
            Submission.instructor_score,
            Submission.model_score,
            Submission.verdict,
            Submission.criteria,
        ).where(
            Submission.activity_id == activity_id,
            Submission.status.in_([SubmissionStatus.GRADED, SubmissionStatus.RELEASED]),
        )
    ).all()
    rows = []
    for user_id, attempt, instructor_score, model_score, verdict, criteria in results:
        score: Decimal | None = instructor_score if instructor_score is not None else model_score
        if score is None:
            continue
        rows.append(
            ScoredRow(
                user_id=user_id,
                attempt=attempt,
                score=float(score),
                verdict=verdict,
                criteria=tuple(c for c in criteria or [] if isinstance(c, dict)),
            )
        )
    return rows


def summarize(activity: Activity) -> Summary:
    summary = summarize_rows(
        scored_rows(activity.id), float(activity.max_score or 0) or 1.0, activity.rubric or []
    )
    pending = db.session.scalar(
        select(func.count(Submission.id)).where(
            Submission.activity_id == activity.id,
            Submission.status.in_([SubmissionStatus.QUEUED, SubmissionStatus.PROCESSING]),
        )
    )
    return replace(summary, pending=int(pending or 0))
