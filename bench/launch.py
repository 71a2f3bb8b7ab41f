"""Full LTI 1.3 launches per second and their latency, against the sandbox LMS on loopback.

A full launch is what a browser does when a student clicks the activity in the LMS:
sandbox launch page -> tool OIDC login -> platform authorization -> tool launch (id_token
validation, single-use nonce, rows synced) -> the student page. The platform's JWKS is cached
by the tool after the warm-up launches, as in production.

    python bench/launch.py                     # PostgreSQL + Redis on localhost
    python bench/launch.py --embedded          # SQLite + in-process stores (the demo setup)
    python bench/launch.py --launches 300 --concurrency 8 --out var/bench/launch.json

The server runs in a child process (werkzeug, threaded) so that client and server do not
share one interpreter lock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import requests

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-that-is-long-enough-0123456789"


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action") or ""
            self.method = (a.get("method") or "get").lower()
        elif tag == "input" and self.action is not None and a.get("name"):
            self.fields[a["name"] or ""] = a.get("value") or ""


def _submit(session: requests.Session, resp: requests.Response) -> requests.Response:
    form = _Forms()
    form.feed(resp.text)
    if form.action is None:
        raise RuntimeError(f"expected an auto-submitting form at {resp.url}: {resp.text[:300]}")
    url = urljoin(resp.url, form.action)
    if form.method == "post":
        return session.post(url, data=form.fields, timeout=30)
    return session.get(url, params=form.fields, timeout=30)


def full_launch(base: str, user: str, link: str) -> float:
    """One launch in a fresh browser session; returns seconds."""
    start = time.perf_counter()
    with requests.Session() as session:
        page = session.get(f"{base}/sandbox/launch", params={"user": user, "link": link})
        page = _submit(session, page)  # -> /lti/login -> 302 -> /sandbox/auth (form_post)
        page = _submit(session, page)  # -> /lti/launch -> 303 -> /student/activity
        if page.status_code != 200 or "/student/activity" not in page.url:
            raise RuntimeError(f"launch failed: {page.status_code} {page.url} {page.text[:300]}")
    return time.perf_counter() - start


def _serve(args: argparse.Namespace) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.update(
        MARGINALIA_MODE="development",
        MARGINALIA_SECRET_KEY=SECRET,
        MARGINALIA_SANDBOX_ENABLED="true",
        MARGINALIA_LOG_LEVEL="WARNING",
    )
    if args.embedded:
        env["MARGINALIA_DATABASE_URL"] = f"sqlite:///{ROOT}/var/bench/launch.db"
        env.pop("MARGINALIA_REDIS_URL", None)
    else:
        env["MARGINALIA_DATABASE_URL"] = args.database_url
        env["MARGINALIA_REDIS_URL"] = args.redis_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._launch_server"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--launches", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--embedded", action="store_true", help="SQLite + in-process stores")
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/marginalia_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "launch.json"))
    args = parser.parse_args()

    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    proc = _serve(args)
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())  # {"base": ..., "users": [...], "link": ...}
        base, users, link = ready["base"], ready["users"], ready["link"]
        for i in range(args.warmup):
            full_launch(base, users[i % len(users)], link)

        latencies: list[float] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            seconds = full_launch(base, users[i % len(users)], link)
            with lock:
                latencies.append(seconds)

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(one, range(args.launches)))
        elapsed = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    result = {
        "benchmark": "full LTI 1.3 launch via the sandbox LMS",
        "store": "sqlite+memory" if args.embedded else "postgresql+redis",
        "launches": args.launches,
        "concurrency": args.concurrency,
        "launches_per_second": round(args.launches / elapsed, 2),
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 1),
            "p95": round(_percentile(latencies, 95) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
