"""The OpenAI-compatible adapter against a local chat-completions server (stdlib http.server)
that serves a real (tiny, freshly trained) Marginalia student model."""

from __future__ import annotations

import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ml.data import load_corpus
from ml.errors import TeacherError, TeacherReplyError
from ml.inference import FeedbackModel
from ml.models.encoders import HashingTextEncoder
from ml.teacher.openai_compat import OpenAICompatibleTeacher, verdict_probs_from_logprobs
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
            if body["model"] == "no-structured-output" and "response_format" in body:
                self.send_response(422)  # a server that rejects the field it does not know
                self.end_headers()
                return
            user = body["messages"][-1]["content"]
            fields = dict(
                re.findall(r"^(Question|Reference answer|Student answer): (.*)$", user, re.M)
            )
            res = student.predict(
                FeedbackRequest(
                    question=fields.get("Question", ""),
                    reference_answer=fields.get("Reference answer", ""),
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
    schema = seen[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["verdict"]["enum"] == [
        "correct",
        "partially correct",
        "incorrect",
    ]
    assert seen[0]["logprobs"] is True


def test_adapter_drops_a_structured_output_dialect_the_server_rejects(server):
    url, seen = server
    teacher = OpenAICompatibleTeacher(url, "no-structured-output")
    first, second = teacher.label(load_corpus()[:2])
    assert first.teacher == "openai:no-structured-output" and second.score >= 0
    asked = [b for b in seen if b["model"] == "no-structured-output"]
    # Asked with the field once, then without it - also for the second answer.
    assert ["response_format" in b for b in asked] == [True, False, False]
    assert teacher.response_format == "none"


def test_prompt_holds_only_what_the_privacy_settings_share(server):
    url, seen = server
    example = next(e for e in load_corpus() if e.rubric)
    teacher = OpenAICompatibleTeacher(url, "private", shares=frozenset({"answer_text", "prompt"}))
    teacher.label([example])
    user = [b for b in seen if b["model"] == "private"][0]["messages"][-1]["content"]
    assert example.question in user and example.answer_text in user
    assert example.reference_answer not in user and "Rubric:" not in user
    with pytest.raises(TeacherError, match="privacy"):
        OpenAICompatibleTeacher(url, "m", shares=frozenset({"prompt", "rubric"}))


def test_soft_verdict_from_top_logprobs():
    content = '{"verdict": "partially correct", "score": 0.5, "feedback": "Add the unit."}'
    pre = '{"verdict": '
    tokens = [
        {"token": pre, "top_logprobs": []},
        # The tokenizer merged the opening quote with the word's first piece.
        {
            "token": '"part',
            "top_logprobs": [
                {"token": '"part', "logprob": math.log(0.5)},
                {"token": '"correct', "logprob": math.log(0.3)},
                {"token": '"in', "logprob": math.log(0.1)},
                {"token": '"', "logprob": math.log(0.05)},  # starts no verdict word alone
                {"token": "x", "logprob": math.log(0.05)},  # not this position's prefix
            ],
        },
        {"token": content[len(pre) + 5 :], "top_logprobs": []},
    ]
    probs = verdict_probs_from_logprobs(content, tokens)
    assert probs == pytest.approx((0.3 / 0.9, 0.5 / 0.9, 0.1 / 0.9))
    assert verdict_probs_from_logprobs(content, []) is None
    assert verdict_probs_from_logprobs("no json", tokens) is None


def test_unparseable_reply_is_a_reply_error():
    teacher = OpenAICompatibleTeacher("http://127.0.0.1:9/v1", "m")
    with pytest.raises(TeacherReplyError):
        teacher._parse("I think the answer is fine.", [])
    with pytest.raises(TeacherReplyError):
        teacher._parse('{"verdict": "great", "score": 1}', [])
    with pytest.raises(ValueError):
        OpenAICompatibleTeacher("http://127.0.0.1:9/v1", "m", response_format="xml")


def test_adapter_raises_teacher_error(server):
    url, _ = server
    with pytest.raises(TeacherError):
        OpenAICompatibleTeacher(url, "broken").label(load_corpus()[:1])


def test_label_command_writes_labels_for_distillation(server, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ml.cli import ml_group
    from ml.teacher.labels import read_labels

    url, seen = server
    monkeypatch.setenv("MARGINALIA_TEACHER_API_KEY", "sk-cli-secret")
    out = tmp_path / "labels.jsonl"
    args = ["label", "--data", "corpus", "--endpoint", url, "--teacher-model", "cli-teacher"]
    result = CliRunner().invoke(ml_group, [*args, "--limit", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["labelled"] == 3
    assert len(read_labels(out)) == 3
    assert "sk-cli-secret" not in result.output
    asked = [b for b in seen if b["model"] == "cli-teacher"]
    assert len(asked) == 3
