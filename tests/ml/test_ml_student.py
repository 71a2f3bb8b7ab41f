"""Tiny-config student tests: fusion masks, heads, save/load, batch == single, personalisation."""

from __future__ import annotations

import pytest
import torch

from ml.data import load_corpus
from ml.features import CRIT_EXTRA_DIM, LEARNER_DIM, LEX_DIM, MEMORY_DIM
from ml.inference import FeedbackModel
from ml.models.encoders import HashingTextEncoder
from ml.models.student import StudentBatch, StudentConfig, StudentModel
from ml.train import TrainConfig, student_config_for, train_student
from ml.types import LearnerFeatures

TINY = dict(d_model=32, n_heads=2, n_layers=1, retrieval_dim=16, dropout=0.0)


def random_batch(cfg: StudentConfig, B: int = 3, C: int = 2, T: int = 4) -> StudentBatch:
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    return StudentBatch(
        q=r(B, cfg.text_dim),
        r=r(B, cfg.text_dim),
        a=r(B, cfg.text_dim),
        text_mask=torch.ones(B, dtype=torch.bool),
        image=r(B, cfg.image_dim),
        image_mask=torch.zeros(B, dtype=torch.bool),
        video=r(B, T, cfg.image_dim),
        video_mask=torch.zeros(B, T, dtype=torch.bool),
        z=r(B, cfg.z_dim),
        memory=r(B, cfg.memory_dim),
        memory_mask=torch.zeros(B, dtype=torch.bool),
        lex=r(B, cfg.lex_dim),
        crit=r(B, C, cfg.text_dim),
        crit_extra=r(B, C, cfg.crit_extra_dim),
        crit_mask=torch.tensor([[True, True], [True, False], [False, False]])[:B],
    )


@pytest.fixture
def tiny_cfg() -> StudentConfig:
    return StudentConfig(
        text_dim=16,
        image_dim=8,
        z_dim=LEARNER_DIM,
        memory_dim=MEMORY_DIM,
        lex_dim=LEX_DIM,
        crit_extra_dim=CRIT_EXTRA_DIM,
        **TINY,
    )


def test_forward_shapes_and_ranges(tiny_cfg):
    model = StudentModel(tiny_cfg).eval()
    out = model(random_batch(tiny_cfg))
    assert out.h.shape == (3, 32)
    assert out.verdict_logits.shape == (3, 3)
    assert out.score_logits.shape == (3, tiny_cfg.n_score_bins)
    assert ((out.score >= 0) & (out.score <= 1)).all()
    assert out.crit_logits.shape == (3, 2)
    assert (out.crit_logits[2] < -1e3).all()  # masked criteria


def test_missing_modalities_are_masked_out(tiny_cfg):
    torch.manual_seed(0)
    model = StudentModel(tiny_cfg).eval()
    b = random_batch(tiny_cfg)
    base = model(b).h
    # Changing features of an absent modality must not change anything ...
    b2 = random_batch(tiny_cfg)
    b2.image = b2.image + 5.0
    b2.video = b2.video - 3.0
    b2.memory = b2.memory * 7
    assert torch.allclose(model(b2).h, base, atol=1e-6)
    # ... but once present, they are fused.
    b2.image_mask = torch.ones(3, dtype=torch.bool)
    assert not torch.allclose(model(b2).h, base, atol=1e-4)
    b3 = random_batch(tiny_cfg)
    b3.video_mask[:, :2] = True
    with_video = model(b3).h
    b3.video[:, 2:] += 100.0  # frames beyond the mask are ignored by temporal pooling
    assert torch.allclose(model(b3).h, with_video, atol=1e-5)
    assert not torch.allclose(with_video, base, atol=1e-4)


def test_media_streams_never_trained_are_ignored(tiny_cfg):
    """A model trained on typed answers only must grade a photo from its OCR text alone: its
    image projection never saw data, so the image token would only add noise."""
    from dataclasses import replace

    torch.manual_seed(0)
    text_only = StudentModel(replace(tiny_cfg, trained_media=[])).eval()
    b = random_batch(tiny_cfg)
    base = text_only(b).h
    b.image_mask = torch.ones(3, dtype=torch.bool)
    b.video_mask[:, :2] = True
    assert torch.allclose(text_only(b).h, base, atol=1e-6)
    with_image = StudentModel(replace(tiny_cfg, trained_media=["image"]))
    with_image.load_state_dict(text_only.state_dict())
    assert not torch.allclose(with_image.eval()(b).h, base, atol=1e-4)


def test_training_records_the_media_it_saw():
    encoder = HashingTextEncoder(16)
    cfg = student_config_for(encoder, image_dim=8, **TINY)
    model, _, _ = train_student(load_corpus()[:6], encoder, TrainConfig(epochs=1), cfg)
    assert model.cfg.trained_media == []


@pytest.fixture(scope="module")
def trained() -> FeedbackModel:
    examples = load_corpus()
    encoder = HashingTextEncoder(48)
    cfg = student_config_for(encoder, image_dim=8, **TINY)
    model, featurizer, history = train_student(
        examples, encoder, TrainConfig(epochs=40, lr=3e-3, seed=0), cfg
    )
    assert history["loss"][-1] < history["loss"][0]
    return FeedbackModel(model, featurizer, "tiny")


def test_learns_the_corpus(trained):
    examples = load_corpus()
    preds = trained.predict_batch([e.to_request(with_learner=False) for e in examples])
    acc = sum(p.verdict is e.verdict for p, e in zip(preds, examples, strict=True)) / len(examples)
    assert acc >= 0.7
    # Without a learner, feedback is the retrieved teacher feedback for the same question.
    texts = {e.feedback for e in examples}
    assert all(p.feedback in texts for p in preds)


def test_batch_equals_single(trained, make_request, learner_missed_again):
    corpus = load_corpus()
    class_answers = ("Water and light.", "Carbon dioxide.", "Soil.", "Sunlight.", "Heat.")
    reqs = [e.to_request() for e in corpus[:3]] + [
        make_request("Light energy.", learner=learner_missed_again),
        make_request("Light energy.", peer_answers=class_answers),
        make_request("", image_paths=()),
    ]
    batch = trained.predict_batch(reqs)
    for req, res in zip(reqs, batch, strict=True):
        single = trained.predict(req)
        assert single.verdict is res.verdict
        assert single.score == pytest.approx(res.score, abs=1e-3)
        assert single.feedback == res.feedback
        assert [c.met for c in single.criteria] == [c.met for c in res.criteria]


def test_save_load_round_trip(trained, tmp_path):
    trained.save(tmp_path / "m")
    loaded = FeedbackModel.load(tmp_path / "m", "cpu")
    reqs = [e.to_request() for e in load_corpus()[:4]]
    for a, b in zip(trained.predict_batch(reqs), loaded.predict_batch(reqs), strict=True):
        assert a.to_dict() == b.to_dict()


def test_personalisation(trained):
    # An answer that misses everything, to a corpus question, for different learners.
    base = load_corpus()[3]  # "Plants eat soil to grow bigger." (incorrect)
    req = base.to_request()

    def ask(learner):
        from dataclasses import replace

        return trained.predict(replace(req, learner=learner))

    first = ask(LearnerFeatures(attempts=0))
    again = ask(LearnerFeatures(attempts=2, times_missed={c.id: 1 for c in base.rubric}))
    missed_first = [c for c in first.criteria if not c.met]
    assert missed_first and all(c.feedback_level == "hint" for c in missed_first)
    assert all(c.feedback_level == "explanation" for c in again.criteria if not c.met)
    assert "again" in again.feedback and "Hint" in first.feedback
    novice = ask(LearnerFeatures(detail_level="novice"))
    advanced = ask(LearnerFeatures(detail_level="advanced"))
    assert len(advanced.feedback) < len(first.feedback) < len(novice.feedback)
    zh = ask(LearnerFeatures(language="zh"))
    assert zh.language == "zh" and "提示" in zh.feedback


def test_load_missing_model_dir(tmp_path):
    from ml.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError):
        FeedbackModel.load(tmp_path / "nope")


def test_memory_is_leave_one_out_and_same_question_only():
    from ml.features import FeedbackMemory, feedback_masks

    corpus = load_corpus()
    enc = HashingTextEncoder(32)
    memory = FeedbackMemory.build(corpus, enc)
    ex = corpus[0]
    a = enc.encode([ex.answer_text])[0]
    layers = enc.layer_features([ex.answer_text])[0]
    with_self = memory.stats(a, ex.question_id, None, layers)
    without = memory.stats(a, ex.question_id, ex.id, layers)
    assert with_self[5] == pytest.approx(1.0, abs=1e-5)  # nearest neighbour is itself
    assert without[5] < 0.999
    assert memory.stats(a, "unknown-question", None, layers).sum() == 0
    with pytest.raises(ValueError, match="layer features"):
        memory.stats(a, ex.question_id, None)  # its probes read layer features
    same, allowed = feedback_masks(memory, [ex.to_request()], exclude_ids=[ex.id])
    assert int(same.sum()) == 6 and not bool(allowed[0, 0])
    assert all(memory.languages[j] == "en" for j in allowed[0].nonzero().flatten().tolist())


def test_distillation_path_uses_teacher_labels():
    from ml.teacher.labels import TeacherLabel

    corpus = load_corpus()
    teacher = {
        e.id: TeacherLabel(e.id, (0.2, 0.6, 0.2), 0.5, f"Teacher says: {e.feedback}", "t")
        for e in corpus[:20]
    }
    enc = HashingTextEncoder(32)
    cfg = student_config_for(enc, 8, **TINY)
    model, feat, hist = train_student(corpus, enc, TrainConfig(epochs=2), cfg, teacher=teacher)
    assert all(torch.isfinite(torch.tensor(hist["loss"])))
    # Sequence-level KD: the generator draws on the teacher's generations.
    assert feat.memory.feedback[0].startswith("Teacher says:")
    assert not feat.memory.feedback[30].startswith("Teacher says:")
