"""Teacher adapter for any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, the
llama.cpp servers, a hosted API). Sends only the question, reference, rubric and answer - never
names or e-mails - and asks for JSON ``{"verdict": ..., "score": 0..1, "feedback": ...}``.

Structured output: servers spell "answer in this JSON schema" two ways, so ``response_format``
is a setting: ``json_schema`` (OpenAI, vLLM, Ollama, llama.cpp's own server), ``json_object``
with a ``schema`` (llama-cpp-python, Anyscale-style) or ``none`` (prompt only). A server that
rejects the optional fields (HTTP 400/422) is asked once more without them, and not again.
Three made-up worked examples precede the task as earlier chat turns (``few_shot``): small
self-hosted models follow the JSON form from examples far more reliably than from instructions.

Soft labels for distillation: with ``logprobs`` on, the verdict distribution is read from the
top log-probabilities at the first token of the verdict value (tokens that start exactly one
verdict word, renormalised), i.e. the teacher's own belief; servers that return no log-probs get
a smoothed one-hot (``label_smoothing``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import requests

from ml.data.examples import Example
from ml.errors import TeacherError, TeacherReplyError
from ml.teacher.labels import TeacherLabel, write_labels
from ml.types import VERDICTS, FeedbackRequest, Verdict

SYSTEM_PROMPT = (
    "You grade short answers. Reply with JSON only: "
    '{"verdict": "correct" | "partially correct" | "incorrect", "score": number from 0 to 1, '
    '"feedback": "feedback for the student, in the language of the question"}'
)
RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": [v.value for v in VERDICTS]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "feedback": {"type": "string"},
    },
    "required": ["verdict", "score", "feedback"],
}
ResponseFormat = Literal["json_schema", "json_object", "none"]
RESPONSE_FORMATS: tuple[str, ...] = ("json_schema", "json_object", "none")


# What a prompt can carry, by the names of the admin's privacy settings
# (``lti_tool.services.settings_store.SHAREABLE``); learner identity is never among them.
PROMPT_PARTS = ("prompt", "reference_answer", "rubric", "answer_text")


def build_prompt(req: FeedbackRequest, shares: frozenset[str] = frozenset(PROMPT_PARTS)) -> str:
    """The user message: the task and the answer, limited to the parts in ``shares``."""
    rubric = "\n".join(f"- {c.description} ({c.points:g} points)" for c in req.rubric)
    lines = [
        f"Question: {req.question}" if "prompt" in shares else "",
        f"Reference answer: {req.reference_answer}" if "reference_answer" in shares else "",
        f"Rubric:\n{rubric}" if rubric and "rubric" in shares else "",
        f"Student answer: {req.answer_text}",
    ]
    return "\n".join(line for line in lines if line)


# Made-up tasks (no student data) that show the reply form, sent before the real task:
# (question, reference answer, answer) -> reply.
FEW_SHOT: tuple[tuple[tuple[str, str, str], dict[str, Any]], ...] = (
    (
        ("At what temperature does water boil at sea level?", "At 100 degrees Celsius.",
         "It boils at 100 °C."),
        {"verdict": "correct", "score": 1.0, "feedback": "Right: 100 °C at sea level."},
    ),
    (
        ("What does a CPU do?", "It executes the instructions of programs.", "It stores files."),
        {"verdict": "incorrect", "score": 0.0,
         "feedback": "Files are kept on disks; the CPU executes program instructions."},
    ),
    (
        ("Which two gases do plants exchange in photosynthesis?",
         "They take in carbon dioxide and release oxygen.", "Oxygen."),
        {"verdict": "partially correct", "score": 0.5,
         "feedback": "Oxygen is released; you left out the carbon dioxide plants take in."},
    ),
)  # fmt: skip


def response_format_field(kind: ResponseFormat) -> dict[str, Any] | None:
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "grade", "schema": RESPONSE_SCHEMA}}
    if kind == "json_object":
        return {"type": "json_object", "schema": RESPONSE_SCHEMA}
    return None


def verdict_probs_from_logprobs(
    content: str, token_logprobs: list[dict[str, Any]]
) -> tuple[float, float, float] | None:
    """p(correct, partially correct, incorrect) at the first token of the verdict value.

    ``token_logprobs`` is ``choices[0].logprobs.content``: one entry per generated token with
    ``token`` and ``top_logprobs``. Returns None when the position or the alternatives cannot be
    found (then the caller falls back to the parsed verdict)."""
    match = re.search(r'"verdict"\s*:\s*"', content)
    if not match or not token_logprobs:
        return None
    start, pos = match.end(), 0
    for entry in token_logprobs:
        token = entry.get("token", "")
        end = pos + len(token)
        if end > start:  # the token that carries the value's first character
            mass = [0.0, 0.0, 0.0]
            prefix = content[pos:start]  # part of the token before the value (e.g. a quote)
            for alt in entry.get("top_logprobs") or []:
                text = alt.get("token", "")
                if not text.startswith(prefix):
                    continue
                word = text[len(prefix) :].lower()
                hits = [i for i, v in enumerate(VERDICTS) if word and v.value.startswith(word)]
                if len(hits) == 1:
                    mass[hits[0]] += math.exp(float(alt["logprob"]))
            total = sum(mass)
            if total <= 0:
                return None
            return (mass[0] / total, mass[1] / total, mass[2] / total)
        pos = end
    return None


@dataclass
class OpenAICompatibleTeacher:
    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    label_smoothing: float = 0.1
    response_format: ResponseFormat = "json_schema"
    logprobs: bool = True
    top_logprobs: int = 10
    max_tokens: int = 256
    # Prompt parts the privacy settings allow to leave the institution (see PROMPT_PARTS).
    shares: frozenset[str] = frozenset(PROMPT_PARTS)
    few_shot: bool = True

    def __post_init__(self) -> None:
        if self.response_format not in RESPONSE_FORMATS:
            raise ValueError(f"response_format must be one of {RESPONSE_FORMATS}")
        if "answer_text" not in self.shares:
            raise TeacherError("the privacy settings do not allow sending answers to the teacher")

    def messages(self, req: FeedbackRequest) -> list[dict[str, str]]:
        out = [{"role": "system", "content": SYSTEM_PROMPT}]
        for (question, reference, answer), reply in FEW_SHOT if self.few_shot else ():
            shot = FeedbackRequest(question, reference_answer=reference, answer_text=answer)
            out.append({"role": "user", "content": build_prompt(shot, self.shares)})
            out.append({"role": "assistant", "content": json.dumps(reply, ensure_ascii=False)})
        out.append({"role": "user", "content": build_prompt(req, self.shares)})
        return out

    def grade(self, req: FeedbackRequest) -> TeacherLabel:
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "messages": self.messages(req),
        }
        if self.logprobs:
            body |= {"logprobs": True, "top_logprobs": self.top_logprobs}
        fmt = response_format_field(self.response_format)
        if fmt is not None:
            body["response_format"] = fmt
        choice = self._post(body)
        try:
            content = choice["message"]["content"] or ""
            token_logprobs = (choice.get("logprobs") or {}).get("content") or []
        except (KeyError, TypeError, AttributeError) as exc:
            raise TeacherError(f"teacher endpoint failed: unexpected reply {exc!r}") from exc
        return self._parse(content, token_logprobs)

    def label(self, examples: list[Example]) -> list[TeacherLabel]:
        out = []
        for ex in examples:
            lab = self.grade(ex.to_request(with_learner=False))
            out.append(TeacherLabel(ex.id, lab.verdict_probs, lab.score, lab.feedback, lab.teacher))
        return out

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url.rstrip('/')}/chat/completions"
        try:
            resp = requests.post(url, json=body, headers=headers, timeout=self.timeout)
            optional = {"response_format", "logprobs", "top_logprobs"} & body.keys()
            if resp.status_code in (400, 422) and optional:
                # Perhaps a field this server does not support: ask without the optional ones,
                # and keep asking that way only if that is what made the difference.
                body = {k: v for k, v in body.items() if k not in optional}
                retry = requests.post(url, json=body, headers=headers, timeout=self.timeout)
                if retry.ok:
                    self.response_format, self.logprobs = "none", False
                    resp = retry
            resp.raise_for_status()
            return resp.json()["choices"][0]
        except (requests.RequestException, KeyError, IndexError, TypeError, ValueError) as exc:
            # The exception text names the URL and status, never the key.
            raise TeacherError(f"teacher endpoint failed: {exc}") from exc

    def _parse(self, content: str, token_logprobs: list[dict[str, Any]]) -> TeacherLabel:
        match = re.search(r"\{.*\}", content, re.S)
        if not match:
            raise TeacherReplyError(f"teacher reply is not JSON: {content[:200]!r}")
        try:
            data = json.loads(match.group(0))
            verdict = Verdict.parse(str(data["verdict"]))
            score = min(1.0, max(0.0, float(data["score"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise TeacherReplyError(f"bad teacher reply: {exc}") from exc
        probs = verdict_probs_from_logprobs(content, token_logprobs)
        if probs is None:
            eps = self.label_smoothing
            probs = tuple((1 - eps) + eps / 3 if v is verdict else eps / 3 for v in VERDICTS)
        return TeacherLabel("", probs, score, str(data.get("feedback", "")), f"openai:{self.model}")


def label_to_file(
    teacher: OpenAICompatibleTeacher, examples: list[Example], out: Path
) -> dict[str, int]:
    """Label ``examples`` into JSONL at ``out`` (``ml.teacher.labels``).

    A reply that cannot be parsed skips that answer (counted); when the endpoint itself fails,
    the labels obtained so far are still written before the error propagates."""
    labels: list[TeacherLabel] = []
    unparseable = 0
    try:
        for ex in examples:
            try:
                labels += teacher.label([ex])
            except TeacherReplyError:
                unparseable += 1
    finally:
        write_labels(labels, out)
    return {"labelled": len(labels), "unparseable": unparseable}
