"""What workers call: ``FeedbackModel.load(model_dir, device).predict_batch(requests)``.

A model directory holds::

    meta.json             encoder specs, versions, name
    student_config.json   StudentConfig
    student.pt            StudentModel state dict (student_1.pt, ...: ensemble members)
    memory.json/.pt       FeedbackMemory (graded answers + feedback the generator draws on)
    class_probes.pt       per-language class probes (format 5, ``ml.probe.ClassProbe``)
    config.json           resolved training config (from the run), metrics.json, MODEL_CARD.md

Loads only from local paths (``HF_HUB_OFFLINE=1``). Works on CPU and CUDA.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ml import feedback
from ml.errors import ModelNotFoundError
from ml.features import Featurizer, FeedbackMemory, MediaEncoder, feedback_masks
from ml.models.cross import CrossEncoderGrader, context_of
from ml.models.encoders import TextEncoder, text_encoder_from_spec
from ml.models.ensemble import StudentEnsemble, load_student
from ml.models.student import StudentModel
from ml.probe import class_probe_state, class_probes_from_state
from ml.types import VERDICTS, CriterionAssessment, FeedbackRequest, FeedbackResult

# 2: the student has the question-independent evidence path (StudentConfig.qi_dim > 0).
# 3: that evidence adds token-level alignment (qi_dim 27); format-2 models read its first 20.
# 4: a per-question linear probe follows the kNN statistics in the memory evidence and reaches
#    the heads through a residual (StudentConfig.probe_dim); older formats read the kNN part.
# 5: the question-independent evidence adds where the answer stands among its classmates'
#    answers (qi_dim 34, ``ml.features.peer_vector``; formats 3-4 read its first 27), and a
#    per-language class probe over it (class_probes.pt) reaches the heads for new questions.
# 6: the per-question probes read the encoder's layer features, kept in the memory ("layers" in
#    memory.pt); memories without them keep the probes of formats 4-5 on sentence embeddings.
# 7: the student may be an ensemble of members trained with different seeds (student.pt,
#    student_1.pt, ..., ``ml.models.ensemble``); one member is a format-6 directory.
# Format-1 directories still load (their config has no qi_dim, so that path is off).
FORMAT_VERSION = 7
CLASS_PROBES = "class_probes.pt"
SUPPORTED_FORMATS = (1, 2, 3, 4, 5, 6, 7)


class FeedbackModel:
    def __init__(
        self,
        model: StudentModel | StudentEnsemble,
        featurizer: Featurizer,
        name: str = "student",
        device: str | torch.device = "cpu",
        cross: CrossEncoderGrader | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.featurizer = featurizer
        self.name = name
        # Optional cross-encoder whose verdict/score are mixed with the student's.
        self.cross = cross.to(self.device).eval() if cross is not None else None
        self.decoding = "mbr"  # or "argmax": how the generator picks among stored feedback

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path, extra_meta: dict[str, Any] | None = None) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory)
        if self.cross is not None:
            self.cross.save(directory)
        if self.featurizer.memory is not None:
            self.featurizer.memory.save(directory)
        if self.featurizer.class_probes:
            torch.save(class_probe_state(self.featurizer.class_probes), directory / CLASS_PROBES)
        media = self.featurizer.media
        meta = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "text_encoder": self.featurizer.encoder.spec,
            "media_encoder": getattr(media, "spec", None),
            **(extra_meta or {}),
        }
        (directory / "meta.json").write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        device: str | torch.device = "cpu",
        *,
        text_encoder: TextEncoder | None = None,
        media: MediaEncoder | None = None,
    ) -> FeedbackModel:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        directory = Path(model_dir)
        if not (directory / "meta.json").is_file():
            raise ModelNotFoundError(f"no model at {directory} (meta.json missing)")
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("format_version") not in SUPPORTED_FORMATS:
            raise ModelNotFoundError(
                f"{directory}: unsupported format {meta.get('format_version')}"
            )
        if device == "cuda" and not torch.cuda.is_available():
            device = "cpu"
        encoder = text_encoder or text_encoder_from_spec(meta["text_encoder"], device)
        if media is None and meta.get("media_encoder"):
            from ml.models.vision import media_encoder_from_spec

            media = media_encoder_from_spec(meta["media_encoder"], device)
        memory = FeedbackMemory.load(directory) if (directory / "memory.json").is_file() else None
        student = load_student(directory, device)
        featurizer = Featurizer(encoder, memory, media, student.cfg.image_dim)
        if (directory / CLASS_PROBES).is_file():
            state = torch.load(directory / CLASS_PROBES, weights_only=True)
            featurizer.class_probes = class_probes_from_state(state)
        cross = None
        if (directory / "cross" / "cross_config.json").is_file():
            cross = CrossEncoderGrader.load(directory, device)
        return cls(student, featurizer, meta.get("name", directory.name), device, cross)

    def member(self, k: int) -> FeedbackModel:
        """Member ``k`` of an ensemble as a model of its own (same featurizer), e.g. to measure
        what the ensemble adds."""
        if not isinstance(self.model, StudentEnsemble):
            raise ValueError(f"{self.name} is a single student, not an ensemble")
        member = self.model.members[k]
        return FeedbackModel(member, self.featurizer, f"{self.name}#{k}", self.device, self.cross)

    # ------------------------------------------------------------------ prediction
    def predict(self, request: FeedbackRequest) -> FeedbackResult:
        return self.predict_batch([request])[0]

    @torch.inference_mode()
    def predict_batch(self, requests: list[FeedbackRequest]) -> list[FeedbackResult]:
        if not requests:
            return []
        feats = self.featurizer(requests)
        out = self.model(feats.batch.to(self.device))
        verdict_p = out.verdict_logits.softmax(-1).cpu()  # [B, 3]
        score = out.score.cpu()  # [B]
        if self.cross is not None:
            verdict_p, score = self._mix_cross(verdict_p, score, feats.answer_texts, requests)
        conf = torch.sigmoid(out.confidence_logit).cpu()  # [B]
        cover = torch.sigmoid(out.crit_logits).cpu()  # [B, C]
        core = self._retrieve(out.h, feats, requests)
        results = []
        for i, req in enumerate(requests):
            verdict = VERDICTS[int(verdict_p[i].argmax())]
            met = [bool(cover[i, j] >= 0.5) for j in range(len(req.rubric))]
            plans = feedback.plan_criteria(req.rubric, met, req.learner)
            total = sum(c.points for c in req.rubric) or 1.0
            crits = []
            for j, (c, p) in enumerate(zip(req.rubric, plans, strict=True)):
                ev = feats.evidence[i][j]
                crits.append(
                    CriterionAssessment(
                        criterion_id=c.id,
                        met=p.met,
                        coverage=round(float(cover[i, j]), 4),
                        points_awarded=round(c.points * req.max_score / total, 4) if p.met else 0.0,
                        evidence=feats.sentences[i][ev] if p.met and ev >= 0 else "",
                        feedback_level=p.level,
                    )
                )
            language = feedback.language_of(req.feedback_language)
            text = feedback.compose(
                verdict=verdict,
                plans=plans,
                learner=req.learner,
                language=language,
                core=core[i],
                reference_answer=req.reference_answer,
            )
            typed = req.answer_text.strip()
            graded = feats.answer_texts[i]
            results.append(
                FeedbackResult(
                    score=round(float(score[i]) * req.max_score, 4),
                    max_score=req.max_score,
                    verdict=verdict,
                    confidence=round(float(conf[i]), 4),
                    feedback=text,
                    language=language,
                    criteria=tuple(crits),
                    model_name=self.name,
                    extracted_text=graded if graded != typed else "",
                )
            )
        return results

    def _mix_cross(
        self,
        verdict_p: torch.Tensor,  # [B, 3]
        score: torch.Tensor,  # [B]
        answers: list[str],
        requests: list[FeedbackRequest],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Product of experts over verdicts, weighted mean of scores; answers with no text (an
        image without readable writing) keep the student's grade."""
        assert self.cross is not None
        rows = [i for i, t in enumerate(answers) if t.strip()]
        if not rows:
            return verdict_p, score
        logp, cross_score = self.cross.predict(
            [context_of(requests[i].question, requests[i].reference_answer) for i in rows],
            [answers[i] for i in rows],
        )
        w = self.cross.cfg.weight
        idx = torch.tensor(rows)
        verdict_p, score = verdict_p.clone(), score.clone()
        mixed = (1 - w) * verdict_p[idx].clamp_min(1e-8).log() + w * logp
        verdict_p[idx] = mixed.softmax(-1)
        score[idx] = (1 - w) * score[idx] + w * cross_score
        return verdict_p, score

    def _retrieve(
        self, h: torch.Tensor, feats, requests: list[FeedbackRequest]
    ) -> list[str | None]:
        """g(h, z): the best stored feedback for this answer, only from the same question."""
        memory = self.featurizer.memory
        if memory is None or len(memory) == 0:
            return [None] * len(requests)
        same, allowed = feedback_masks(memory, requests)
        allowed = (allowed & same).to(self.device)  # never reuse another question's feedback
        m = self.model
        dev = self.device
        keys = m.candidates(
            memory.feedback_emb.to(dev),
            memory.answers.to(dev),
            memory.verdicts.to(dev),
            memory.scores.to(dev),
        )
        b = feats.batch
        logits = m.feedback_logits(
            h, b.z.to(dev), b.a.to(dev), keys, memory.answers.to(dev), same.to(dev), allowed
        )  # [B, N]
        if self.decoding == "mbr":
            # Minimum Bayes risk: the candidate with the highest expected similarity to the
            # generator's distribution, E_p[cos(c, c')] = (p @ E) . E_c (E = feedback embeddings).
            emb = memory.feedback_emb.to(dev)  # [N, D]
            p = logits.softmax(-1)  # [B, N]
            expected = (p @ emb) @ emb.T  # [B, N]
            logits = expected.masked_fill(~allowed, float("-inf"))
        best = logits.argmax(-1).cpu()
        has = allowed.any(-1).cpu()
        return [memory.feedback[int(best[i])] if has[i] else None for i in range(len(requests))]
