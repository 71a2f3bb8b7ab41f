"""Teacher adapter for any OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server,
a hosted API). Sends only the question, reference, rubric and answer - never names or e-mails -
and asks for JSON ``{"verdict": ..., "score": 0..1, "feedback": ...}``.

Soft labels: when the endpoint returns ``logprobs`` for the verdict token they could be used;
most servers do not, so the verdict distribution is a smoothed one-hot (``label_smoothing``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import requests

from ml.data.examples import Example
from ml.errors import TeacherError
from ml.teacher.labels import TeacherLabel
from ml.types import VERDICTS, FeedbackRequest, Verdict

SYSTEM_PROMPT = (
    "You grade short answers. Reply with JSON only: "
    '{"verdict": "correct" | "partially correct" | "incorrect", "score": number from 0 to 1, '
    '"feedback": "feedback for the student, in the language of the question"}'
)


def build_prompt(req: FeedbackRequest) -> str:
    """The user message. Contains no learner identity, only the task and the answer."""
    rubric = "\n".join(f"- {c.description} ({c.points:g} points)" for c in req.rubric)
    return (
        f"Question: {req.question}\nReference answer: {req.reference_answer}\n"
        + (f"Rubric:\n{rubric}\n" if rubric else "")
        + f"Student answer: {req.answer_text}"
    )


@dataclass
class OpenAICompatibleTeacher:
    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str
    api_key: str | None = None
    timeout: float = 60.0
    label_smoothing: float = 0.1

    def grade(self, req: FeedbackRequest) -> TeacherLabel:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = {
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": build_prompt(req)},
            ],
        }
        try:
            resp = requests.post(
                f"{self.base_url.rstrip('/')}/chat/completions",
                json=body,
                headers=headers,
                timeout=self.timeout,
            )
            resp.raise_for_status()
            content = resp.json()["choices"][0]["message"]["content"]
        except (requests.RequestException, KeyError, IndexError, ValueError) as exc:
            raise TeacherError(f"teacher endpoint failed: {exc}") from exc
        return self._parse(content)

    def label(self, examples: list[Example]) -> list[TeacherLabel]:
        out = []
        for ex in examples:
            lab = self.grade(ex.to_request(with_learner=False))
            out.append(TeacherLabel(ex.id, lab.verdict_probs, lab.score, lab.feedback, lab.teacher))
        return out

    def _parse(self, content: str) -> TeacherLabel:
        match = re.search(r"\{.*\}", content, re.S)
        if not match:
            raise TeacherError(f"teacher reply is not JSON: {content[:200]!r}")
        try:
            data = json.loads(match.group(0))
            verdict = Verdict.parse(str(data["verdict"]))
            score = min(1.0, max(0.0, float(data["score"])))
        except (ValueError, KeyError) as exc:
            raise TeacherError(f"bad teacher reply: {exc}") from exc
        eps = self.label_smoothing
        probs = tuple((1 - eps) + eps / 3 if v is verdict else eps / 3 for v in VERDICTS)
        return TeacherLabel("", probs, score, str(data.get("feedback", "")), f"openai:{self.model}")
