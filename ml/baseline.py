"""Non-neural fallback grader: similarity of the answer to the reference answer and rubric.

Used by the web app when no trained model directory exists. Pure python - no torch, no numpy -
and the same interface as :class:`ml.inference.FeedbackModel`:

    model = BaselineFeedbackModel.load()          # arguments accepted and ignored
    results = model.predict_batch([request, ...])

Scoring: with a rubric, a criterion counts as met when the answer shares enough of its content
words/character trigrams (``ml.text.similarity``); the score is the sum of met points. Without a
rubric, the similarity to the reference answer is mapped linearly onto 0..max_score.
Images and videos are not read (the baseline grades ``answer_text`` only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ml import feedback, text
from ml.types import CriterionAssessment, FeedbackRequest, FeedbackResult, Verdict


@dataclass(frozen=True)
class BaselineConfig:
    criterion_threshold: float = 0.35  # similarity above which a criterion counts as covered
    sim_low: float = 0.10  # reference similarity mapped to score 0
    sim_high: float = 0.55  # reference similarity mapped to full score
    correct_at: float = 0.85  # score fraction from which the verdict is "correct"
    incorrect_below: float = 0.30  # score fraction below which the verdict is "incorrect"


class BaselineFeedbackModel:
    name = "baseline-similarity-v1"

    def __init__(self, config: BaselineConfig | None = None) -> None:
        self.config = config or BaselineConfig()

    @classmethod
    def load(cls, model_dir: Any = None, device: Any = None) -> BaselineFeedbackModel:
        return cls()

    def predict(self, request: FeedbackRequest) -> FeedbackResult:
        return self.predict_batch([request])[0]

    def predict_batch(self, requests: list[FeedbackRequest]) -> list[FeedbackResult]:
        return [self._predict_one(r) for r in requests]

    def _predict_one(self, req: FeedbackRequest) -> FeedbackResult:
        cfg = self.config
        answer = req.answer_text
        assessments: list[CriterionAssessment] = []
        met: list[bool] = []
        if req.rubric:
            total = sum(c.points for c in req.rubric) or 1.0
            earned = 0.0
            sims = []
            for crit in req.rubric:
                target = f"{crit.description} {crit.explanation}".strip()
                evidence, sent_sim = text.best_sentence(answer, target)
                sim = max(sent_sim, text.similarity(answer, target))
                ok = sim >= cfg.criterion_threshold
                met.append(ok)
                sims.append(sim)
                earned += crit.points if ok else 0.0
                assessments.append(
                    CriterionAssessment(
                        criterion_id=crit.id,
                        met=ok,
                        coverage=round(min(1.0, sim / (2 * cfg.criterion_threshold)), 4),
                        points_awarded=crit.points * req.max_score / total if ok else 0.0,
                        evidence=evidence if ok else "",
                    )
                )
            frac = earned / total
            margin = min(abs(s - cfg.criterion_threshold) for s in sims)
        else:
            sim = text.similarity(answer, req.reference_answer)
            frac = min(1.0, max(0.0, (sim - cfg.sim_low) / (cfg.sim_high - cfg.sim_low)))
            margin = min(abs(frac - cfg.correct_at), abs(frac - cfg.incorrect_below))
        if frac >= cfg.correct_at:
            verdict = Verdict.CORRECT
        elif frac < cfg.incorrect_below:
            verdict = Verdict.INCORRECT
        else:
            verdict = Verdict.PARTIALLY_CORRECT
        language = feedback.language_of(req.feedback_language)
        plans = feedback.plan_criteria(req.rubric, met, req.learner)
        assessments = [
            CriterionAssessment(**{**a.__dict__, "feedback_level": p.level})
            for a, p in zip(assessments, plans, strict=True)
        ]
        text_out = feedback.compose(
            verdict=verdict,
            plans=plans,
            learner=req.learner,
            language=language,
            reference_answer=req.reference_answer,
        )
        return FeedbackResult(
            score=round(frac * req.max_score, 4),
            max_score=req.max_score,
            verdict=verdict,
            # A similarity heuristic is never very sure; closer to a threshold = less sure.
            confidence=round(min(0.9, 0.5 + margin), 4),
            feedback=text_out,
            language=language,
            criteria=tuple(assessments),
            model_name=self.name,
        )
