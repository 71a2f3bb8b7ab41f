"""Per-question linear probes (``ml.probe``): what they fit, and that training answers only ever
see probes fitted without them."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from ml.data import load_corpus
from ml.features import KNN_DIM, PROBE_FOLDS, Featurizer, FeedbackMemory
from ml.models.encoders import HashingTextEncoder
from ml.probe import LAYER_PROBE_C, PROBE_C, PROBE_DIM, RIDGE_ALPHA, fit_probe
from ml.types import GradedAnswer, Verdict


def _data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(n, 32, generator=g), dim=-1)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y, torch.rand(n, generator=g)


def test_probe_fits_the_same_models_as_scikit_learn():
    x, y, s = _data(60)
    probe = fit_probe(x, y, s)
    assert probe is not None
    test = _data(10, seed=1)[0]
    out = probe(test)
    lr = LogisticRegression(C=PROBE_C, max_iter=10_000, tol=1e-10).fit(x.numpy(), y.numpy())
    np.testing.assert_allclose(out[:, :3].numpy(), lr.predict_proba(test.numpy()), atol=2e-3)
    ridge = Ridge(alpha=RIDGE_ALPHA).fit(x.numpy(), s.numpy())
    np.testing.assert_allclose(out[:, 3].numpy(), ridge.predict(test.numpy()).clip(0, 1), atol=1e-4)


def test_standardised_probe_fits_the_same_models_as_scikit_learn():
    """Layer features (format 6) are standardised over the probe's answers; the scaling is folded
    into the weights, so the probe takes raw features."""
    x, y, s = _data(60)
    scales = torch.linspace(0.05, 3.0, x.shape[1])  # inputs on very different scales
    x, test = x * scales + 0.5, _data(10, seed=1)[0] * scales + 0.5
    probe = fit_probe(x, y, s, standardize=True)
    assert probe is not None
    out = probe(test)
    scaler = StandardScaler().fit(x.numpy())
    xs, ts = scaler.transform(x.numpy()), scaler.transform(test.numpy())
    lr = LogisticRegression(C=LAYER_PROBE_C, max_iter=10_000, tol=1e-10).fit(xs, y.numpy())
    np.testing.assert_allclose(out[:, :3].numpy(), lr.predict_proba(ts), atol=2e-3)
    ridge = Ridge(alpha=RIDGE_ALPHA * x.shape[1]).fit(xs, s.numpy())
    np.testing.assert_allclose(out[:, 3].numpy(), ridge.predict(ts).clip(0, 1), atol=1e-4)
    # Two answers, or features constant over them: no division by a vanishing spread.
    few = fit_probe(torch.cat([x[:2], x[:2]]), y[:4], s[:4], standardize=True)
    assert few is not None and torch.isfinite(few(test)).all()


def test_probe_edge_cases_and_inference_mode():
    x, y, s = _data(4)
    assert fit_probe(x[:0], y[:0], s[:0]) is None
    # One class only: the probe says that class.
    probe = fit_probe(x, torch.full((4,), 2), s)
    assert probe is not None and probe(x)[:, 2].min() > 0.9
    # Workers call the featurizer under inference mode: fitting must still work there.
    with torch.inference_mode():
        probe = fit_probe(x.clone(), y.clone(), s.clone())
    assert probe is not None and torch.allclose(probe(x)[:, :3].sum(-1), torch.ones(4))


def test_training_answers_get_probes_cross_fitted_without_them():
    n = 25
    x, y, s = _data(n)
    # Answers to another question are never part of this question's probe.
    memory = FeedbackMemory(
        ids=[f"a{i}" for i in range(n)] + ["other"],
        question_ids=["q"] * n + ["q2"],
        languages=["en"] * (n + 1),
        feedback=[""] * (n + 1),
        verdicts=torch.cat([y, torch.tensor([0])]),
        scores=torch.cat([s, torch.tensor([1.0])]),
        answers=torch.cat([x, x[:1]]),
        feedback_emb=torch.zeros(n + 1, 4),
    )
    full = memory.probe("q")
    ref = fit_probe(x, y, s)
    assert full is not None and ref is not None and torch.allclose(full.weight, ref.weight)
    for j in range(n):
        crossed = memory.probe("q", exclude=f"a{j}")
        keep = torch.tensor([i for i in range(n) if i % PROBE_FOLDS != j % PROBE_FOLDS])
        assert j not in keep.tolist()
        refit = fit_probe(x[keep], y[keep], s[keep])
        assert crossed is not None and refit is not None
        assert torch.allclose(crossed.weight, refit.weight)
        assert not torch.allclose(crossed.weight, full.weight)
    # Probes are fitted once per (question, fold); an id the memory lacks gets the full probe.
    assert memory.probe("q", exclude="a0") is memory.probe("q", exclude="a10")
    assert memory.probe("q", exclude="unknown") is full
    assert memory.probe(None) is None and memory.probe("nobody") is None


def test_memory_probes_read_layer_features_and_older_memories_keep_embeddings(tmp_path):
    encoder = HashingTextEncoder(48)
    corpus = load_corpus()
    memory = FeedbackMemory.build(corpus, encoder)
    assert memory.layers is not None and memory.layers.shape == (len(corpus), encoder.layer_dim)
    (tmp_path / "v6").mkdir()
    memory.save(tmp_path / "v6")
    memory = FeedbackMemory.load(tmp_path / "v6")
    assert memory.layers is not None and Featurizer(encoder, memory, None, 8).layer_probes
    qid = corpus[0].question_id
    rows = memory.rows(qid)
    layered = fit_probe(
        memory.layers[rows], memory.verdicts[rows], memory.scores[rows], standardize=True
    )
    probe = memory.probe(qid)
    assert probe is not None and layered is not None
    assert torch.allclose(probe.weight, layered.weight)
    # A format-4/5 memory has no layer features: its probes stay those it was trained with.
    older = FeedbackMemory.build(corpus, encoder, layers=False)
    (tmp_path / "v5").mkdir()
    older.save(tmp_path / "v5")
    older = FeedbackMemory.load(tmp_path / "v5")
    assert older.layers is None and not Featurizer(encoder, older, None, 8).layer_probes
    plain = fit_probe(older.answers[rows], older.verdicts[rows], older.scores[rows])
    old_probe = older.probe(qid)
    assert old_probe is not None and plain is not None
    assert torch.allclose(old_probe.weight, plain.weight)
    assert not torch.allclose(old_probe.weight, probe.weight)
    req = corpus[0].to_request()
    new_ev = Featurizer(encoder, memory, None, 8)([req]).batch.memory[0]
    old_ev = Featurizer(encoder, older, None, 8)([req]).batch.memory[0]
    assert torch.equal(new_ev[:KNN_DIM], old_ev[:KNN_DIM])  # same neighbours, other probes
    assert torch.allclose(old_ev[KNN_DIM:], old_probe(encoder.encode([req.answer_text]))[0])
    assert torch.allclose(new_ev[KNN_DIM:], probe(encoder.layer_features([req.answer_text]))[0])


def test_memory_evidence_carries_the_probe(make_request):
    encoder = HashingTextEncoder(48)
    memory = FeedbackMemory.build(load_corpus(), encoder)  # knows nothing of q-photo
    featurizer = Featurizer(encoder, memory, None, 8)
    graded = (
        GradedAnswer("Only oxygen from the soil.", 0.0, Verdict.INCORRECT),
        GradedAnswer("Light, water and carbon dioxide.", 1.0, Verdict.CORRECT),
        GradedAnswer("Water and light from the sun.", 0.5, Verdict.PARTIALLY_CORRECT),
    )
    batch = featurizer(
        [make_request("Only oxygen from the soil."), make_request("Oxygen.", graded=graded)]
    ).batch
    assert batch.memory[0].eq(0).all()  # an unknown question without reviews: no evidence
    probe = batch.memory[1, KNN_DIM:]
    assert probe[:3].sum() == pytest.approx(1.0, abs=1e-5)
    assert probe[2] == probe[:3].max()  # closest to the incorrect review
    assert 0.0 <= float(probe[3]) < 0.5
    # A worker grades an activity in many batches: its review probe is fitted once.
    cached = dict(featurizer._review_probes)
    featurizer([make_request("Light.", graded=graded)])
    assert len(featurizer._review_probes) == 1
    assert next(iter(featurizer._review_probes.values())) is next(iter(cached.values()))


def test_format_3_model_reads_the_knn_part_of_the_memory(tmp_path):
    """A model saved before the probe (no probe_dim) loads and reads the kNN statistics only."""
    import dataclasses
    import json

    from ml.inference import FeedbackModel
    from ml.models.student import StudentModel
    from ml.train import student_config_for

    encoder = HashingTextEncoder(16)
    corpus = load_corpus()
    cfg = student_config_for(encoder, image_dim=8, d_model=32, n_heads=2, n_layers=1)
    cfg = dataclasses.replace(cfg, memory_dim=KNN_DIM, probe_dim=0)
    memory = FeedbackMemory.build(corpus, encoder)
    FeedbackModel(StudentModel(cfg), Featurizer(encoder, memory, None, 8), "v3").save(tmp_path)
    conf = json.loads((tmp_path / "student_config.json").read_text())
    del conf["probe_dim"]  # not in the configs of earlier formats
    (tmp_path / "student_config.json").write_text(json.dumps(conf))
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps(meta | {"format_version": 3}))
    loaded = FeedbackModel.load(tmp_path, text_encoder=encoder)
    assert loaded.model.cfg.memory_dim == KNN_DIM and loaded.model.cfg.probe_dim == 0
    batch = loaded.featurizer([corpus[0].to_request()]).batch
    assert batch.memory.shape[1] > KNN_DIM and batch.memory[0, KNN_DIM:].abs().sum() > 0
    knn_only = copy.copy(batch)
    knn_only.memory = batch.memory[:, :KNN_DIM]
    with torch.inference_mode():
        full, prefix = loaded.model(batch), loaded.model(knn_only)
    assert torch.allclose(full.verdict_logits, prefix.verdict_logits)
    (res,) = loaded.predict_batch([corpus[0].to_request()])
    assert 0.0 <= res.score <= corpus[0].max_score


def test_the_probe_reaches_the_heads_only_for_answers_with_graded_evidence():
    from ml.models.student import StudentModel
    from ml.train import student_config_for

    encoder = HashingTextEncoder(16)
    cfg = student_config_for(encoder, image_dim=8, d_model=32, n_heads=2, n_layers=1)
    assert cfg.memory_dim == KNN_DIM and cfg.probe_dim == PROBE_DIM
    model = StudentModel(cfg).eval()
    torch.nn.init.normal_(model.probe_head.weight)  # as if trained
    corpus = load_corpus()
    featurizer = Featurizer(encoder, FeedbackMemory.build(corpus, encoder), None, 8)
    batch = featurizer([corpus[0].to_request(), corpus[0].to_request()]).batch
    batch.memory_mask[1] = False  # the second one is graded as a new question
    other = copy.copy(batch)
    other.memory = batch.memory.clone()
    other.memory[:, KNN_DIM:] = torch.tensor([0.05, 0.05, 0.9, 0.0])  # the probe says incorrect
    with torch.inference_mode():
        a, b = model(batch), model(other)
    assert not torch.allclose(a.verdict_logits[0], b.verdict_logits[0])
    assert torch.allclose(a.verdict_logits[1], b.verdict_logits[1])


@pytest.mark.slow
def test_minilm_layer_features_come_from_the_same_pass_and_the_cache(tmp_path):
    from ml.models.encoders import MiniLMTextEncoder

    texts = ["Routers forward packets by their routing table.", "A default route.", ""]
    enc = MiniLMTextEncoder()
    layers = enc.layer_features(texts)
    n_layers = enc.model.config.num_hidden_layers
    assert enc.layer_dim == n_layers * enc.dim and layers.shape == (3, enc.layer_dim)
    blocks = layers.view(3, n_layers, enc.dim)
    assert torch.allclose(blocks.norm(dim=-1), torch.ones(3, n_layers), atol=1e-5)
    assert torch.allclose(blocks[:, -1], enc.encode(texts), atol=1e-6)  # the sentence embedding
    # Encoding keeps the layer features of the same pass, and the disk cache keeps both.
    other = MiniLMTextEncoder()
    other.encode(texts)
    assert set(texts) <= other._layers.keys()
    assert torch.allclose(other.layer_features(texts), layers, atol=1e-6)
    other.save_cache(tmp_path / "minilm.pt")
    cached = MiniLMTextEncoder()
    cached.load_cache(tmp_path / "minilm.pt")
    assert set(texts) <= cached._layers.keys() and set(texts) <= cached._cache.keys()
    assert torch.equal(cached.layer_features(texts), other.layer_features(texts))


def test_layer_features_of_more_texts_than_the_cache_holds():
    enc = HashingTextEncoder(16)
    enc.layer_cache_size = 3
    texts = [f"answer number {i} about routers" for i in range(10)]
    layers = enc.layer_features(texts)
    assert layers.shape == (10, 16) and len(enc._layers) == 3
    assert torch.equal(enc.layer_features(texts[:1])[0], layers[0])
