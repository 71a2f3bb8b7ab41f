"""Model-agnostic-enough trainer for the student: supervised + distillation losses.

    L = w_v CE(verdict) + w_s [CE(score bins, two-hot) + MSE(score)] + w_c BCE(criteria)
      + w_conf BCE(confidence, verdict correct) + w_fb CE(feedback candidates, soft target)
      + sum_i lambda_i T^2 KL(teacher_i || student_i)                       (ml.losses)

Sequence-level distillation: when teacher generations exist, the feedback memory stores the
teacher's feedback and the generator's target mixes gold and teacher feedback (``seq_kd_alpha``).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from ml.data.examples import Example, classmates
from ml.features import (
    CLASS_PROBE_DIM,
    CRIT_EXTRA_DIM,
    KNN_DIM,
    LEARNER_DIM,
    LEX_DIM,
    QI_DIM,
    Featurizer,
    FeedbackMemory,
    MediaEncoder,
    feedback_masks,
    fit_class_probes,
)
from ml.feedback import language_of
from ml.losses import distillation_loss, soft_cross_entropy, two_hot
from ml.models.encoders import TextEncoder
from ml.models.ensemble import StudentEnsemble
from ml.models.student import StudentBatch, StudentConfig, StudentModel
from ml.probe import PROBE_DIM
from ml.teacher.labels import TeacherLabel

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0
    members: int = 1  # > 1: an ensemble of students with seeds seed, seed + 1, ...
    memory_dropout: float = 0.3  # share of rows trained as if the question were unseen
    peer_dropout: float = 0.3  # share of rows trained without classmates' answers
    criteria_from_score: bool = True  # weak criterion targets from full/zero scores
    feedback_tau: float = 0.05  # sharpness of the soft feedback target
    w_verdict: float = 1.0
    w_score: float = 1.0
    w_criteria: float = 0.5
    w_confidence: float = 0.2
    w_feedback: float = 0.5
    kd_lambdas: dict[str, float] = field(default_factory=lambda: {"verdict": 1.0, "score": 0.5})
    kd_temperature: float = 2.0
    seq_kd_alpha: float = 0.5  # weight of teacher feedback in the generator's target


@dataclass
class Prepared:
    featurizer: Featurizer
    memory: FeedbackMemory
    examples: list[Example]


def student_config_for(encoder: TextEncoder, image_dim: int, **overrides) -> StudentConfig:
    return StudentConfig(
        text_dim=encoder.dim,
        image_dim=image_dim,
        z_dim=LEARNER_DIM,
        memory_dim=KNN_DIM,
        probe_dim=PROBE_DIM,
        class_probe_dim=CLASS_PROBE_DIM,
        lex_dim=LEX_DIM,
        crit_extra_dim=CRIT_EXTRA_DIM,
        **({"qi_dim": QI_DIM, "hide_text_when_unseen": True} | overrides),
    )


def train_student(
    examples: list[Example],
    encoder: TextEncoder,
    cfg: TrainConfig,
    student_cfg: StudentConfig | None = None,
    teacher: dict[str, TeacherLabel] | None = None,
    media: MediaEncoder | None = None,
) -> tuple[StudentModel | StudentEnsemble, Featurizer, dict]:
    """Train a student on ``examples`` (``cfg.members`` > 1: that many, as an ensemble, on the
    same prepared features); returns the model, its featurizer (with memory) and a history dict
    (losses per epoch, timings)."""
    torch.manual_seed(cfg.seed)
    teacher = teacher or {}
    t0 = time.perf_counter()
    fb_teacher = {k: v.feedback for k, v in teacher.items() if v.feedback}
    memory = FeedbackMemory.build(examples, encoder, fb_teacher)
    gold_memory_fb = encoder.encode([e.feedback for e in examples])  # [N, D]
    image_dim = student_cfg.image_dim if student_cfg else (media.dim if media else 1280)
    featurizer = Featurizer(encoder, memory, media, image_dim)
    peers = classmates(examples, seed=cfg.seed, dropout=cfg.peer_dropout)
    requests = [
        replace(e.to_request(), peer_answers=p) for e, p in zip(examples, peers, strict=True)
    ]
    ids: list[str | None] = [e.id for e in examples]
    feats = featurizer(requests, exclude_ids=ids)
    featurizer.class_probes, feats.batch.class_probe = fit_class_probes(
        feats.batch.qi,
        torch.tensor([e.verdict.index for e in examples]),
        torch.tensor([e.score_fraction for e in examples], dtype=torch.float),
        [language_of(e.language) for e in examples],
        [e.question_id for e in examples],
    )
    same, allowed = feedback_masks(memory, requests, exclude_ids=ids)  # [N, N]
    student_cfg = student_cfg or student_config_for(encoder, featurizer.image_dim)
    if student_cfg.trained_media is None:
        # Record which media streams had data, so inference masks the ones never trained.
        b = feats.batch
        seen = {"image": bool(b.image_mask.any()), "video": bool(b.video_mask.any())}
        student_cfg = replace(student_cfg, trained_media=[m for m, ok in seen.items() if ok])
    N = len(examples)
    # Targets.
    verdict_t = torch.tensor([e.verdict.index for e in examples])  # [N]
    score_t = torch.tensor([e.score_fraction for e in examples], dtype=torch.float)  # [N]
    C = feats.batch.crit_mask.shape[1]
    crit_t = torch.zeros(N, C)
    crit_tmask = torch.zeros(N, C, dtype=torch.bool)
    for i, e in enumerate(examples):
        for j, c in enumerate(e.rubric):
            if c.id in e.criteria_met:
                crit_t[i, j] = float(e.criteria_met[c.id])
                crit_tmask[i, j] = True
            elif cfg.criteria_from_score and e.score_fraction in (0.0, 1.0):
                # No per-criterion gold (SAF): a full score means every criterion was met, a
                # zero score none - so coverage agrees with the verdict.
                crit_t[i, j] = e.score_fraction
                crit_tmask[i, j] = True
    fb_sim_gold = gold_memory_fb @ memory.feedback_emb.T  # [N, N] gold feedback vs candidates
    fb_sim = fb_sim_gold
    if fb_teacher:
        teach_emb = memory.feedback_emb  # teacher generations where present
        fb_sim = (1 - cfg.seq_kd_alpha) * fb_sim_gold + cfg.seq_kd_alpha * (teach_emb @ teach_emb.T)
    has_teacher = torch.tensor([e.id in teacher for e in examples])
    t_verdict = torch.tensor(
        [teacher[e.id].verdict_probs if e.id in teacher else [1 / 3] * 3 for e in examples]
    )  # [N, 3]
    t_score = two_hot(
        torch.tensor([teacher[e.id].score if e.id in teacher else 0.0 for e in examples]),
        student_cfg.n_score_bins,
    )  # [N, K]
    targets = _Targets(
        verdict_t, score_t, crit_t, crit_tmask, fb_sim, same, allowed, has_teacher, t_verdict,
        t_score,
    )  # fmt: skip
    prep_s = time.perf_counter() - t0
    log.info("prepared %d examples in %.1fs", N, prep_s)
    history: dict = {"prepare_s": round(prep_s, 2), "member_loss": []}
    members = []
    for k in range(cfg.members):
        # Members differ only in their seed: initialisation, order and dropout draws.
        member, losses = _fit_member(student_cfg, feats.batch, memory, targets, cfg, cfg.seed + k)
        members.append(member)
        history["member_loss"].append(losses)
    history["loss"] = history["member_loss"][0]
    model = members[0] if len(members) == 1 else StudentEnsemble(members).eval()
    history["train_s"] = round(time.perf_counter() - t0, 2)
    history["config"] = asdict(cfg)
    return model, featurizer, history


def _feedback_loss(
    model: StudentModel,
    h: Tensor,
    b,
    memory: FeedbackMemory,
    same: Tensor,
    allowed: Tensor,
    fb_sim: Tensor,
    cfg: TrainConfig,
) -> Tensor:
    keys = model.candidates(memory.feedback_emb, memory.answers, memory.verdicts, memory.scores)
    logits = model.feedback_logits(h, b.z, b.a, keys, memory.answers, same, allowed)  # [B, N]
    target = (fb_sim / cfg.feedback_tau).masked_fill(~allowed, float("-inf")).softmax(-1)
    target = torch.nan_to_num(target)  # rows with no allowed candidate
    rows = allowed.any(-1)
    logits = logits.masked_fill(~allowed, -1e4)
    return soft_cross_entropy(logits, target, rows)


@dataclass
class _Targets:
    verdict: Tensor  # [N]
    score: Tensor  # [N]
    crit: Tensor  # [N, C]
    crit_mask: Tensor  # [N, C]
    fb_sim: Tensor  # [N, N] target similarity of each example's feedback to the candidates
    same: Tensor  # [N, N] candidate is from the same question
    allowed: Tensor  # [N, N] candidate may be used
    has_teacher: Tensor  # [N]
    t_verdict: Tensor  # [N, 3]
    t_score: Tensor  # [N, K]


def _fit_member(
    student_cfg: StudentConfig,
    batch: StudentBatch,
    memory: FeedbackMemory,
    t: _Targets,
    cfg: TrainConfig,
    seed: int,
) -> tuple[StudentModel, list[float]]:
    """One student trained on the prepared features; returns it and its loss per epoch."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = StudentModel(student_cfg)
    N = len(batch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((N + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=max(1, steps))
    losses: list[float] = []
    order = list(range(N))
    model.train()
    for _epoch in range(cfg.epochs):
        rng.shuffle(order)
        total = 0.0
        for s in range(0, N, cfg.batch_size):
            idx = torch.tensor(order[s : s + cfg.batch_size])
            b = batch.index(idx)
            # Memory dropout: pretend the question was never seen for some rows.
            drop = torch.rand(len(idx)) < cfg.memory_dropout
            b.memory = b.memory * (~drop)[:, None]
            b.memory_mask = b.memory_mask & ~drop
            out = model(b)
            loss = cfg.w_verdict * F.cross_entropy(out.verdict_logits, t.verdict[idx])
            loss = loss + cfg.w_score * (
                soft_cross_entropy(
                    out.score_logits, two_hot(t.score[idx], student_cfg.n_score_bins)
                )
                + F.mse_loss(out.score, t.score[idx])
            )
            cm = t.crit_mask[idx]
            if cm.any():
                bce = F.binary_cross_entropy_with_logits(
                    out.crit_logits, t.crit[idx], reduction="none"
                )
                loss = loss + cfg.w_criteria * (bce * cm).sum() / cm.sum()
            correct = (out.verdict_logits.argmax(-1) == t.verdict[idx]).float()
            loss = loss + cfg.w_confidence * F.binary_cross_entropy_with_logits(
                out.confidence_logit, correct
            )
            loss = loss + cfg.w_feedback * _feedback_loss(
                model,
                out.h,
                b,
                memory,
                t.same[idx] & ~drop[:, None],
                t.allowed[idx],
                t.fb_sim[idx],
                cfg,
            )
            if t.has_teacher[idx].any():
                loss = loss + distillation_loss(
                    {"verdict": out.verdict_logits, "score": out.score_logits},
                    {"verdict": t.t_verdict[idx], "score": t.t_score[idx]},
                    cfg.kd_lambdas,
                    cfg.kd_temperature,
                    teacher_is_probs=True,
                    masks={"verdict": t.has_teacher[idx], "score": t.has_teacher[idx]},
                )
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.detach().item() * len(idx)
        losses.append(round(total / N, 4))
        log.info("seed %d epoch %d loss %.4f", seed, _epoch + 1, total / N)
    return model.eval(), losses
