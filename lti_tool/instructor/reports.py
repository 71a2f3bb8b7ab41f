"""Reports on one activity: the CSV export (streamed) and the analytics page."""

from __future__ import annotations

import re
from typing import Any

from flask import Response, render_template, stream_with_context

from lti_tool.auth import role_required
from lti_tool.constants import Audience
from lti_tool.instructor import charts
from lti_tool.instructor.common import current_activity
from lti_tool.models import utcnow
from lti_tool.services import analytics, review

from . import bp


def _filename(title: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:60] or "activity"
    return f"{slug}-submissions-{utcnow():%Y%m%d}.csv"


@bp.get("/submissions.csv")
@role_required(Audience.INSTRUCTOR)
def export_csv() -> Any:
    activity = current_activity()
    response = Response(
        stream_with_context(review.export_csv(activity)), mimetype="text/csv; charset=utf-8"
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{_filename(activity.title)}"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/analytics")
@role_required(Audience.INSTRUCTOR)
def analytics_view() -> Any:
    activity = current_activity()
    summary = analytics.summarize(activity)
    return render_template(
        "instructor/analytics.html",
        activity=activity,
        summary=summary,
        histogram=charts.histogram(summary.bins),
        misses=charts.miss_rates(summary.criteria),
        counts=review.counts(activity.id),
        active="analytics",
    )
