"""Personalised feedback composition shared by every model (pure python).

A model decides *what* is wrong (verdict, per-criterion coverage from its heads, and optionally a
core feedback text it generated or retrieved, all functions of its hidden state h). This module
decides *how* to say it for this learner (z): language, detail level, and escalation - a criterion
that the learner already missed in an earlier attempt gets an explanation instead of a hint.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml.types import FeedbackLevel, LearnerFeatures, RubricCriterion, Verdict

SUPPORTED_LANGUAGES = ("en", "de", "zh")

_T: dict[str, dict[str, str]] = {
    "en": {
        Verdict.CORRECT: "Correct.",
        Verdict.PARTIALLY_CORRECT: "Partially correct.",
        Verdict.INCORRECT: "Not correct yet.",
        "hint": "Hint: check whether your answer covers {c}.",
        "explain": "You missed {c} again, so here is the explanation: {e}",
        "explain_first": "Your answer does not cover {c}: {e}",
        "met": "Well done on {c}.",
        "missing_terse": "Missing: {c}.",
        "novice_close": "Compare your answer with the points above one at a time, then try again.",
        "generic_good": "Your answer covers the key points of the reference answer.",
        "generic_partial": "Your answer covers some, but not all, of the key points.",
        "generic_bad": "Your answer does not match the key points of the reference answer.",
        "reference": "A complete answer mentions: {r}",
        "sep": " ",
        "and": ", ",
    },
    "de": {
        Verdict.CORRECT: "Richtig.",
        Verdict.PARTIALLY_CORRECT: "Teilweise richtig.",
        Verdict.INCORRECT: "Noch nicht richtig.",
        "hint": "Tipp: Prüfe, ob deine Antwort {c} abdeckt.",
        "explain": "Du hast {c} erneut ausgelassen, deshalb die Erklärung: {e}",
        "explain_first": "Deine Antwort deckt {c} nicht ab: {e}",
        "met": "Gut gemacht bei {c}.",
        "missing_terse": "Es fehlt: {c}.",
        "novice_close": (
            "Vergleiche deine Antwort Punkt für Punkt mit den Hinweisen und versuche es erneut."
        ),
        "generic_good": "Deine Antwort enthält die wesentlichen Punkte der Musterlösung.",
        "generic_partial": "Deine Antwort enthält einige, aber nicht alle wesentlichen Punkte.",
        "generic_bad": "Deine Antwort trifft die wesentlichen Punkte der Musterlösung nicht.",
        "reference": "Eine vollständige Antwort nennt: {r}",
        "sep": " ",
        "and": ", ",
    },
    "zh": {
        Verdict.CORRECT: "回答正确。",
        Verdict.PARTIALLY_CORRECT: "回答部分正确。",
        Verdict.INCORRECT: "回答还不正确。",
        "hint": "提示：检查你的回答是否涉及{c}。",
        "explain": "你又一次遗漏了{c}，详细解释如下：{e}",
        "explain_first": "你的回答没有涉及{c}：{e}",
        "met": "{c}这一点答得很好。",
        "missing_terse": "缺少：{c}。",
        "novice_close": "请把你的回答和上面的要点逐条对照，然后再试一次。",
        "generic_good": "你的回答涵盖了参考答案的要点。",
        "generic_partial": "你的回答涵盖了部分要点，但还不完整。",
        "generic_bad": "你的回答没有抓住参考答案的要点。",
        "reference": "完整的回答应包括：{r}",
        "sep": "",
        "and": "、",
    },
}


def language_of(code: str | None) -> str:
    base = (code or "en").lower().split("-")[0].split("_")[0]
    return base if base in _T else "en"


@dataclass(frozen=True)
class CriterionPlan:
    criterion: RubricCriterion
    met: bool
    level: FeedbackLevel


def plan_criteria(
    rubric: tuple[RubricCriterion, ...], met: list[bool], learner: LearnerFeatures | None
) -> list[CriterionPlan]:
    """Escalation policy: first miss -> hint, missed again -> explanation (novices always get the
    explanation, advanced learners only a hint until they miss it twice)."""
    plans = []
    detail = learner.detail_level if learner else "standard"
    for crit, ok in zip(rubric, met, strict=True):
        if ok:
            plans.append(CriterionPlan(crit, True, "none"))
            continue
        missed_before = learner.times_missed.get(crit.id, 0) if learner else 0
        if learner is not None and learner.attempts > 0 and missed_before == 0:
            # Low mastery on an earlier attempt counts as a miss even without an explicit count.
            missed_before = int(learner.criterion_mastery.get(crit.id, 1.0) < 0.5)
        threshold = 2 if detail == "advanced" else 1
        level: FeedbackLevel = (
            "explanation" if detail == "novice" or missed_before >= threshold else "hint"
        )
        plans.append(CriterionPlan(crit, False, level))
    return plans


def compose(
    *,
    verdict: Verdict,
    plans: list[CriterionPlan],
    learner: LearnerFeatures | None,
    language: str,
    core: str | None = None,
    reference_answer: str = "",
) -> str:
    """Write the feedback text. ``core`` is model-generated feedback in ``language`` (if any)."""
    t = _T[language_of(language)]
    detail = learner.detail_level if learner else "standard"
    parts: list[str] = []
    if core and learner is None:
        # Not personalised (e.g. benchmark evaluation): the model's own feedback as it is.
        return core.strip()
    if detail != "advanced" or not core:
        parts.append(t[verdict])
    if core:
        parts.append(core.strip())
    missed = [p for p in plans if not p.met]
    if detail == "advanced":
        if missed:
            names = t["and"].join(p.criterion.description for p in missed)
            parts.append(t["missing_terse"].format(c=names))
    else:
        for p in plans:
            if p.met and detail == "novice":
                parts.append(t["met"].format(c=p.criterion.description))
        for p in missed:
            expl = p.criterion.explanation or p.criterion.description
            if p.level == "explanation":
                key = "explain" if _missed_before(learner, p.criterion.id) else "explain_first"
                parts.append(t[key].format(c=p.criterion.description, e=expl))
            else:
                parts.append(t["hint"].format(c=p.criterion.description))
    if not core and not plans:
        generic = {
            Verdict.CORRECT: "generic_good",
            Verdict.PARTIALLY_CORRECT: "generic_partial",
            Verdict.INCORRECT: "generic_bad",
        }[verdict]
        parts.append(t[generic])
        if verdict is not Verdict.CORRECT and reference_answer and detail != "advanced":
            parts.append(t["reference"].format(r=reference_answer.strip()))
    if detail == "novice" and missed:
        parts.append(t["novice_close"])
    return t["sep"].join(parts)


def _missed_before(learner: LearnerFeatures | None, criterion_id: str) -> bool:
    if learner is None:
        return False
    if learner.times_missed.get(criterion_id, 0) > 0:
        return True
    return learner.attempts > 0 and learner.criterion_mastery.get(criterion_id, 1.0) < 0.5
