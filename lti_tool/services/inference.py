"""The grading model as the inference workers see it, and batched grading of submissions.

One model per worker process, loaded lazily on the first batch (after Celery forked the
child, never in the parent), chosen by ``settings.model``:

    "auto"               the registry's active version (ml/registry.py), else the baseline
    "baseline"           ml.BaselineFeedbackModel (similarity grader, no torch)
    "/path/to/model"     a model directory for ml.FeedbackModel
    "pkg.module:Class"   any class with ``load(model_dir, device)`` and ``predict_batch``

Every choice has the same interface, ``predict_batch(list[FeedbackRequest]) ->
list[FeedbackResult]``, so nothing here changes when a trained model is activated.

Batching (``grade_batch``): the task's own submission is claimed, then further ``queued``
submissions are claimed from the database (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
concurrent workers never claim the same rows) until ``inference_batch_size`` rows or
``inference_batch_wait_ms`` have passed; then ONE ``predict_batch`` call grades them all and
each result is recorded through ``submissions.record_result`` (a conditional transition, so
a submission is graded once even when its task is delivered twice).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from flask import current_app
from sqlalchemy import select, update

from lti_tool.config import Settings
from lti_tool.extensions import db
from lti_tool.models import Submission, SubmissionStatus, utcnow
from lti_tool.services import dispatch, settings_store, submissions
from lti_tool.services.activities import settings_of
from lti_tool.services.errors import MarginaliaError
from lti_tool.services.settings_store import ModelSettings
from ml.types import (
    MAX_PEER_ANSWERS,
    FeedbackRequest,
    FeedbackResult,
    GradedAnswer,
    LearnerFeatures,
    RubricCriterion,
    Verdict,
)

log = logging.getLogger(__name__)

# How often the batcher looks for more queued submissions while it waits.
POLL_SECONDS = 0.02


class Model(Protocol):
    def predict_batch(self, requests: list[FeedbackRequest]) -> list[FeedbackResult]: ...


class ModelError(MarginaliaError):
    """The configured model could not be loaded or gave an unusable answer."""


@dataclass
class LoadedModel:
    model: Model
    version: str  # stored on each submission (model_version)
    source: str  # where it came from, for the logs


# -- loading ---------------------------------------------------------------------------------
def _device(device: str) -> str:
    if device and device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(settings: Settings, wanted: ModelSettings | None = None) -> LoadedModel:
    """Resolve ``settings.model`` to a loaded model (see the module docstring).

    ``wanted`` is what the administrator chose (active version, device); it defaults to the
    stored settings, which fall back to the environment.
    """
    from ml.baseline import BaselineFeedbackModel

    wanted = wanted or settings_store.model_settings()
    device = _device(wanted.device)

    spec = (settings.model or "auto").strip()
    if spec == "baseline":
        model = BaselineFeedbackModel.load()
        return LoadedModel(model, BaselineFeedbackModel.name, "baseline (configured)")
    if ":" in spec and not Path(spec).exists():
        module_name, _, attr = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ModelError(f"model {spec!r} cannot be imported: {exc}") from exc
        model = cls.load(None, device)
        return LoadedModel(model, str(getattr(model, "name", attr)), f"class {spec}")
    if spec == "auto":
        from ml.registry import ModelRegistry

        registry = ModelRegistry()
        path = registry.root / wanted.active_version if wanted.active_version else None
        if path is None or not (path / "meta.json").is_file():
            log.warning(
                "no trained model is active in %s: grading with %s",
                registry.root,
                BaselineFeedbackModel.name,
            )
            model = BaselineFeedbackModel.load()
            return LoadedModel(model, BaselineFeedbackModel.name, "baseline (no trained model)")
        version = wanted.active_version or path.name
        model_dir, label = path, f"registry {registry.root} version {version}"
    else:
        model_dir, version, label = Path(spec), Path(spec).name, f"directory {spec}"
    from ml.inference import FeedbackModel

    loaded = FeedbackModel.load(model_dir, device)
    name = str(getattr(loaded, "name", version))
    return LoadedModel(loaded, f"{version}:{name}" if name != version else name, label)


_model: LoadedModel | None = None
# The (version, device) the loaded model was chosen for; a change on the admin page reloads.
_model_key: tuple[str | None, str] | None = None
_model_lock = threading.Lock()


def get_model(wanted: ModelSettings | None = None) -> LoadedModel:
    """This process's model, loaded on first use (in the forked worker child) and again when
    the administrator activates another version or device."""
    global _model, _model_key
    wanted = wanted or settings_store.model_settings()
    key = (wanted.active_version, wanted.device)
    if _model is None or _model_key != key:
        with _model_lock:
            if _model is None or _model_key != key:
                settings: Settings = current_app.config["MARGINALIA"]
                started = time.monotonic()
                _model = load_model(settings, wanted)
                _model_key = key
                log.info(
                    "grading model loaded: %s from %s in %.1fs",
                    _model.version,
                    _model.source,
                    time.monotonic() - started,
                )
    return _model


def forget_model() -> None:
    """Drop the loaded model (tests)."""
    global _model, _model_key
    _model = None
    _model_key = None


# -- requests --------------------------------------------------------------------------------
def _file_path(storage_key: str) -> str:
    try:
        from lti_tool.services.storage import get_storage

        return str(get_storage().path(storage_key))
    except (ImportError, AttributeError):  # storage backend not available: local layout
        settings: Settings = current_app.config["MARGINALIA"]
        return str(Path(settings.storage_dir) / storage_key)


def _language(submission: Submission) -> str:
    wanted = settings_of(submission.activity).feedback_language
    if wanted and wanted != "auto":
        return wanted
    locale = (submission.locale or "en").replace("_", "-")
    return locale.split("-")[0].lower() or "en"


def learner_features(submission: Submission, language: str) -> LearnerFeatures:
    """z from the learner's earlier graded attempts on the same activity."""
    earlier = list(
        db.session.scalars(
            select(Submission)
            .where(
                Submission.activity_id == submission.activity_id,
                Submission.user_id == submission.user_id,
                Submission.attempt < submission.attempt,
            )
            .order_by(Submission.attempt)
        )
    )
    graded = [
        s
        for s in earlier
        if s.status in (SubmissionStatus.GRADED, SubmissionStatus.RELEASED) and s.score is not None
    ]
    scores = tuple(score_fraction(s) for s in graded)
    coverage: dict[str, list[float]] = {}
    missed: dict[str, int] = {}
    for s in graded:
        for c in s.criteria or []:
            cid = str(c.get("criterion_id", ""))
            if not cid:
                continue
            coverage.setdefault(cid, []).append(float(c.get("coverage", 0.0)))
            if not c.get("met"):
                missed[cid] = missed.get(cid, 0) + 1
    mastery = {cid: round(sum(v) / len(v), 4) for cid, v in coverage.items()}
    detail = "standard"
    if scores:
        mean = sum(scores) / len(scores)
        detail = "novice" if mean < 0.4 else "advanced" if mean >= 0.85 else "standard"
    return LearnerFeatures(
        attempts=len(earlier),
        previous_scores=scores,
        criterion_mastery=mastery,
        times_missed=missed,
        detail_level=detail,  # type: ignore[arg-type]
        language=language,
    )


def build_request(
    submission: Submission,
    reviews: list[tuple[int, GradedAnswer]] | None = None,
    answers: list[tuple[int, str]] | None = None,
) -> FeedbackRequest:
    """``reviews`` and ``answers``: the activity's reviews (``activity_reviews``) and latest
    answers (``activity_answers``) when the caller already has them - a batch fetches them once
    per activity; ``[]`` sends none."""
    activity = submission.activity
    if reviews is None:
        reviews = activity_reviews(activity.id)
    if answers is None:
        answers = activity_answers(activity.id)
    language = _language(submission)
    rubric = tuple(
        RubricCriterion(
            id=str(c.get("id") or f"c{i + 1}"),
            description=str(c.get("description", "")),
            points=float(c.get("points", 1.0)),
            explanation=str(c.get("explanation", "")),
        )
        for i, c in enumerate(activity.rubric or [])
    )
    images = tuple(_file_path(f.storage_key) for f in submission.files if f.kind == "image")
    videos = [_file_path(f.storage_key) for f in submission.files if f.kind == "video"]
    return FeedbackRequest(
        question=activity.prompt or activity.title,
        reference_answer=activity.reference_answer or "",
        answer_text=submission.answer_text or "",
        max_score=float(activity.max_score) or 1.0,
        rubric=rubric,
        image_paths=images,
        video_path=videos[0] if videos else None,
        learner=learner_features(submission, language),
        language=language,
        question_id=activity.public_id,
        graded=tuple(g for sid, g in reviews if sid != submission.id)[:MAX_REVIEWS_AS_EVIDENCE],
        peer_answers=tuple(t for uid, t in answers if uid != submission.user_id)[:MAX_PEER_ANSWERS],
    )


# Newest reviews only: enough evidence for the kNN statistics, bounded work per request.
MAX_REVIEWS_AS_EVIDENCE = 50


def score_fraction(submission: Submission) -> float:
    """The final score (the instructor's if changed) as a share of the maximum, in 0..1."""
    max_score = float(submission.activity.max_score) or 1.0
    return min(1.0, max(0.0, float(submission.score or 0) / max_score))


def final_verdict(submission: Submission) -> Verdict:
    """The model's verdict, unless the instructor changed the score: then the score decides."""
    if submission.instructor_score is None and submission.verdict:
        return Verdict.parse(submission.verdict)
    fraction = score_fraction(submission)
    if fraction >= 0.999:
        return Verdict.CORRECT
    return Verdict.INCORRECT if fraction <= 0.001 else Verdict.PARTIALLY_CORRECT


def activity_reviews(activity_id: int) -> list[tuple[int, GradedAnswer]]:
    """The newest answers to an activity that an instructor reviewed, as (submission id,
    graded answer); one more than a request carries, as one may be the answer being graded.

    They are the model's evidence for a new activity (its first reviews improve the grades of
    later answers). Only the answer text and the reviewed score travel - never the
    instructor's feedback, which may address one student - and only within this activity.
    """
    rows = db.session.scalars(
        select(Submission)
        .where(Submission.activity_id == activity_id, Submission.reviewed_by_id.is_not(None))
        .order_by(Submission.updated_at.desc(), Submission.id.desc())
        .limit(MAX_REVIEWS_AS_EVIDENCE + 1)
    )
    out = []
    for row in rows:
        text = (row.answer_text or row.extracted_text or "").strip()
        if text and row.score is not None:
            out.append((row.id, GradedAnswer(text, score_fraction(row), final_verdict(row))))
    return out


def activity_answers(activity_id: int) -> list[tuple[int, str]]:
    """The newest answer of each of the activity's latest learners, as (user id, answer text);
    one more than a request carries, as one may be the learner being graded.

    They tell the model where an answer stands among its class's answers, which is evidence
    before anyone has graded the activity. Only the text travels, never who wrote it, and
    only within this activity.
    """
    rows = db.session.execute(
        select(Submission.user_id, Submission.answer_text, Submission.extracted_text)
        .where(Submission.activity_id == activity_id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
        .limit(4 * (MAX_PEER_ANSWERS + 1))  # room for several attempts per learner
    )
    latest: dict[int, str] = {}
    for user_id, answer_text, extracted_text in rows:
        text = (answer_text or extracted_text or "").strip()
        if text and user_id not in latest:
            latest[user_id] = text
            if len(latest) > MAX_PEER_ANSWERS:
                break
    return list(latest.items())


# -- claiming --------------------------------------------------------------------------------
def claim_first(submission_id: int, *, redelivered: bool, stale_after: timedelta) -> bool:
    """Claim the task's own submission.

    ``queued``: claimed. ``processing``: claimed again only when this message is a
    re-delivery (its worker died) or the row has been untouched for ``stale_after``;
    otherwise another worker's batch holds it, and the sweeper is the safety net.
    """
    status, updated_at = db.session.execute(
        select(Submission.status, Submission.updated_at).where(Submission.id == submission_id)
    ).one_or_none() or (None, None)
    db.session.rollback()
    if status == SubmissionStatus.QUEUED:
        claimed = submissions.start_processing(
            submission_id, from_statuses=(SubmissionStatus.QUEUED,)
        )
    elif status == SubmissionStatus.PROCESSING:
        if not redelivered and updated_at is not None and updated_at > utcnow() - stale_after:
            log.info("submission %s is in another worker's batch; skipped", submission_id)
            return False
        # Take it over only if nobody touched it since we looked.
        claimed = submissions.start_processing(
            submission_id, from_statuses=(SubmissionStatus.PROCESSING,), unchanged_since=updated_at
        )
    else:
        return False
    return claimed is not None


def claim_queued(limit: int) -> list[int]:
    """Claim up to ``limit`` more queued submissions, oldest first, skipping locked rows."""
    if limit <= 0:
        return []
    # Two statements in one transaction: the rows stay locked until the commit. (One
    # "UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)" is not safe: the
    # planner may rescan the subquery, which then skips the rows it just locked.)
    picked = list(
        db.session.scalars(
            select(Submission.id)
            .where(Submission.status == SubmissionStatus.QUEUED)
            .order_by(Submission.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not picked:
        db.session.rollback()
        return []
    claimed = db.session.execute(
        update(Submission)
        .where(Submission.id.in_(picked), Submission.status == SubmissionStatus.QUEUED)
        .values(
            status=SubmissionStatus.PROCESSING,
            processing_attempts=Submission.processing_attempts + 1,
            updated_at=utcnow(),
        )
        .returning(Submission.id, Submission.processing_attempts)
        .execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    ids = []
    for sid, attempts in claimed:
        if attempts > submissions.MAX_PROCESSING_ATTEMPTS:
            submissions.mark_failed(sid, "grading failed too many times")
        else:
            ids.append(sid)
    return sorted(ids)


def _unclaim(ids: list[int]) -> None:
    """Put claimed submissions back in the queue (the batch failed before grading them)."""
    if not ids:
        return
    db.session.rollback()
    db.session.execute(
        update(Submission)
        .where(Submission.id.in_(ids), Submission.status == SubmissionStatus.PROCESSING)
        .values(status=SubmissionStatus.QUEUED, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


# -- the batch -------------------------------------------------------------------------------
@dataclass
class BatchReport:
    claimed: list[int]
    graded: list[int]
    failed: list[int]
    forward_passes: int


def gather(first_id: int, *, redelivered: bool = False) -> list[int]:
    """The task's submission plus queued ones, up to B rows or T milliseconds."""
    settings: Settings = current_app.config["MARGINALIA"]
    stale = timedelta(seconds=settings.stuck_after_seconds)
    claimed: list[int] = []
    # Even when our own row is done or taken, help with whatever else is waiting.
    if claim_first(first_id, redelivered=redelivered, stale_after=stale):
        claimed.append(first_id)
    wanted = settings_store.model_settings()
    size = wanted.batch_size
    deadline = time.monotonic() + wanted.batch_wait_ms / 1000
    while len(claimed) < size:
        claimed += claim_queued(size - len(claimed))
        remaining = deadline - time.monotonic()
        if len(claimed) >= size or remaining <= 0 or not claimed:
            break
        time.sleep(min(POLL_SECONDS, remaining))
    return claimed


def grade_batch(first_id: int, *, redelivered: bool = False) -> BatchReport:
    """Claim a batch around ``first_id``, run one forward pass, record every result."""
    claimed = gather(first_id, redelivered=redelivered)
    if not claimed:
        return BatchReport([], [], [], 0)
    loaded = get_model()
    requests: list[FeedbackRequest] = []
    ready: list[int] = []
    failed: list[int] = []
    reviews: dict[int, list[tuple[int, GradedAnswer]]] = {}  # per activity, fetched once
    answers: dict[int, list[tuple[int, str]]] = {}
    for sid in claimed:
        submission = db.session.get(Submission, sid)
        if submission is None:
            continue
        try:
            activity = submission.activity
            if activity.id not in reviews:
                reviews[activity.id] = activity_reviews(activity.id)
                answers[activity.id] = activity_answers(activity.id)
            requests.append(build_request(submission, reviews[activity.id], answers[activity.id]))
            ready.append(sid)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("submission %s cannot be graded: %s", sid, exc)
            submissions.mark_failed(sid, f"the submission could not be read: {exc}")
            failed.append(sid)
    db.session.rollback()
    if not requests:
        return BatchReport(claimed, [], failed, 0)
    started = time.monotonic()
    try:
        results = loaded.model.predict_batch(requests)
        if len(results) != len(requests):
            raise ModelError(f"the model answered {len(results)} results for {len(requests)}")
    except Exception:
        # Nothing was graded: hand the rows back (the others' messages may be gone already).
        _unclaim(ready)
        for sid in ready:
            if sid != first_id:
                dispatch.enqueue_grading(sid)
        raise
    seconds = time.monotonic() - started
    log.info(
        "graded a batch of %d in %.0f ms with %s", len(requests), seconds * 1000, loaded.version
    )
    try:
        from lti_tool.observability import observe_inference_batch

        observe_inference_batch(len(requests), seconds)
    except ImportError:  # metrics are optional
        pass
    graded = []
    for sid, result in zip(ready, results, strict=True):
        if submissions.record_result(sid, result, loaded.version):
            graded.append(sid)
    return BatchReport(claimed, graded, failed, 1)
