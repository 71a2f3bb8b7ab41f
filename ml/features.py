"""Turns FeedbackRequests into StudentBatch tensors, and the memory of graded answers.

``FeedbackMemory`` keeps every graded training answer (its embedding, the feedback written for it,
verdict and score). It gives the student two things: evidence from the graded answers to the
same question (kNN statistics for the MEMORY token, and a per-question linear probe) and the
candidate feedback texts the generator scores.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from ml import text as textlib
from ml.data.examples import Example
from ml.feedback import language_of
from ml.models.encoders import TextEncoder
from ml.models.student import StudentBatch
from ml.probe import PROBE_DIM, ClassProbe, LinearProbe, fit_class_probe, fit_probe
from ml.types import MAX_PEER_ANSWERS, VERDICTS, FeedbackRequest, GradedAnswer

LEARNER_DIM = 15
KNN_DIM = 8
MEMORY_DIM = KNN_DIM + PROBE_DIM  # format 4 (the probe follows the kNN statistics)
PROBE_FOLDS = 10  # cross-fitting folds for the probes of training answers
REVIEW_PROBE_CACHE = 256  # activities whose review probes a featurizer keeps
LEX_DIM = 4
CRIT_EXTRA_DIM = 5
ALIGN_DIM = 7  # token-level alignment answer <-> reference, see ``alignment_vector``
QI_BASE_DIM = 20  # sentence-level evidence, see ``qi_vector``
PEER_DIM = 7  # where the answer stands among its classmates' answers, see ``peer_vector``
MIN_PEERS = 4  # fewer classmates' answers than this say nothing about the class
# Question-independent evidence: format 5 (format 3 had 27 without the peer part, format 2 20).
QI_DIM = QI_BASE_DIM + ALIGN_DIM + PEER_DIM
MAX_SENTENCES = 8
LANGS = ("en", "de", "zh")
PEER_FLAG = QI_BASE_DIM + ALIGN_DIM  # 1 where a request brought enough classmates' answers
# The class probe's inputs (format 5): cosine to the reference and to the question, length ratio
# (``qi_vector``) and where the answer stands among its classmates' answers (``peer_vector``).
CLASS_INPUT = [0, 4, 14, *range(PEER_FLAG + 1, QI_DIM)]
CLASS_PROBE_DIM = 3 * len(LANGS)  # its verdict log-probabilities, in the slot of the language


class MediaEncoder(Protocol):
    dim: int

    def image_features(self, paths: tuple[str, ...]) -> Tensor: ...  # [D_i] mean over images

    def video_frames(self, path: str) -> Tensor: ...  # [T, D_i]

    def ocr(self, paths: tuple[str, ...]) -> str: ...


@dataclass
class FeedbackMemory:
    ids: list[str] = field(default_factory=list)
    question_ids: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    verdicts: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))  # [N]
    scores: Tensor = field(default_factory=lambda: torch.zeros(0))  # [N] normalised
    answers: Tensor = field(default_factory=lambda: torch.zeros(0, 0))  # [N, D_t]
    feedback_emb: Tensor = field(default_factory=lambda: torch.zeros(0, 0))  # [N, D_t]
    # The probes' inputs (format 6): the answers' layer features [N, layer_dim]. None in the
    # memories of formats 4-5, whose probes read ``answers``.
    layers: Tensor | None = None
    # Built on demand: question id -> its rows; (question id, held-out fold or -1) -> probe.
    _by_question: dict[str, list[int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _probes: dict[tuple[str, int], LinearProbe | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def build(
        cls,
        examples: list[Example],
        encoder: TextEncoder,
        feedback_override: dict[str, str] | None = None,
        *,
        layers: bool = True,
    ) -> FeedbackMemory:
        """``feedback_override`` (id -> text) swaps in teacher generations (sequence-level KD);
        ``layers``: keep the answers' layer features for the probes (format 6)."""
        fb = [(feedback_override or {}).get(e.id, e.feedback) for e in examples]
        texts = [e.answer_text for e in examples]
        return cls(
            ids=[e.id for e in examples],
            question_ids=[e.question_id for e in examples],
            languages=[language_of(e.language) for e in examples],
            feedback=fb,
            verdicts=torch.tensor([e.verdict.index for e in examples], dtype=torch.long),
            scores=torch.tensor([e.score_fraction for e in examples], dtype=torch.float),
            answers=encoder.encode(texts),
            feedback_emb=encoder.encode(fb),
            layers=encoder.layer_features(texts) if layers else None,
        )

    def __len__(self) -> int:
        return len(self.ids)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        meta = {
            "ids": self.ids,
            "question_ids": self.question_ids,
            "languages": self.languages,
            "feedback": self.feedback,
        }
        (directory / "memory.json").write_text(json.dumps(meta, ensure_ascii=False))
        torch.save(
            {
                "verdicts": self.verdicts,
                "scores": self.scores,
                "answers": self.answers,
                "feedback_emb": self.feedback_emb,
                **({"layers": self.layers} if self.layers is not None else {}),
            },
            directory / "memory.pt",
        )

    @classmethod
    def load(cls, directory: Path) -> FeedbackMemory:
        directory = Path(directory)
        meta = json.loads((directory / "memory.json").read_text())
        tensors = torch.load(directory / "memory.pt", weights_only=True)
        return cls(**meta, **tensors)

    def rows(self, question_id: str | None, exclude: str | None = None) -> list[int]:
        """Indices of the graded answers to ``question_id`` (without the one ``exclude`` names)."""
        if question_id is None:
            return []
        if not self._by_question:
            for i, q in enumerate(self.question_ids):
                self._by_question.setdefault(q, []).append(i)
        return [i for i in self._by_question.get(question_id, []) if self.ids[i] != exclude]

    def stats(
        self,
        answer: Tensor,
        question_id: str | None,
        exclude: str | None,
        layers: Tensor | None = None,
    ) -> Tensor:
        """Evidence from same-question graded answers: [MEMORY_DIM] (zeros if none).
        ``layers``: the answer's layer features, which a format-6 memory's probes read."""
        sel = torch.tensor(self.rows(question_id, exclude), dtype=torch.long)
        knn = knn_stats(answer, self.answers[sel], self.verdicts[sel], self.scores[sel])
        probe_input = answer if self.layers is None else layers
        if probe_input is None:
            raise ValueError("this memory's probes read layer features: pass the answer's")
        return memory_vector(knn, self.probe(question_id, exclude), probe_input)

    @property
    def probe_inputs(self) -> Tensor:
        return self.answers if self.layers is None else self.layers

    def probe(self, question_id: str | None, exclude: str | None = None) -> LinearProbe | None:
        """The linear probe of ``question_id``'s graded answers. When ``exclude`` is one of
        them (a training answer), the probe is cross-fitted: fitted without the fold of
        ``exclude``, so it never saw that answer - as at inference."""
        rows = self.rows(question_id)
        fold = -1
        if exclude is not None:
            own = [j for j, r in enumerate(rows) if self.ids[r] == exclude]
            fold = own[0] % PROBE_FOLDS if own else -1
        key = (question_id or "", fold)
        if key not in self._probes:
            keep = [r for j, r in enumerate(rows) if fold < 0 or j % PROBE_FOLDS != fold]
            sel = torch.tensor(keep, dtype=torch.long)
            self._probes[key] = fit_probe(
                self.probe_inputs[sel],
                self.verdicts[sel],
                self.scores[sel],
                standardize=self.layers is not None,
            )
        return self._probes[key]


def memory_vector(knn: Tensor, probe: LinearProbe | None, answer: Tensor) -> Tensor:
    """[MEMORY_DIM] = kNN statistics + the probe's verdict probabilities and score (zeros
    without graded answers)."""
    probe_part = probe(answer) if probe is not None else torch.zeros(PROBE_DIM)
    return torch.cat([knn, probe_part])


def knn_stats(answer: Tensor, answers: Tensor, verdicts: Tensor, scores: Tensor) -> Tensor:
    """Statistics of one answer's nearest graded answers to the same question: [KNN_DIM].

    answer [D]; answers [n, D] (L2-normalised); verdicts [n] (index into VERDICTS); scores [n].
    Zeros when n == 0; slot 7 carries how many there are, so a model can weigh few of them."""
    out = torch.zeros(KNN_DIM)
    n = answers.shape[0]
    if n == 0:
        return out
    sims = answers @ answer  # [n]
    top = sims.topk(min(10, n))
    w = (top.values / 0.05).softmax(0)  # [k]
    verdict_dist = (w[:, None] * torch.nn.functional.one_hot(verdicts[top.indices], 3)).sum(0)
    out[0] = 1.0
    out[1] = (w * scores[top.indices]).sum()
    out[2:5] = verdict_dist
    out[5] = top.values[0]
    out[6] = top.values[:5].mean()
    out[7] = math.log1p(n) / 5
    return out


def _max_cos(x: Tensor, y: Tensor) -> Tensor:
    """x [n, D], y [m, D] -> [m]: per row of y, the best cosine with a row of x (0 if none)."""
    if x.shape[0] == 0 or y.shape[0] == 0:
        return torch.zeros(y.shape[0])
    return (x @ y.T).max(0).values


def qi_vector(
    answer: str,
    req: FeedbackRequest,
    a: Tensor,  # [D] answer embedding
    q: Tensor,  # [D] question embedding
    ref: Tensor,  # [D] reference embedding
    ans_sents: Tensor,  # [ns, D] answer sentence embeddings
    ref_sents: Tensor,  # [nr, D] reference sentence embeddings
    crit_cover: Tensor,  # [nc] max cosine answer (sentence) <-> criterion
    crit_lex: Tensor,  # [nc] lexical similarity answer <-> criterion
) -> Tensor:
    """Evidence that does not depend on which question is asked: how the answer relates to the
    reference answer, the rubric and the question (cosines, content-word overlap, character
    n-grams, length ratio, negation cues). [QI_DIM]; zeros for an empty answer."""
    out = torch.zeros(QI_BASE_DIM)
    if not answer.strip():
        return out
    ans_all = torch.cat([a[None], ans_sents])  # whole answer + its sentences
    ref_cover = _max_cos(ans_all, ref_sents) if ref_sents.shape[0] else _max_cos(ans_all, ref[None])
    if len(req.rubric):
        w = torch.tensor([c.points for c in req.rubric], dtype=torch.float)
        w = w / w.sum() if float(w.sum()) > 0 else torch.full_like(w, 1 / len(w))
        c_mean, c_min = float((w * crit_cover).sum()), float(crit_cover.min())
        c_lex = float((w * crit_lex).sum())
    else:  # no rubric: the reference's sentences act as the criteria
        c_mean, c_min = float(ref_cover.mean()), float(ref_cover.min())
        c_lex = textlib.similarity(answer, req.reference_answer)
    ref_text, question = req.reference_answer, req.question
    n_a = len(textlib.tokens(answer))
    n_r = len(textlib.tokens(ref_text))
    neg_a, neg_r = textlib.negations(answer), textlib.negations(ref_text)
    cos_ar, cos_aq = float(a @ ref), float(a @ q)
    vals = [
        cos_ar,
        float((ans_sents @ ref).max()) if ans_sents.shape[0] else cos_ar,
        float(ref_cover.mean()),
        float(ref_cover.min()),
        cos_aq,
        cos_ar - cos_aq,
        c_mean,
        c_min,
        c_lex,
        textlib.similarity(answer, ref_text),
        textlib.recall(answer, ref_text),  # share of the reference's content words covered
        textlib.recall(ref_text, answer),  # share of the answer's content words in the reference
        textlib.char_similarity(answer, ref_text, 4),
        textlib.recall(question, answer),  # answer words that merely restate the question
        max(-2.0, min(2.0, math.log((n_a + 1) / (n_r + 1)))) / 2,
        math.log1p(n_a) / 5,
        min(neg_a, 3) / 3,
        float((neg_a > 0) != (neg_r > 0)),
        float(q @ ref),  # how far the reference goes beyond the question (a per-question scale)
        math.log1p(n_r) / 5,
    ]
    out[: len(vals)] = torch.tensor(vals, dtype=torch.float)
    return out


def peer_vector(
    a: Tensor,  # [D] answer embedding
    n_words: int,  # content tokens of the answer
    peers: Tensor,  # [P, D] embeddings of classmates' answers to the same question
    peer_words: Tensor,  # [P] their content tokens
    ref: Tensor,  # [D] reference embedding
) -> Tensor:
    """Where the answer stands among its class's answers: z-score and rank of its cosine to the
    reference, z-score of its length, its cosine to the class centroid (answers that say what
    most say tend to be right) with z-score and rank. Absolute cosines mean different things for
    different questions and languages; positions within the class do not. [PEER_DIM]; zeros
    with fewer than MIN_PEERS classmates or for an empty answer."""
    out = torch.zeros(PEER_DIM)
    if peers.shape[0] < MIN_PEERS or n_words == 0:
        return out
    pool = torch.cat([a[None], peers])  # [P + 1, D], the answer first
    to_ref = pool @ ref
    length = torch.log1p(torch.cat([torch.tensor([float(n_words)]), peer_words.float()]))
    centroid = torch.nn.functional.normalize(pool.mean(0), dim=-1)
    to_centroid = pool @ centroid
    out[0] = 1.0
    out[1], out[2] = _z(to_ref), _rank(to_ref)
    out[3] = _z(length)
    out[4], out[5], out[6] = to_centroid[0], _z(to_centroid), _rank(to_centroid)
    return out


def _z(x: Tensor) -> float:
    """z-score of x[0] within x, clipped to +-3 and scaled to +-1."""
    return float(((x[0] - x.mean()) / (x.std() + 1e-6)).clamp(-3, 3) / 3)


def _rank(x: Tensor) -> float:
    """Share of x that x[0] exceeds (ties count half): 0 lowest .. 1 highest."""
    return float(((x < x[0]).float().sum() + 0.5 * ((x == x[0]).float().sum() - 1)) / (len(x) - 1))


def class_probe_vectors(probes: dict[str, ClassProbe], qi: Tensor, langs: list[str]) -> Tensor:
    """[B, CLASS_PROBE_DIM]: each request's class-probe verdict log-probabilities in its
    language's slot; zeros without classmates' answers or a probe for the language."""
    out = torch.zeros(qi.shape[0], CLASS_PROBE_DIM)
    for i, lang in enumerate(langs):
        if lang in probes and lang in LANGS and qi[i, PEER_FLAG] > 0:
            slot = 3 * LANGS.index(lang)
            out[i, slot : slot + 3] = probes[lang](qi[i, CLASS_INPUT])[:3].clamp_min(1e-4).log()
    return out


def fit_class_probes(
    qi: Tensor, verdicts: Tensor, scores: Tensor, langs: list[str], question_ids: list[str]
) -> tuple[dict[str, ClassProbe], Tensor]:
    """Class probes per language from training rows (those with classmates' answers), and each
    row's class-probe vector cross-fitted without its own question: the student learns to
    correct the probe as it errs on questions it never saw, which is where the probe is used."""
    has = qi[:, PEER_FLAG] > 0
    probes: dict[str, ClassProbe] = {}
    cross = torch.zeros(qi.shape[0], CLASS_PROBE_DIM)
    for lang in sorted(set(langs) & set(LANGS)):
        rows = [i for i, lg in enumerate(langs) if lg == lang and has[i]]
        if not rows:
            continue
        x, v, s = qi[rows][:, CLASS_INPUT], verdicts[rows], scores[rows]
        probe = fit_class_probe(x, v, s)
        if probe is None:
            continue
        probes[lang] = probe
        slot = 3 * LANGS.index(lang)
        qids = [question_ids[i] for i in rows]
        for q in sorted(set(qids)):
            own = torch.tensor([qq == q for qq in qids])
            held_out = fit_class_probe(x[~own], v[~own], s[~own])
            if held_out is None:
                continue
            idx = torch.tensor(rows)[own]
            cross[idx, slot : slot + 3] = held_out(x[own])[:, :3].clamp_min(1e-4).log()
    return probes, cross


def alignment_vector(answer: Tensor, reference: Tensor, question: Tensor) -> Tensor:
    """Token-level alignment (BERTScore-style greedy matching of contextual token vectors):
    precision/recall/F1 of the answer against the reference, the share of reference tokens the
    answer matches well (how much of the reference it covers), and the precision of the answer
    tokens that do not merely restate the question. [ALIGN_DIM]; zeros for an empty answer.

    answer [n_a, D], reference [n_r, D], question [n_q, D], all L2-normalised."""
    out = torch.zeros(ALIGN_DIM)
    if answer.shape[0] == 0 or reference.shape[0] == 0:
        return out
    sim = answer @ reference.T  # [n_a, n_r]
    p = sim.max(1).values  # best reference match per answer token
    r = sim.max(0).values  # best answer match per reference token
    pm, rm = float(p.mean()), float(r.mean())
    if question.shape[0]:
        # Answer tokens that are not copied from the question.
        own = (answer @ question.T).max(1).values < 0.8
        novel = float(p[own].mean()) if bool(own.any()) else pm
    else:
        novel = pm
    f1 = 2 * pm * rm / (pm + rm) if pm + rm > 0 else 0.0
    vals = [pm, rm, f1, float((r > 0.6).float().mean()), float((r > 0.7).float().mean()), novel,
            float((p > 0.6).float().mean())]  # fmt: skip
    out[:] = torch.tensor(vals)
    return out


def learner_vector(req: FeedbackRequest) -> Tensor:
    """z: [LEARNER_DIM] = has_learner, attempts, previous scores, mastery, detail, language."""
    z = torch.zeros(LEARNER_DIM)
    lf = req.learner
    lang = language_of(req.feedback_language)
    z[11 + (LANGS.index(lang) if lang in LANGS else 3)] = 1.0
    if lf is None:
        z[9] = 1.0  # standard detail
        return z
    z[0] = 1.0
    z[1] = math.log1p(max(0, lf.attempts)) / 3
    if lf.previous_scores:
        z[2] = 1.0
        z[3] = sum(lf.previous_scores) / len(lf.previous_scores)
        z[4] = lf.previous_scores[-1]
    mastery = list(lf.criterion_mastery.values())
    z[5] = sum(mastery) / len(mastery) if mastery else 0.5
    z[6] = min(mastery) if mastery else 0.5
    n_crit = max(1, len(req.rubric))
    z[7] = min(1.0, sum(1 for v in lf.times_missed.values() if v > 0) / n_crit)
    z[8 + ("novice", "standard", "advanced").index(lf.detail_level)] = 1.0
    return z


@dataclass
class Featurized:
    batch: StudentBatch
    answer_texts: list[str]  # the text graded (typed + OCR)
    sentences: list[list[str]]  # answer sentences per request
    evidence: list[list[int]]  # per request, per criterion: index of the best sentence (-1)


class Featurizer:
    def __init__(
        self,
        encoder: TextEncoder,
        memory: FeedbackMemory | None = None,
        media: MediaEncoder | None = None,
        image_dim: int = 1280,
    ) -> None:
        self.encoder = encoder
        self.memory = memory
        self.media = media
        self.image_dim = media.dim if media is not None else image_dim
        # Language -> class probe (format 5), fitted on the training questions by training.
        self.class_probes: dict[str, ClassProbe] = {}
        # Probes of instructors' reviews, kept across batches: a worker grades an activity's
        # submissions in many batches with the same reviews (least recently used dropped).
        self._review_probes: OrderedDict[tuple, LinearProbe | None] = OrderedDict()

    @property
    def layer_probes(self) -> bool:
        """Per-question probes read layer features (format 6) unless an older memory says not."""
        return self.memory is None or self.memory.layers is not None

    def __call__(
        self,
        requests: list[FeedbackRequest],
        exclude_ids: list[str | None] | None = None,
    ) -> Featurized:
        B = len(requests)
        enc = self.encoder
        answers = []
        images = torch.zeros(B, self.image_dim)
        image_mask = torch.zeros(B, dtype=torch.bool)
        videos: list[Tensor] = []
        for i, r in enumerate(requests):
            text = r.answer_text.strip()
            if r.image_paths and self.media is not None:
                ocr = self.media.ocr(r.image_paths).strip()
                text = f"{text}\n{ocr}".strip() if ocr else text
                images[i] = self.media.image_features(r.image_paths)
                image_mask[i] = True
            if r.video_path and self.media is not None:
                videos.append(self.media.video_frames(r.video_path))
            else:
                videos.append(torch.zeros(0, self.image_dim))
            answers.append(text)
        q = enc.encode([r.question for r in requests])  # [B, D]
        ref = enc.encode([r.reference_answer for r in requests])  # [B, D]
        a = enc.encode(answers)  # [B, D]
        text_mask = torch.tensor([bool(t) for t in answers])
        a = a * text_mask[:, None]
        T = max(1, max(v.shape[0] for v in videos))
        video = torch.zeros(B, T, self.image_dim)
        video_mask = torch.zeros(B, T, dtype=torch.bool)
        for i, v in enumerate(videos):
            video[i, : v.shape[0]] = v
            video_mask[i, : v.shape[0]] = True
        z = torch.stack([learner_vector(r) for r in requests])  # [B, LEARNER_DIM]
        layers = None
        if self.layer_probes and (self.memory is not None or any(r.graded for r in requests)):
            layers = enc.layer_features(answers) * text_mask[:, None]  # [B, layer_dim]
        memory = self._memory_stats(requests, a, layers, exclude_ids)
        memory_mask = memory[:, 0] > 0
        lex = torch.tensor(
            [
                [
                    textlib.similarity(t, r.reference_answer),
                    textlib.recall(t, r.reference_answer),
                    textlib.recall(r.reference_answer, t),
                    math.log1p(len(textlib.tokens(t))) / 5,
                ]
                for t, r in zip(answers, requests, strict=True)
            ]
        )  # [B, LEX_DIM]
        # Criteria: embeddings, evidence sentence similarity, learner mastery.
        C = max(1, max(len(r.rubric) for r in requests))
        crit = torch.zeros(B, C, enc.dim)
        crit_extra = torch.zeros(B, C, CRIT_EXTRA_DIM)
        crit_mask = torch.zeros(B, C, dtype=torch.bool)
        sents = [textlib.sentences(t)[:MAX_SENTENCES] for t in answers]
        flat = [s for ss in sents for s in ss]
        sent_emb = enc.encode(flat)  # [S, D]
        crit_texts = [
            f"{c.description} {c.explanation}".strip() for r in requests for c in r.rubric
        ]
        crit_emb = enc.encode(crit_texts)  # [sum C_i, D]
        ref_sents = [textlib.sentences(r.reference_answer)[:MAX_SENTENCES] for r in requests]
        ref_sent_emb = enc.encode([s for ss in ref_sents for s in ss])  # [S_r, D]
        a_tok = enc.token_states(answers)
        r_tok = enc.token_states([r.reference_answer for r in requests])
        q_tok = enc.token_states([r.question for r in requests])
        peer_stats = self._peer_stats(requests)
        qi = torch.zeros(B, QI_DIM)
        crit_qi = torch.zeros(B, C, 2)  # per criterion: embedding coverage, lexical similarity
        evidence: list[list[int]] = []
        s0 = c0 = r0 = 0
        for i, r in enumerate(requests):
            ns, nc, nr = len(sents[i]), len(r.rubric), len(ref_sents[i])
            se = sent_emb[s0 : s0 + ns]  # [ns, D]
            ce = crit_emb[c0 : c0 + nc]  # [nc, D]
            re_ = ref_sent_emb[r0 : r0 + nr]  # [nr, D]
            s0, c0, r0 = s0 + ns, c0 + nc, r0 + nr
            total = sum(c.points for c in r.rubric) or 1.0
            # Criterion coverage: best cosine of the criterion with the whole answer or a sentence.
            cover = _max_cos(torch.cat([a[i][None], se]), ce) if ns else torch.zeros(nc)
            lexsims = torch.zeros(nc)
            ev = []
            for j, c in enumerate(r.rubric):
                sims = se @ ce[j] if ns else torch.zeros(0)
                best = int(sims.argmax()) if ns else -1
                lexsim = max(
                    textlib.similarity(answers[i], crit_texts[c0 - nc + j]),
                    textlib.best_sentence(answers[i], crit_texts[c0 - nc + j])[1],
                )
                lexsims[j] = lexsim
                lf = r.learner
                mastery = lf.criterion_mastery.get(c.id, 0.5) if lf else 0.5
                missed = float(bool(lf and lf.times_missed.get(c.id, 0) > 0))
                crit[i, j] = ce[j]
                crit_extra[i, j] = torch.tensor(
                    [mastery, missed, float(sims.max()) if ns else 0.0, lexsim, c.points / total]
                )
                crit_mask[i, j] = True
                ev.append(best)
            evidence.append(ev)
            crit_qi[i, :nc, 0] = cover
            crit_qi[i, :nc, 1] = lexsims
            base = qi_vector(answers[i], r, a[i], q[i], ref[i], se, re_, cover, lexsims)
            qi[i, :QI_BASE_DIM] = base
            qi[i, QI_BASE_DIM : QI_BASE_DIM + ALIGN_DIM] = alignment_vector(
                a_tok[i], r_tok[i], q_tok[i]
            )
            peers, peer_words = peer_stats[r.peer_answers[:MAX_PEER_ANSWERS]]
            n_words = len(textlib.tokens(answers[i]))
            qi[i, QI_BASE_DIM + ALIGN_DIM :] = peer_vector(a[i], n_words, peers, peer_words, ref[i])
        langs = [language_of(r.language) for r in requests]
        class_probe = class_probe_vectors(self.class_probes, qi, langs)
        batch = StudentBatch(
            q=q,
            r=ref,
            a=a,
            text_mask=text_mask,
            image=images,
            image_mask=image_mask,
            video=video,
            video_mask=video_mask,
            z=z,
            memory=memory,
            memory_mask=memory_mask,
            lex=lex,
            crit=crit,
            crit_extra=crit_extra,
            crit_mask=crit_mask,
            qi=qi,
            crit_qi=crit_qi,
            class_probe=class_probe,
        )
        return Featurized(batch, answers, sents, evidence)

    def _peer_stats(
        self, requests: list[FeedbackRequest]
    ) -> dict[tuple[str, ...], tuple[Tensor, Tensor]]:
        """Embeddings and lengths of each distinct set of classmates' answers (the requests of
        one activity usually share theirs), non-empty answers only."""
        out: dict[tuple[str, ...], tuple[Tensor, Tensor]] = {}
        for r in requests:
            key = r.peer_answers[:MAX_PEER_ANSWERS]
            if key in out:
                continue
            texts = [t for t in key if t.strip()]
            words = torch.tensor([len(textlib.tokens(t)) for t in texts], dtype=torch.float)
            out[key] = (self.encoder.encode(texts), words)
        return out

    def _memory_stats(
        self,
        requests: list[FeedbackRequest],
        a: Tensor,
        layers: Tensor | None,
        exclude_ids: list[str | None] | None,
    ) -> Tensor:
        """kNN statistics and probe over the model's graded answers to each request's question
        plus the ones the request brings (``FeedbackRequest.graded``): [B, MEMORY_DIM]. The
        probes read ``layers`` (the answers' layer features) when given, else ``a``."""
        # Requests of one activity share their graded answers: build that evidence once.
        evidence: dict[tuple[GradedAnswer, ...], tuple[Tensor, Tensor, Tensor, Tensor]] = {}
        out = torch.zeros(len(requests), MEMORY_DIM)
        probe_in = a if layers is None else layers
        for i, r in enumerate(requests):
            mem = self.memory
            ex = exclude_ids[i] if exclude_ids else None
            if not r.graded:
                if mem is not None:
                    out[i] = mem.stats(a[i], r.question_id, ex, probe_in[i])
                continue
            if r.graded not in evidence:
                texts = [g.answer_text for g in r.graded]
                emb = self.encoder.encode(texts)
                evidence[r.graded] = (
                    emb,
                    emb if layers is None else self.encoder.layer_features(texts),
                    torch.tensor([g.verdict.index for g in r.graded], dtype=torch.long),
                    torch.tensor([g.score for g in r.graded], dtype=torch.float),
                )
            parts = [evidence[r.graded]]
            rows = mem.rows(r.question_id, ex) if mem is not None else []
            if mem is not None and rows:
                sel = torch.tensor(rows, dtype=torch.long)
                parts.insert(
                    0, (mem.answers[sel], mem.probe_inputs[sel], mem.verdicts[sel], mem.scores[sel])
                )
            answers, inputs, verdicts, scores = (torch.cat(t) for t in zip(*parts, strict=True))
            key = (r.question_id if rows else None, ex, r.graded)
            probe = self._review_probe(key, inputs, verdicts, scores, layers is not None)
            knn = knn_stats(a[i], answers, verdicts, scores)
            out[i] = memory_vector(knn, probe, probe_in[i])
        return out

    def _review_probe(
        self, key: tuple, inputs: Tensor, verdicts: Tensor, scores: Tensor, standardize: bool
    ) -> LinearProbe | None:
        cache = self._review_probes
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        probe = cache[key] = fit_probe(inputs, verdicts, scores, standardize=standardize)
        if len(cache) > REVIEW_PROBE_CACHE:
            cache.popitem(last=False)
        return probe


def feedback_masks(
    memory: FeedbackMemory,
    requests: list[FeedbackRequest],
    exclude_ids: list[str | None] | None = None,
) -> tuple[Tensor, Tensor]:
    """same_question [B, N] and allowed [B, N] (same language, not the example itself)."""
    qids = [r.question_id for r in requests]
    same = torch.tensor([[q is not None and q == mq for mq in memory.question_ids] for q in qids])
    langs = [language_of(r.feedback_language) for r in requests]
    allowed = torch.tensor([[lg == ml for ml in memory.languages] for lg in langs])
    if exclude_ids:
        for i, ex in enumerate(exclude_ids):
            if ex is not None:
                allowed[i] &= torch.tensor([k != ex for k in memory.ids])
    if same.numel() == 0:
        same = torch.zeros(len(requests), len(memory), dtype=torch.bool)
        allowed = torch.zeros(len(requests), len(memory), dtype=torch.bool)
    return same, allowed


def verdict_names() -> list[str]:
    return [v.value for v in VERDICTS]
