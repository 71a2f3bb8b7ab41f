"""Seed ensembles of students (format 7): members, averaging, save/load, batch == single."""

from __future__ import annotations

import json

import pytest
import torch

from ml.data import load_corpus
from ml.features import feedback_masks
from ml.inference import FORMAT_VERSION, FeedbackModel
from ml.models.encoders import HashingTextEncoder
from ml.models.ensemble import StudentEnsemble, load_student
from ml.models.student import StudentModel
from ml.train import TrainConfig, student_config_for, train_student

TINY = dict(d_model=32, n_heads=2, n_layers=1, retrieval_dim=16, dropout=0.0)


def _train(members: int, epochs: int = 30):
    encoder = HashingTextEncoder(48)
    cfg = student_config_for(encoder, image_dim=8, **TINY)
    return train_student(
        load_corpus(), encoder, TrainConfig(epochs=epochs, lr=3e-3, members=members), cfg
    )


@pytest.fixture(scope="module")
def ensemble() -> FeedbackModel:
    model, featurizer, history = _train(members=3)
    assert isinstance(model, StudentEnsemble) and len(model) == 3
    assert len(history["member_loss"]) == 3
    assert all(losses[-1] < losses[0] for losses in history["member_loss"])
    return FeedbackModel(model, featurizer, "tiny-ensemble")


def test_members_differ_only_by_seed():
    """Member 0 is the single student of the same seed; the others are different models."""
    single, _, _ = _train(members=1, epochs=3)
    pair, _, _ = _train(members=2, epochs=3)
    assert isinstance(single, StudentModel)
    first, second = pair.members
    for name, tensor in single.state_dict().items():
        assert torch.equal(tensor, first.state_dict()[name]), name
    assert not torch.equal(first.verdict_head.weight, second.verdict_head.weight)


def test_outputs_are_the_members_mean(ensemble):
    corpus = load_corpus()
    feats = ensemble.featurizer([e.to_request() for e in corpus[:8]])
    b = feats.batch
    with torch.inference_mode():
        out = ensemble.model(b)
        members = [m(b) for m in ensemble.model.members]
    mean_p = torch.stack([o.verdict_logits.softmax(-1) for o in members]).mean(0)
    assert torch.allclose(out.verdict_logits.softmax(-1), mean_p, atol=1e-5)
    assert torch.allclose(out.score, torch.stack([o.score for o in members]).mean(0), atol=1e-6)
    conf = torch.stack([o.confidence_logit.sigmoid() for o in members]).mean(0)
    assert torch.allclose(out.confidence_logit.sigmoid(), conf, atol=1e-5)
    crit = torch.stack([o.crit_logits.sigmoid() for o in members]).mean(0)
    present = b.crit_mask
    assert torch.allclose(out.crit_logits.sigmoid()[present], crit[present], atol=1e-5)
    assert (out.crit_logits[~present] <= -1e3).all()
    # The members disagree somewhere, or averaging would be pointless.
    assert not torch.allclose(members[0].verdict_logits, members[1].verdict_logits)


def test_feedback_distribution_is_the_members_mean(ensemble):
    memory = ensemble.featurizer.memory
    reqs = [e.to_request() for e in load_corpus()[:4]]
    feats = ensemble.featurizer(reqs)
    same, allowed = feedback_masks(memory, reqs)
    allowed = allowed & same
    args = (memory.feedback_emb, memory.answers, memory.verdicts, memory.scores)
    b = feats.batch
    with torch.inference_mode():
        ens = ensemble.model
        logp = ens.feedback_logits(
            ens(b).h, b.z, b.a, ens.candidates(*args), memory.answers, same, allowed
        )
        probs = []
        for m in ens.members:
            logits = m.feedback_logits(
                m(b).h, b.z, b.a, m.candidates(*args), memory.answers, same, allowed
            )
            probs.append(logits.softmax(-1))
    assert torch.allclose(logp.exp(), torch.stack(probs).mean(0), atol=1e-5)
    assert torch.isinf(logp[~allowed]).all()


def test_save_load_round_trip(ensemble, tmp_path):
    ensemble.save(tmp_path / "m")
    assert (tmp_path / "m" / "student_2.pt").is_file()
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION == 7
    loaded = FeedbackModel.load(tmp_path / "m", text_encoder=HashingTextEncoder(48))
    assert isinstance(loaded.model, StudentEnsemble) and len(loaded.model) == 3
    reqs = [e.to_request() for e in load_corpus()[:6]]
    for a, b in zip(ensemble.predict_batch(reqs), loaded.predict_batch(reqs), strict=True):
        assert a == b


def test_one_member_directory_loads_as_a_single_student(ensemble, tmp_path):
    ensemble.model.members[0].save(tmp_path)
    assert isinstance(load_student(tmp_path), StudentModel)
    with pytest.raises(FileNotFoundError):
        load_student(tmp_path / "missing")


def test_batch_equals_single(ensemble):
    reqs = [e.to_request() for e in load_corpus()[:5]]
    batch = ensemble.predict_batch(reqs)
    assert batch == [ensemble.predict(r) for r in reqs]
    assert all(p.feedback.strip() for p in batch)


def test_members_must_share_a_config(ensemble):
    first = ensemble.model.members[0]
    other = StudentModel(student_config_for(HashingTextEncoder(16), image_dim=8, **TINY))
    with pytest.raises(ValueError, match="share"):
        StudentEnsemble([first, other])
    with pytest.raises(ValueError, match="two"):
        StudentEnsemble([first])
