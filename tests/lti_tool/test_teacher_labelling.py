"""``marginalia label-with-teacher``: the admin's teacher endpoint labels exported answers,
sending only what the privacy settings share."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lti_tool.cli import main
from lti_tool.services import settings_store
from ml.data import load_corpus
from ml.data.examples import write_jsonl
from ml.teacher.labels import read_labels

API_KEY = "sk-teacher-0123456789"


@pytest.fixture
def endpoint():
    """A chat-completions endpoint (the protocol boundary): grades by answer length and
    records what it was sent."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"auth": self.headers.get("Authorization"), "body": body})
            answer = body["messages"][-1]["content"].split("Student answer: ", 1)[1]
            content = (
                "not json"
                if "unparseable" in answer
                else json.dumps(
                    {"verdict": "correct", "score": min(1.0, len(answer) / 100), "feedback": "ok"}
                )
            )
            reply = {"choices": [{"message": {"role": "assistant", "content": content}}]}
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(reply).encode())

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", seen
    httpd.shutdown()
    httpd.server_close()


def test_labels_with_the_admin_endpoint_and_privacy_settings(app, endpoint, runner, tmp_path):
    url, seen = endpoint
    settings_store.save_teacher(url, "school-llm", API_KEY, actor="admin")
    settings_store.save_privacy({"teacher_shares": ["answer_text", "prompt"]}, actor="admin")
    examples = [e for e in load_corpus() if e.rubric][:3]
    broken = replace(examples[2], answer_text="unparseable")
    data = tmp_path / "reviewed.jsonl"
    write_jsonl([*examples[:2], broken], data)
    out = tmp_path / "labels.jsonl"
    args = ["label-with-teacher", "--data", str(data), "--out", str(out)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "2 answers labelled, 1 unparseable replies skipped" in result.output
    assert API_KEY not in result.output
    labels = read_labels(out)
    assert sorted(labels) == sorted(e.id for e in examples[:2])
    assert labels[examples[0].id].teacher == "openai:school-llm"
    assert {s["auth"] for s in seen} == {f"Bearer {API_KEY}"}
    for s, ex in zip(seen, [*examples[:2], broken], strict=True):
        user = s["body"]["messages"][-1]["content"]
        assert ex.question in user  # "prompt" is shared
        assert ex.reference_answer not in user and "Rubric:" not in user  # these are not


def test_refuses_without_an_endpoint_or_when_answers_may_not_leave(app, runner, tmp_path):
    data = tmp_path / "reviewed.jsonl"
    write_jsonl(load_corpus()[:1], data)
    args = ["label-with-teacher", "--data", str(data), "--out", str(tmp_path / "l.jsonl")]
    result = runner.invoke(main, args)
    assert result.exit_code != 0 and "No teacher endpoint is set" in result.output
    settings_store.save_teacher("http://127.0.0.1:9/v1", "m", actor="admin")
    settings_store.save_privacy({"teacher_shares": ["prompt"]}, actor="admin")
    result = runner.invoke(main, args)
    assert result.exit_code != 0 and "privacy settings" in result.output
