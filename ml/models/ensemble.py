"""An ensemble of students trained on the same features with different seeds (format 7).

Students trained on a few thousand answers vary with their seed by several accuracy points on
new questions; averaging the members' probabilities removes most of that variance. The members
share everything up to the fusion (the frozen encoder, the featurizer, the memory), so a member
costs only its fusion pass and its feedback scoring, a small part of a request's time.

It answers like one ``StudentModel``: the verdict, score-bin, confidence and criterion outputs
are the log / logit of the members' mean probabilities, and the feedback generator's
distribution over stored feedback is the members' mean distribution. ``h`` and the retrieval
keys are the members' concatenated, which ``feedback_logits`` splits again.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

from ml.models.student import StudentBatch, StudentConfig, StudentModel, StudentOutput

EPS = 1e-6


def member_file(k: int) -> str:
    """Member 0 is ``student.pt``, as in a single-student model directory."""
    return "student.pt" if k == 0 else f"student_{k}.pt"


def _logit(p: Tensor) -> Tensor:
    p = p.clamp(EPS, 1 - EPS)
    return p.log() - (-p).log1p()


class StudentEnsemble(nn.Module):
    def __init__(self, members: list[StudentModel]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        if any(m.cfg != members[0].cfg for m in members):
            raise ValueError("ensemble members must share one StudentConfig")
        self.members = nn.ModuleList(members)
        self.cfg: StudentConfig = members[0].cfg

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, b: StudentBatch) -> StudentOutput:
        outs = [m(b) for m in self.members]
        verdict_p = torch.stack([o.verdict_logits.softmax(-1) for o in outs]).mean(0)
        bins_p = torch.stack([o.score_logits.softmax(-1) for o in outs]).mean(0)
        conf_p = torch.stack([o.confidence_logit.sigmoid() for o in outs]).mean(0)
        crit_p = torch.stack([o.crit_logits.sigmoid() for o in outs]).mean(0)
        return StudentOutput(
            h=torch.cat([o.h for o in outs], -1),  # [B, K*d]
            verdict_logits=verdict_p.clamp_min(EPS).log(),
            score_logits=bins_p.clamp_min(EPS).log(),
            score=torch.stack([o.score for o in outs]).mean(0),
            confidence_logit=_logit(conf_p),
            # Rubric slots that do not exist stay at the members' masked value.
            crit_logits=_logit(crit_p).masked_fill(~b.crit_mask, -1e4),
        )

    def candidates(self, fb: Tensor, ans: Tensor, verdict: Tensor, score: Tensor) -> Tensor:
        """Each member's retrieval keys, concatenated: [N, K*R]."""
        return torch.cat([m.candidates(fb, ans, verdict, score) for m in self.members], -1)

    def feedback_logits(
        self,
        h: Tensor,  # [B, K*d]
        z: Tensor,
        a: Tensor,
        keys: Tensor,  # [N, K*R]
        cand_answers: Tensor,
        same_question: Tensor,
        allowed: Tensor,
    ) -> Tensor:
        """log of the members' mean distribution over stored feedback: [B, N]."""
        hs = h.chunk(len(self), -1)
        ks = keys.chunk(len(self), -1)
        logp = torch.stack(
            [
                m.feedback_logits(hk, z, a, kk, cand_answers, same_question, allowed).log_softmax(
                    -1
                )
                for m, hk, kk in zip(self.members, hs, ks, strict=True)
            ]
        )  # [K, B, N]
        out = logp.logsumexp(0) - math.log(len(self))
        # Rows with nothing allowed are all -inf in every member (NaN after log_softmax).
        return torch.nan_to_num(out, nan=float("-inf")).masked_fill(~allowed, float("-inf"))

    def save(self, directory: Path) -> None:
        self.members[0].save(directory)
        for k, m in enumerate(self.members[1:], start=1):
            torch.save(m.state_dict(), Path(directory) / member_file(k))


def load_student(
    directory: Path, device: str | torch.device = "cpu"
) -> StudentModel | StudentEnsemble:
    """The directory's student: one model, or an ensemble when it holds more member files."""
    directory = Path(directory)
    cfg = StudentConfig.load(directory / "student_config.json")
    members = []
    k = 0
    while (directory / member_file(k)).is_file():
        model = StudentModel(cfg)
        path = directory / member_file(k)
        model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
        members.append(model.to(device).eval())
        k += 1
    if not members:
        raise FileNotFoundError(f"{directory}: no student.pt")
    return members[0] if len(members) == 1 else StudentEnsemble(members).to(device).eval()
