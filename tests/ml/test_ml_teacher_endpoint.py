"""The OpenAI-compatible adapter against a local chat-completions server (stdlib http.server)
that serves a real (tiny, freshly trained) Marginalia student model."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ml.data import load_corpus
from ml.errors import TeacherError
from ml.inference import FeedbackModel
from ml.models.encoders import HashingTextEncoder
from ml.teacher.openai_compat import OpenAICompatibleTeacher
from ml.train import TrainConfig, student_config_for, train_student
from ml.types import FeedbackRequest


@pytest.fixture(scope="module")
def server():
    corpus = load_corpus()
    enc = HashingTextEncoder(32)
    cfg = student_config_for(enc, 8, d_model=32, n_heads=2, n_layers=1, retrieval_dim=16)
    model, feat, _ = train_student(corpus, enc, TrainConfig(epochs=3), cfg)
    student = FeedbackModel(model, feat, "tiny")
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            if body["model"] == "broken":
                self.send_response(500)
                self.end_headers()
                return
            user = body["messages"][-1]["content"]
            fields = dict(
                re.findall(r"^(Question|Reference answer|Student answer): (.*)$", user, re.M)
            )
            res = student.predict(
                FeedbackRequest(
                    question=fields["Question"],
                    reference_answer=fields["Reference answer"],
                    answer_text=fields["Student answer"],
                )
            )
            content = json.dumps(
                {"verdict": res.verdict.value, "score": res.score, "feedback": res.feedback}
            )
            payload = json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": content}}]}
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload.encode())

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", seen
    httpd.shutdown()
    httpd.server_close()


def test_adapter_labels_examples_without_personal_data(server):
    url, seen = server
    teacher = OpenAICompatibleTeacher(url, "tiny-student")
    examples = load_corpus()[:2]
    labels = teacher.label(examples)
    assert [lab.id for lab in labels] == [e.id for e in examples]
    for lab in labels:
        assert sum(lab.verdict_probs) == pytest.approx(1.0)
        assert max(lab.verdict_probs) == pytest.approx(0.9 + 0.1 / 3)
        assert 0.0 <= lab.score <= 1.0 and lab.feedback
    sent = json.dumps(seen)
    assert "learner" not in sent and "@" not in sent
    assert seen[0]["temperature"] == 0


def test_adapter_raises_teacher_error(server):
    url, _ = server
    with pytest.raises(TeacherError):
        OpenAICompatibleTeacher(url, "broken").label(load_corpus()[:1])
