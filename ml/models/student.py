"""Multimodal student grader: modality-token fusion, grading heads and a feedback generator.

References: modality tokens with key-padding masks as in Perceiver/ViLT-style fusion; the score
head predicts a distribution over bins (two-hot targets, as in MuZero's value head) so that it can
be distilled with a KL term; the feedback generator is retrieval-conditioned (RETRO/kNN-LM idea:
score stored teacher feedback with a query built from the fused state h and the learner features
z) followed by ``ml.feedback.compose`` which personalises the text with z.

Inputs are pre-computed features (``ml.features.Featurizer`` turns requests into them):

    q, r, a        [B, D_t]     question / reference / answer text embeddings (L2-normalised)
    text_mask      [B]          answer text present
    image          [B, D_i]     pooled image features (mean over a submission's images)
    image_mask     [B]
    video          [B, T, D_i]  per-frame image features
    video_mask     [B, T]
    z              [B, D_z]     learner features (``ml.features.LEARNER_DIM``)
    memory         [B, D_m]     evidence from graded answers to the same question: kNN statistics
                                (the MEMORY token), then a per-question linear probe's verdict
                                probabilities and score (format 4, ``ml.probe``), which reach the
                                verdict/score logits through a residual
    memory_mask    [B]
    lex            [B, D_l]     lexical overlap answer/reference (helps where the encoder has [UNK])
    crit           [B, C, D_t]  rubric criterion embeddings
    crit_extra     [B, C, D_c]  per-criterion learner mastery, evidence similarity, points share
    crit_mask      [B, C]
    qi             [B, D_q]     question-independent evidence (``ml.features.qi_vector``):
                                answer<->reference/criterion/question cosines, overlap, length,
                                negation; format 2 only (``StudentConfig.qi_dim`` > 0)
    crit_qi        [B, C, 2]    answer<->criterion cosine and lexical similarity
    class_probe    [B, 3 x L]   format 5: verdict log-probabilities of the class probe (a probe
                                over where the answer stands among its classmates' answers, per
                                language, ``ml.features.class_probe_vectors``), added to the
                                verdict logits of requests without same-question memory

Fusion: one token per modality/feature group, plus a [SUMMARY] token and one token per criterion,
through a small TransformerEncoder whose key-padding mask hides missing modalities:

    tokens [B, 11 + C (+1 QI), d]  ->  encoder  ->  h = out[:, 0]  [B, d]

Format 2 (``qi_dim`` > 0) adds the QI token, a residual MLP qi -> (verdict, score) logits and a
residual crit_qi -> criterion logit; with ``hide_text_when_unseen`` the Q/R/A text tokens and the
criterion embeddings are masked for requests without same-question memory (a new question), so
the heads grade such answers from evidence that transfers across questions.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

N_FIXED_TOKENS = 11  # SUMMARY Q R A A*R |A-R| IMAGE VIDEO LEARNER MEMORY LEXICAL
CRITERION_TYPE = N_FIXED_TOKENS


@dataclass
class StudentConfig:
    text_dim: int = 384  # all-MiniLM-L6-v2
    image_dim: int = 1280  # EfficientNet-Lite0 pooled features
    z_dim: int = 16
    memory_dim: int = 8
    # Format 4: the per-question probe's numbers that follow the kNN statistics in ``memory``
    # (0 = none). They go through a residual into the verdict/score logits, not the fusion.
    probe_dim: int = 0
    # Format 5: the class probe (a per-language probe over where an answer stands among its
    # classmates' answers) adds its verdict log-probabilities for new questions only.
    class_probe_dim: int = 0
    lex_dim: int = 4
    crit_extra_dim: int = 5
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    ffn_mult: int = 2
    dropout: float = 0.1
    n_score_bins: int = 11
    retrieval_dim: int = 128
    # Question-independent evidence (format 2). 0 = a format-1 model without that path.
    qi_dim: int = 0
    # Hide the question-specific text tokens (Q, R, A, A*R, |A-R|, criterion embeddings) when
    # the request has no graded answers to the same question in memory, i.e. for a new
    # question: grading then rests on the question-independent evidence, which transfers.
    hide_text_when_unseen: bool = False
    # Media streams the model saw in training ("image", "video"); None = not recorded (older
    # models: every stream is used). A stream it never saw has untrained projections, so its
    # token is masked and a photographed answer is graded from its OCR text alone.
    trained_media: list[str] | None = None

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> StudentConfig:
        return cls(**json.loads(Path(path).read_text()))


@dataclass
class StudentBatch:
    q: Tensor
    r: Tensor
    a: Tensor
    text_mask: Tensor
    image: Tensor
    image_mask: Tensor
    video: Tensor
    video_mask: Tensor
    z: Tensor
    memory: Tensor
    memory_mask: Tensor
    lex: Tensor
    crit: Tensor
    crit_extra: Tensor
    crit_mask: Tensor
    # Question-independent evidence (``ml.features.qi_vector``), absent for format-1 callers.
    qi: Tensor | None = None  # [B, D_qi]
    crit_qi: Tensor | None = None  # [B, C, 2] answer<->criterion cosine and lexical similarity
    # Format 5: the class probe's verdict log-probabilities (``ml.features.class_probe_vectors``).
    class_probe: Tensor | None = None  # [B, class_probe_dim]

    def to(self, device: torch.device | str) -> StudentBatch:
        return StudentBatch(
            **{k: None if v is None else v.to(device) for k, v in self.__dict__.items()}
        )

    def index(self, idx: Tensor | slice) -> StudentBatch:
        return StudentBatch(**{k: None if v is None else v[idx] for k, v in self.__dict__.items()})

    def __len__(self) -> int:
        return self.q.shape[0]


@dataclass
class StudentOutput:
    h: Tensor  # [B, d]        fused state
    verdict_logits: Tensor  # [B, 3]  order of ml.types.VERDICTS
    score_logits: Tensor  # [B, K]    over bins 0..1
    score: Tensor  # [B]              expected normalised score
    confidence_logit: Tensor  # [B]
    crit_logits: Tensor  # [B, C]     criterion covered?


class FeedbackCandidates(nn.Module):
    """Encodes stored feedback texts into retrieval keys. [N, ...] -> [N, retrieval_dim]."""

    def __init__(self, cfg: StudentConfig) -> None:
        super().__init__()
        # feedback emb, emb of the answer it was written for, its verdict one-hot, its score
        self.proj = nn.Sequential(
            nn.Linear(2 * cfg.text_dim + 4, cfg.d_model),
            nn.GELU(),
            nn.Linear(cfg.d_model, cfg.retrieval_dim),
        )

    def forward(self, fb: Tensor, ans: Tensor, verdict: Tensor, score: Tensor) -> Tensor:
        # fb, ans [N, D_t]; verdict [N] long; score [N]
        onehot = F.one_hot(verdict, 3).to(fb.dtype)  # [N, 3]
        return self.proj(torch.cat([fb, ans, onehot, score[:, None]], dim=-1))  # [N, R]


class StudentModel(nn.Module):
    def __init__(self, cfg: StudentConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.summary = nn.Parameter(torch.zeros(1, 1, d))
        self.type_emb = nn.Embedding(N_FIXED_TOKENS + 1, d)
        self.text_proj = nn.Linear(cfg.text_dim, d)  # shared by Q, R, A, A*R, |A-R|
        self.image_proj = nn.Sequential(nn.LayerNorm(cfg.image_dim), nn.Linear(cfg.image_dim, d))
        self.frame_query = nn.Parameter(torch.zeros(d))  # temporal attention pooling of frames
        self.z_proj = nn.Sequential(nn.Linear(cfg.z_dim, d), nn.GELU(), nn.Linear(d, d))
        self.mem_proj = nn.Sequential(nn.Linear(cfg.memory_dim, d), nn.GELU(), nn.Linear(d, d))
        self.lex_proj = nn.Sequential(nn.Linear(cfg.lex_dim, d), nn.GELU(), nn.Linear(d, d))
        self.crit_proj = nn.Linear(cfg.text_dim + cfg.crit_extra_dim, d)
        layer = nn.TransformerEncoderLayer(
            d, cfg.n_heads, cfg.ffn_mult * d, cfg.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.verdict_head = nn.Linear(d, 3)
        self.score_head = nn.Linear(d, cfg.n_score_bins)
        self.confidence_head = nn.Linear(d, 1)
        self.crit_head = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 1))
        # Feedback generator g(h, z): query over stored feedback keys.
        self.candidates = FeedbackCandidates(cfg)
        self.query = nn.Sequential(
            nn.Linear(d + cfg.z_dim + cfg.text_dim, d), nn.GELU(), nn.Linear(d, cfg.retrieval_dim)
        )
        self.same_question_bias = nn.Parameter(torch.tensor(4.0))
        self.answer_sim_weight = nn.Parameter(torch.tensor(4.0))
        self.register_buffer("bins", torch.linspace(0, 1, cfg.n_score_bins), persistent=False)
        if cfg.qi_dim:
            # QI token in the fusion + a residual path straight into the verdict/score heads
            # and a per-criterion residual from answer<->criterion similarity.
            self.qi_type = nn.Parameter(torch.zeros(d))
            self.qi_proj = nn.Sequential(
                nn.LayerNorm(cfg.qi_dim), nn.Linear(cfg.qi_dim, d), nn.GELU(), nn.Linear(d, d)
            )
            self.qi_head = nn.Sequential(
                nn.Linear(cfg.qi_dim + cfg.z_dim, d),
                nn.GELU(),
                nn.Linear(d, d),
                nn.GELU(),
                nn.Linear(d, 3 + cfg.n_score_bins),
            )
            self.crit_residual = nn.Linear(2, 1)
        if cfg.probe_dim:
            self.probe_head = nn.Linear(cfg.probe_dim, 3 + cfg.n_score_bins)
            nn.init.zeros_(self.probe_head.weight)
            nn.init.zeros_(self.probe_head.bias)

    # ------------------------------------------------------------------ fusion and heads
    def forward(self, b: StudentBatch) -> StudentOutput:
        B = b.q.shape[0]
        ones = torch.ones(B, dtype=torch.bool, device=b.q.device)
        # The MEMORY token reads the kNN statistics; the probe's numbers follow them.
        memory = b.memory[:, : self.cfg.memory_dim]
        # Video: attention-pool the frames with a learned query (audio is not used).
        frames = self.image_proj(b.video)  # [B, T, d]
        att = (frames @ self.frame_query) / math.sqrt(self.cfg.d_model)  # [B, T]
        att = att.masked_fill(~b.video_mask, -1e4).softmax(-1)  # [B, T]
        video_tok = (att[..., None] * frames).sum(1)  # [B, d]
        video_present = b.video_mask.any(-1)  # [B]
        image_present = b.image_mask
        if self.cfg.trained_media is not None:
            if "image" not in self.cfg.trained_media:
                image_present = torch.zeros_like(image_present)
            if "video" not in self.cfg.trained_media:
                video_present = torch.zeros_like(video_present)
        fixed = torch.stack(
            [
                self.summary.expand(B, 1, -1)[:, 0],
                self.text_proj(b.q),
                self.text_proj(b.r),
                self.text_proj(b.a),
                self.text_proj(b.a * b.r),
                self.text_proj((b.a - b.r).abs()),
                self.image_proj(b.image),
                video_tok,
                self.z_proj(b.z),
                self.mem_proj(memory),
                self.lex_proj(b.lex),
            ],
            dim=1,
        )  # [B, 11, d]
        fixed = fixed + self.type_emb.weight[:N_FIXED_TOKENS]
        use_qi = self.cfg.qi_dim > 0 and b.qi is not None
        qr_present, text_present, crit_emb = ones, b.text_mask, b.crit
        if use_qi and self.cfg.hide_text_when_unseen:
            seen = b.memory_mask  # [B] graded answers to this question exist
            qr_present, text_present = seen, b.text_mask & seen
            crit_emb = crit_emb * seen[:, None, None].to(crit_emb.dtype)
        crit = self.crit_proj(torch.cat([crit_emb, b.crit_extra], -1))  # [B, C, d]
        crit = crit + self.type_emb.weight[CRITERION_TYPE]
        parts = [fixed, crit]
        if use_qi:
            # Older models were trained on a prefix of today's evidence vector.
            qi = b.qi[:, : self.cfg.qi_dim]
            parts.append((self.qi_proj(qi) + self.qi_type)[:, None])  # [B, 1, d]
        tokens = torch.cat(parts, dim=1)  # [B, 11 + C (+1), d]
        present = torch.cat(
            [
                torch.stack(
                    [
                        ones,
                        qr_present,
                        qr_present,
                        text_present,
                        text_present,
                        text_present,
                        image_present,
                        video_present,
                        ones,
                        b.memory_mask,
                        b.text_mask,
                    ],
                    dim=1,
                ),
                b.crit_mask,
            ]
            + ([b.text_mask[:, None]] if use_qi else []),
            dim=1,
        )  # [B, 11 + C (+1)]
        out = self.norm(self.encoder(tokens, src_key_padding_mask=~present))  # [B, 11 + C, d]
        h = out[:, 0]  # [B, d]
        C = b.crit.shape[1]
        crit_h = out[:, N_FIXED_TOKENS : N_FIXED_TOKENS + C]  # [B, C, d]
        crit_in = torch.cat([crit_h, h[:, None].expand_as(crit_h)], -1)  # [B, C, 2d]
        crit_logits = self.crit_head(crit_in).squeeze(-1)
        score_logits = self.score_head(h)  # [B, K]
        verdict_logits = self.verdict_head(h)  # [B, 3]
        if use_qi:
            res = self.qi_head(torch.cat([qi, b.z], -1))  # [B, 3 + K]
            verdict_logits = verdict_logits + res[:, :3]
            score_logits = score_logits + res[:, 3:]
            if b.crit_qi is not None:
                crit_logits = crit_logits + self.crit_residual(b.crit_qi).squeeze(-1)
        if self.cfg.probe_dim:
            m = self.cfg.memory_dim
            probe = b.memory[:, m : m + self.cfg.probe_dim]
            # Log-probabilities: a learned product of experts with the probe's verdict.
            probe = torch.cat([probe[:, :3].clamp_min(1e-4).log(), probe[:, 3:]], -1)
            res = self.probe_head(probe) * b.memory_mask[:, None].to(probe.dtype)
            verdict_logits = verdict_logits + res[:, :3]
            score_logits = score_logits + res[:, 3:]
        if self.cfg.class_probe_dim and b.class_probe is not None:
            cp = b.class_probe
            # A fixed offset, not a learned weight: on its training questions the rest of the
            # model fits better than any question-free evidence and would learn to ignore it;
            # with the offset it learns to correct the probe instead (as boosting does). New
            # questions only (no graded answers in memory); rows without a probe hold zeros.
            log_p = cp.view(cp.shape[0], -1, 3).sum(1)  # the request's language slot
            verdict_logits = verdict_logits + log_p * (~b.memory_mask)[:, None].to(cp.dtype)
        crit_logits = crit_logits.masked_fill(~b.crit_mask, -1e4)
        return StudentOutput(
            h=h,
            verdict_logits=verdict_logits,
            score_logits=score_logits,
            score=score_logits.softmax(-1) @ self.bins,
            confidence_logit=self.confidence_head(h).squeeze(-1),
            crit_logits=crit_logits,
        )

    # ------------------------------------------------------------------ feedback generator
    def feedback_logits(
        self,
        h: Tensor,  # [B, d]
        z: Tensor,  # [B, D_z]
        a: Tensor,  # [B, D_t]
        keys: Tensor,  # [N, R]   from self.candidates(...)
        cand_answers: Tensor,  # [N, D_t]
        same_question: Tensor,  # [B, N] bool
        allowed: Tensor,  # [B, N] bool (same language, not the example itself)
    ) -> Tensor:
        """Scores of stored feedback texts for each request: [B, N] (-inf where not allowed)."""
        query = self.query(torch.cat([h, z, a], -1))  # [B, R]
        logits = query @ keys.T / math.sqrt(self.cfg.retrieval_dim)  # [B, N]
        sim = a @ cand_answers.T  # [B, N] cosine (embeddings are L2-normalised)
        same = same_question.to(logits.dtype)
        logits = logits + same * (self.same_question_bias + self.answer_sim_weight * sim)
        return logits.masked_fill(~allowed, float("-inf"))

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.cfg.save(directory / "student_config.json")
        torch.save(self.state_dict(), directory / "student.pt")
