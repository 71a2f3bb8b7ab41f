"""Graded answers a request brings (``FeedbackRequest.graded``): the first reviews of a new
activity become kNN evidence for the grades of the rest."""

from __future__ import annotations

import math

import pytest
import torch

from ml.data import load_corpus
from ml.features import Featurizer, FeedbackMemory, knn_stats
from ml.inference import FeedbackModel
from ml.models.encoders import HashingTextEncoder
from ml.train import TrainConfig, student_config_for, train_student
from ml.types import GradedAnswer, Verdict

TINY = dict(d_model=32, n_heads=2, n_layers=1, retrieval_dim=16, dropout=0.0)


def test_knn_stats_by_hand():
    answer = torch.tensor([1.0, 0.0])
    answers = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = knn_stats(answer, answers, torch.tensor([2, 0]), torch.tensor([0.0, 1.0]))
    w = torch.tensor([1.0, 0.0]) / 0.05
    w = w.softmax(0)  # the identical answer (incorrect, score 0) dominates
    assert out[0] == 1.0
    assert out[1] == pytest.approx(float(w[1]))
    assert out[2:5].tolist() == pytest.approx([float(w[1]), 0.0, float(w[0])])
    assert out[5] == 1.0 and out[6] == pytest.approx(0.5)
    assert out[7] == pytest.approx(math.log1p(2) / 5)
    assert knn_stats(answer, torch.zeros(0, 2), torch.zeros(0).long(), torch.zeros(0)).eq(0).all()


def test_graded_answers_become_memory_for_an_unknown_question(make_request):
    encoder = HashingTextEncoder(48)
    memory = FeedbackMemory.build(load_corpus(), encoder)  # knows nothing of q-photo
    featurizer = Featurizer(encoder, memory, None, 8)
    wrong = "Only oxygen from the soil."
    graded = (
        GradedAnswer(wrong, 0.0, Verdict.INCORRECT),
        GradedAnswer("Light, water and CO2.", 1.0, Verdict.CORRECT),
    )
    plain = make_request(wrong)
    with_reviews = make_request(wrong, graded=graded)
    batch = featurizer([plain, with_reviews, make_request("Light.", graded=graded[:1])]).batch
    assert not batch.memory_mask[0] and batch.memory[0].eq(0).all()
    assert batch.memory_mask[1]
    # The identical graded answer was incorrect: that verdict dominates the neighbours.
    assert batch.memory[1, 4] > 0.9 and batch.memory[1, 1] < 0.1
    assert batch.memory[1, 7] == pytest.approx(math.log1p(2) / 5)
    assert batch.memory[2, 7] == pytest.approx(math.log1p(1) / 5)  # its own graded answers only


@pytest.fixture(scope="module")
def model() -> FeedbackModel:
    encoder = HashingTextEncoder(48)
    cfg = student_config_for(encoder, image_dim=8, **TINY)
    train_cfg = TrainConfig(epochs=4, lr=3e-3)
    student, featurizer, history = train_student(load_corpus(), encoder, train_cfg, cfg)
    assert all(math.isfinite(x) for x in history["loss"])
    return FeedbackModel(student, featurizer, "tiny")


def test_graded_answers_change_the_grade_and_batch_equals_single(model, make_request):
    wrong = "Only oxygen from the soil."
    graded = tuple(GradedAnswer(wrong, 0.0, Verdict.INCORRECT) for _ in range(3))
    reqs = [make_request(wrong), make_request(wrong, graded=graded), make_request("Light.")]
    batch = model.predict_batch(reqs)
    for req, res in zip(reqs, batch, strict=True):
        assert model.predict(req).to_dict() == res.to_dict()
    assert batch[0].score != pytest.approx(batch[1].score, abs=1e-4)
    # Feedback never comes from the graded answers (their feedback is not even sent).
    assert batch[1].feedback


def test_first_reviews_and_evaluation_with_them(model):
    from ml.evaluate import evaluate_examples, first_reviews

    corpus = load_corpus()
    graded, rest = first_reviews(corpus, 2, seed=0)
    questions = {e.question_id for e in corpus}
    assert set(graded) == questions and all(len(g) == 2 for g in graded.values())
    assert len(rest) == len(corpus) - 2 * len(questions)
    reviewed = {(q, g.answer_text) for q, gs in graded.items() for g in gs}
    assert not reviewed & {(e.question_id, e.answer_text) for e in rest}
    assert first_reviews(corpus, 2, seed=0) == (graded, rest)  # seeded

    sent: list = []

    class Recording:
        def predict_batch(self, requests):
            sent.extend(requests)
            return model.predict_batch(requests)

    metrics = evaluate_examples(Recording(), rest, graded=graded)
    assert metrics["n"] == len(rest)
    assert all(r.graded == graded[r.question_id] for r in sent)


def test_graded_answers_without_a_model_memory(make_request):
    encoder = HashingTextEncoder(48)
    graded = (GradedAnswer("Light and water.", 1.0, Verdict.CORRECT),)
    for memory in (None, FeedbackMemory()):
        batch = Featurizer(encoder, memory, None, 8)([make_request(graded=graded)]).batch
        assert batch.memory_mask[0] and batch.memory[0, 2] == pytest.approx(1.0)
