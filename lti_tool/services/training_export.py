"""Instructor-reviewed submissions become training data (docs/training-data.md).

Only submissions an instructor reviewed and released are exported: the instructor's score and
feedback are the labels. Nothing identifies a person: ids are the opaque public ids of the
submission and the activity, and no name, e-mail or LMS user id is written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import Activity, Deployment, Submission, SubmissionStatus
from lti_tool.services import inference
from lti_tool.services.storage import get_storage
from ml.data import Example, write_jsonl

SOURCE = "marginalia-reviewed"


@dataclass(frozen=True)
class ExportReport:
    path: Path
    examples: int
    files: int


def reviewed_submissions(
    *, platform_id: int | None = None, since: datetime | None = None
) -> list[Submission]:
    query = (
        select(Submission)
        .join(Activity, Activity.id == Submission.activity_id)
        .where(
            Submission.status == SubmissionStatus.RELEASED,
            Submission.reviewed_by_id.is_not(None),
        )
        .order_by(Submission.id)
    )
    if platform_id is not None:
        query = query.join(Deployment, Deployment.id == Activity.deployment_id).where(
            Deployment.platform_id == platform_id
        )
    if since is not None:
        query = query.where(Submission.released_at >= since)
    return list(db.session.scalars(query))


def export(
    out_dir: Path, *, platform_id: int | None = None, since: datetime | None = None
) -> ExportReport:
    """Write ``out_dir/reviewed.jsonl`` and copy the answers' files under ``out_dir/media``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    storage = get_storage()
    examples: list[Example] = []
    copied = 0
    for submission in reviewed_submissions(platform_id=platform_id, since=since):
        request = inference.build_request(submission, reviews=[], answers=[])
        media: list[str] = []
        for n, file in enumerate(submission.files):
            relative = Path("media") / submission.public_id / f"{n}{Path(file.storage_key).suffix}"
            (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            with storage.open(file.storage_key) as src, (out_dir / relative).open("wb") as dst:
                shutil.copyfileobj(src, dst)
            media.append(str(relative))
            copied += 1
        kinds = [f.kind for f in submission.files]
        images = tuple(m for m, k in zip(media, kinds, strict=True) if k == "image")
        videos = [m for m, k in zip(media, kinds, strict=True) if k == "video"]
        examples.append(
            Example(
                id=submission.public_id,
                question_id=submission.activity.public_id,
                question=request.question,
                reference_answer=request.reference_answer,
                answer_text=request.answer_text,
                score=float(submission.score or 0),
                verdict=inference.final_verdict(submission),
                feedback=submission.feedback or "",
                language=request.language,
                max_score=request.max_score,
                rubric=request.rubric,
                criteria_met={
                    str(c["criterion_id"]): bool(c.get("met")) for c in submission.criteria or []
                },
                image_paths=images,
                video_path=videos[0] if videos else None,
                learner=request.learner,
                source=SOURCE,
            )
        )
    path = out_dir / "reviewed.jsonl"
    write_jsonl(examples, path)
    return ExportReport(path=path, examples=len(examples), files=copied)
