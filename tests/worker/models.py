"""Test-only grading models, selected in worker processes with MARGINALIA_MODEL=...

``RecordingModel`` grades like the baseline, and for each ``predict_batch`` call appends
``{"event": "start"|"done", "pid", "size", "ids"}`` lines to $MARGINALIA_TEST_MODEL_LOG and
sleeps $MARGINALIA_TEST_MODEL_SLEEP seconds in between (so a test can kill it mid-inference).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ml.baseline import BaselineFeedbackModel
from ml.types import FeedbackRequest, FeedbackResult


class RecordingModel:
    name = "test-recording-model"

    def __init__(self, log_path: str | None, sleep: float) -> None:
        self.log_path = log_path
        self.sleep = sleep
        self.calls: list[int] = []
        self._baseline = BaselineFeedbackModel()

    @classmethod
    def load(cls, model_dir: Any = None, device: Any = None) -> RecordingModel:
        return cls(
            os.environ.get("MARGINALIA_TEST_MODEL_LOG"),
            float(os.environ.get("MARGINALIA_TEST_MODEL_SLEEP", "0")),
        )

    def _log(self, event: str, requests: list[FeedbackRequest]) -> None:
        if not self.log_path:
            return
        line = {
            "event": event,
            "pid": os.getpid(),
            "size": len(requests),
            "answers": [r.answer_text for r in requests],
            "t": time.time(),
        }
        with open(self.log_path, "a") as fh:
            fh.write(json.dumps(line) + "\n")

    def predict_batch(self, requests: list[FeedbackRequest]) -> list[FeedbackResult]:
        self.calls.append(len(requests))
        self._log("start", requests)
        if self.sleep:
            time.sleep(self.sleep)
        results = self._baseline.predict_batch(requests)
        self._log("done", requests)
        return results


def read_log(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]
