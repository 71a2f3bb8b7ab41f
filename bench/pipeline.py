"""Submissions through the whole pipeline: web -> Redis -> inference worker -> AGS, on loopback.

For each inference batch size (1 and 16 by default) a fresh server (the tool with the sandbox
LMS, threaded werkzeug, its own process) and a real ``celery worker`` process are started;
N submissions are made by concurrent clients; the run ends when every grade is in the
sandbox gradebook. Latencies come from the database rows (created_at -> graded_at for the
feedback, created_at -> the RELEASED grade sync's posted_at for the gradebook).

    python bench/pipeline.py                                # PostgreSQL + Redis on localhost
    python bench/pipeline.py --submissions 400 --concurrency 16 --batch-sizes 1,16
    python bench/pipeline.py --out var/bench/pipeline.json

Submissions are created by ``services.submissions.create`` inside the server process, behind a
bench-only ``POST /_bench/submit`` added by this script's server mode (one learner per
submission; one real launch made the GradeTarget the others copy). The model is whatever
``MARGINALIA_MODEL`` selects (default: the registry's active model, else the baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-that-is-long-enough-0123456789"  # noqa: S105 - bench only


# -- server mode (child process) -------------------------------------------------------------
def serve(learners: int) -> None:
    from flask import jsonify, request
    from sqlalchemy import func, select
    from werkzeug.serving import make_server

    from bench._launch_server import _fresh_database
    from bench.launch import full_launch
    from lti_tool import create_app
    from lti_tool.config import Settings
    from lti_tool.extensions import db
    from lti_tool.models import (
        Activity,
        GradeSync,
        GradeTarget,
        LtiUser,
        Submission,
        SubmissionStatus,
        SyncKind,
        SyncStatus,
    )
    from lti_tool.sandbox import testing as sandbox
    from lti_tool.services import platforms, submissions
    from lti_tool.services.launches import LtiLaunch

    settings = Settings()
    _fresh_database(settings.database_url)
    app = create_app(settings)
    state: dict[str, Any] = {}

    def submit() -> Any:
        index = int(request.json["learner"])
        activity = db.session.get(Activity, state["activity_id"])
        launch = LtiLaunch(**{**state["launch"], "user_id": state["users"][index]})
        submission = submissions.create(launch, activity, request.json["answer"], [])
        return jsonify(id=submission.id)

    def progress() -> Any:
        posted = db.session.scalar(
            select(func.count(GradeSync.id)).where(
                GradeSync.kind == SyncKind.RELEASED, GradeSync.status == SyncStatus.POSTED
            )
        )
        released = db.session.scalar(
            select(func.count(Submission.id)).where(Submission.status == SubmissionStatus.RELEASED)
        )
        return jsonify(posted=posted, released=released)

    def timings() -> Any:
        rows = db.session.execute(
            select(Submission.created_at, Submission.graded_at, GradeSync.posted_at)
            .join(GradeSync, GradeSync.submission_id == Submission.id)
            .where(GradeSync.kind == SyncKind.RELEASED, GradeSync.status == SyncStatus.POSTED)
        ).all()
        return jsonify(
            [[c.timestamp(), g.timestamp() if g else None, p.timestamp()] for c, g, p in rows]
        )

    app.add_url_rule("/_bench/submit", "bench_submit", submit, methods=["POST"])
    app.add_url_rule("/_bench/progress", "bench_progress", progress)
    app.add_url_rule("/_bench/timings", "bench_timings", timings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()

    with app.app_context():
        with app.test_request_context(base_url=base):
            from lti_tool.sandbox.routes import ensure_tool_registration

            ensure_tool_registration()
        platform_row = platforms.find(base + "/sandbox", "marginalia-sandbox")
        deployment = platforms.find_deployment(platform_row, "sandbox-deployment-1")
        activity = Activity(
            deployment_id=deployment.id,
            title="Routers",
            prompt="What does a router do?",
            reference_answer="A router forwards packets between networks using a routing table.",
            rubric=[
                {"id": "c1", "description": "forwards packets between networks", "points": 2},
                {"id": "c2", "description": "uses a routing table for the next hop", "points": 2},
            ],
            max_score=4,
            settings={"release_mode": "instant", "max_attempts": 0},
        )
        db.session.add(activity)
        db.session.commit()
        link = sandbox.add_resource_link(
            app, "Routers", custom={"marginalia_activity": activity.public_id}
        )
        first = sandbox.member(app, "learner", 0)
        activity_id, deployment_pk = activity.id, deployment.id
        db.session.remove()
    full_launch(base, first["sub"], link)
    with app.app_context():
        target = db.session.scalar(select(GradeTarget).where(GradeTarget.sub == first["sub"]))
        user = db.session.get(LtiUser, target.user_id)
        users, members = [user.id], []
        for i in range(1, learners):
            sub = f"bench-learner-{i:05d}"
            row = LtiUser(platform_id=user.platform_id, sub=sub)
            db.session.add(row)
            db.session.flush()
            db.session.add(
                GradeTarget(
                    activity_id=activity_id,
                    user_id=row.id,
                    issuer=target.issuer,
                    client_id=target.client_id,
                    deployment_id=target.deployment_id,
                    sub=sub,
                    ags_endpoint=target.ags_endpoint,
                )
            )
            users.append(row.id)
            members.append({**first, "sub": sub, "name": f"Learner {i}"})
        db.session.commit()
        state.update(
            activity_id=activity_id,
            users=users,
            launch={
                "id": "bench",
                "platform_id": user.platform_id,
                "deployment_pk": deployment_pk,
                "course_id": None,
                "user_id": user.id,
                "activity_id": activity_id,
                "locale": "en",
            },
        )
        db.session.remove()
    with app.extensions["marginalia.sandbox"].write() as sandbox_state:
        sandbox_state["members"].extend(members)
    print(json.dumps({"base": base}), flush=True)
    threading.Event().wait()  # until the driver terminates this process


# -- driver ----------------------------------------------------------------------------------
def _env(args: argparse.Namespace, batch: int, run: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MARGINALIA_BROKER_URL"}
    env.update(
        MARGINALIA_MODE="development",
        MARGINALIA_SECRET_KEY=SECRET,
        MARGINALIA_SANDBOX_ENABLED="true",
        MARGINALIA_DATABASE_URL=args.database_url,
        MARGINALIA_REDIS_URL=args.redis_url,
        MARGINALIA_REDIS_KEY_PREFIX=f"marginalia-bench-{run}:",
        MARGINALIA_INFERENCE_BATCH_SIZE=str(batch),
        MARGINALIA_INFERENCE_BATCH_WAIT_MS=str(args.batch_wait_ms),
        MARGINALIA_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values) * 1000, 1),
        "p95": round(_percentile(values, 95) * 1000, 1),
        "max": round(max(values) * 1000, 1),
    }


def run_once(args: argparse.Namespace, batch: int) -> dict[str, Any]:
    run = f"{os.getpid()}-{batch}"
    env = _env(args, batch, run)
    log_dir = ROOT / "var" / "bench"
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", str(args.submissions)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    worker = None
    try:
        assert server.stdout is not None
        base = json.loads(server.stdout.readline())["base"]
        worker_log = open(log_dir / f"pipeline-worker-{batch}.log", "w")  # noqa: SIM115
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.entry", "worker"]
            + ["-Q", "inference,lti", "-c", str(args.worker_concurrency)]
            + ["--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
            cwd=ROOT,
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        time.sleep(args.worker_warmup)

        def one(i: int) -> None:
            body = {"learner": i, "answer": f"A router forwards packets, learner {i}."}
            requests.post(f"{base}/_bench/submit", json=body, timeout=60).raise_for_status()

        start = time.time()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(one, range(args.submissions)))
        submitted = time.time()
        deadline = submitted + args.timeout
        while True:
            done = requests.get(f"{base}/_bench/progress", timeout=30).json()
            if done["posted"] >= args.submissions:
                break
            if time.time() > deadline:
                raise RuntimeError(f"timed out: {done} of {args.submissions}")
            time.sleep(0.2)
        rows = requests.get(f"{base}/_bench/timings", timeout=30).json()
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
        server.terminate()
        server.wait(timeout=30)

    feedback = [g - c for c, g, _ in rows if g is not None]
    posted = [p - c for c, _, p in rows]
    first_created = min(c for c, _, _ in rows)
    last_posted = max(p for _, _, p in rows)
    return {
        "batch_size": batch,
        "submissions": len(rows),
        "submit_seconds": round(submitted - start, 2),
        "submissions_per_second": round(len(rows) / (last_posted - first_created), 2),
        "submit_to_feedback_ms": _ms(feedback),
        "submit_to_grade_posted_ms": _ms(posted),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", type=int, metavar="LEARNERS", help=argparse.SUPPRESS)
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--batch-wait-ms", type=int, default=50)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--worker-warmup", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/marginalia_bench_pipeline",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "pipeline.json"))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    runs = [run_once(args, int(b)) for b in args.batch_sizes.split(",")]
    result = {
        "benchmark": "submission -> Redis -> inference worker -> AGS score (sandbox LMS)",
        "submissions": args.submissions,
        "client_concurrency": args.concurrency,
        "worker_processes": args.worker_concurrency,
        "batch_wait_ms": args.batch_wait_ms,
        "model": os.environ.get("MARGINALIA_MODEL", "auto"),
        "runs": runs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
