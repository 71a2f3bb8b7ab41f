"""Loader for SAF (Filighera et al., ACL 2022), the Short Answer Feedback dataset, v2 XML.

Layout: ``<saf>/<split>/<language>/<question>.xml`` with split in {training, unseen_answers} and
language in {english, german}. German reference answers carry per-point credit such as
"(0.25 P)"; we split them into rubric criteria so the per-criterion heads have targets.

The dataset lives outside the repository: ``$MARGINALIA_SAF_DIR`` or
``<repo>/../shared/datasets/saf``.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET  # noqa: S405 - trusted local dataset files
from pathlib import Path

from ml.data.examples import Example
from ml.errors import DatasetError
from ml.types import RubricCriterion, Verdict

SPLITS = ("training", "unseen_answers")
LANGUAGES = {"english": "en", "german": "de"}
_VERSION = re.compile(r"_v\d+(\.\d+)*$")
_POINTS = re.compile(r"\(\s*(\d+(?:[.,]\d+)?)\s*P\s*\)")


def saf_dir() -> Path:
    env = os.environ.get("MARGINALIA_SAF_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "datasets" / "saf"


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def rubric_from_reference(reference: str, question_id: str) -> tuple[RubricCriterion, ...]:
    """Split "A (0.25 P) and B (0.25 P)." into criteria; empty when no "(x P)" marks exist."""
    marks = list(_POINTS.finditer(reference))
    if not marks:
        return ()
    criteria = []
    start = 0
    for i, m in enumerate(marks):
        segment = reference[start : m.start()]
        # The criterion text is the clause right before the mark (after the last sentence end).
        clause = re.split(r"(?<=[.:;!?])\s+", segment.strip())[-1].strip(" ,.;")
        criteria.append(
            RubricCriterion(
                id=f"{question_id}.c{i + 1}",
                description=clause or segment.strip(),
                points=float(m.group(1).replace(",", ".")),
                explanation=segment.strip(" ,."),
            )
        )
        start = m.end()
    return tuple(criteria)


def parse_question_file(path: Path, *, language: str, split: str) -> list[Example]:
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - trusted local dataset files
    except ET.ParseError as exc:
        raise DatasetError(f"{path}: {exc}") from exc
    # The XML ids collide in the English set (4.2 and 4.3 both say "2.1"): key by file name.
    qid = f"saf-{language}-{_VERSION.sub('', path.stem)}"
    question = _clean(root.findtext("questionText"))
    refs = [_clean(r.text) for r in root.iter("referenceAnswer")]
    reference = "\n".join(r for r in refs if r)
    rubric = rubric_from_reference(reference, qid) if language == "de" else ()
    reference_plain = _POINTS.sub("", reference)
    reference_plain = " ".join(reference_plain.split())
    examples = []
    for i, node in enumerate(root.iter("studentAnswer")):
        score_text = _clean(node.findtext("score"))
        verdict_text = _clean(node.findtext("verification_feedback"))
        if not score_text or not verdict_text:
            raise DatasetError(f"{path}: answer {i} lacks a score or verdict")
        examples.append(
            Example(
                id=node.get("id") or f"{qid}.{split}.{i}",
                question_id=qid,
                question=question,
                reference_answer=reference_plain,
                rubric=rubric,
                answer_text=_clean(node.findtext("response")),
                score=float(score_text),
                max_score=1.0,
                verdict=Verdict.parse(verdict_text),
                feedback=_clean(node.findtext("response_feedback")),
                language=language,
                source=f"saf/{split}",
            )
        )
    return examples


def load_saf(split: str, language: str, root: Path | None = None) -> list[Example]:
    """All answers of one split ("training" / "unseen_answers") and language ("en" / "de")."""
    if split not in SPLITS:
        raise DatasetError(f"unknown SAF split {split!r}; expected one of {SPLITS}")
    folder = {v: k for k, v in LANGUAGES.items()}.get(language)
    if folder is None:
        raise DatasetError(f"unknown SAF language {language!r}; expected en or de")
    base = (root or saf_dir()) / split / folder
    if not base.is_dir():
        raise DatasetError(f"SAF not found at {base} (set MARGINALIA_SAF_DIR)")
    examples: list[Example] = []
    for path in sorted(base.glob("*.xml")):
        examples.extend(parse_question_file(path, language=language, split=split))
    return examples
