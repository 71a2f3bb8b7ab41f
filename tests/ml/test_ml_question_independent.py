"""Question-independent evidence: the features exist, are computed per answer without any graded
answers to the question, and make a never-seen question gradable (tiny config, hashing encoder).
"""

from __future__ import annotations

import pytest
import torch

from ml.data import load_corpus
from ml.features import QI_DIM, Featurizer, qi_vector
from ml.inference import FeedbackModel
from ml.models.encoders import HashingTextEncoder
from ml.train import TrainConfig, student_config_for, train_student
from ml.types import FeedbackRequest, RubricCriterion

TINY = dict(d_model=32, n_heads=2, n_layers=1, retrieval_dim=16, dropout=0.0)

ROUTER = dict(
    question="Why does a router need a default route?",
    reference_answer=(
        "A default route tells the router where to forward packets whose destination matches no "
        "other entry in its routing table, usually towards the gateway to the Internet."
    ),
    rubric=(RubricCriterion("r1", "Says packets with no matching route are forwarded", 4.0),),
    max_score=4.0,
    question_id="net-default-route",  # not in the corpus: a new question for the model
)
PARAPHRASE = (
    "Packets whose destination matches no other entry in the routing table are forwarded along "
    "the default route, usually to the Internet gateway."
)
UNRELATED = "Plants make glucose from sunlight, water and carbon dioxide."


@pytest.fixture(scope="module")
def qi_model() -> FeedbackModel:
    corpus = load_corpus()
    assert all(e.question_id != ROUTER["question_id"] for e in corpus)
    encoder = HashingTextEncoder(48)
    cfg = student_config_for(encoder, image_dim=8, **TINY)
    assert cfg.qi_dim == QI_DIM and cfg.hide_text_when_unseen
    model, featurizer, _ = train_student(
        corpus, encoder, TrainConfig(epochs=40, lr=3e-3, seed=0, memory_dropout=0.5), cfg
    )
    return FeedbackModel(model, featurizer, "tiny-qi")


def test_question_independent_features_exist():
    enc = HashingTextEncoder(48)
    reqs = [FeedbackRequest(answer_text=t, **ROUTER) for t in (PARAPHRASE, UNRELATED, "")]
    batch = Featurizer(enc)(reqs).batch  # no memory: nothing known about the question
    assert batch.qi is not None and batch.qi.shape == (3, QI_DIM)
    assert batch.crit_qi is not None and batch.crit_qi.shape == (3, 1, 2)
    para, unrel, empty = batch.qi
    assert float(para[0]) > float(unrel[0])  # answer <-> reference cosine
    assert float(para[10]) > float(unrel[10])  # content-word recall of the reference
    assert float(batch.crit_qi[0, 0, 1]) > float(batch.crit_qi[1, 0, 1])  # answer <-> criterion
    assert torch.count_nonzero(empty) == 0
    # Negation cue: "not forwarded" contradicts a reference without a negation.
    plain = FeedbackRequest("Where do packets go?", "Packets are forwarded to the gateway.")

    def negation_mismatch(answer: str) -> float:
        zero = torch.zeros(48)
        none = torch.zeros(0, 48)
        return float(qi_vector(answer, plain, zero, zero, zero, none, none, none, none)[17])

    assert negation_mismatch("Packets are not forwarded.") == 1.0
    assert negation_mismatch("Packets are forwarded.") == 0.0


def test_paraphrase_to_new_question_beats_unrelated_answer(qi_model):
    para, unrel = qi_model.predict_batch(
        [FeedbackRequest(answer_text=t, **ROUTER) for t in (PARAPHRASE, UNRELATED)]
    )
    assert para.score > unrel.score + 0.5  # on a 0..4 scale
    assert para.verdict.index < unrel.verdict.index  # correct < partially < incorrect
    assert para.criteria[0].coverage > unrel.criteria[0].coverage


def test_format_1_model_directories_still_load(tmp_path):
    """A model saved before the question-independent path (no qi_dim in its config, format 1)."""
    import json

    from ml.models.student import StudentModel

    enc = HashingTextEncoder(16)
    cfg = student_config_for(enc, image_dim=8, qi_dim=0, hide_text_when_unseen=False, **TINY)
    FeedbackModel(StudentModel(cfg), Featurizer(enc), "old").save(tmp_path)
    conf = json.loads((tmp_path / "student_config.json").read_text())
    del conf["qi_dim"], conf["hide_text_when_unseen"]
    (tmp_path / "student_config.json").write_text(json.dumps(conf))
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps(meta | {"format_version": 1}))
    loaded = FeedbackModel.load(tmp_path)
    assert loaded.model.cfg.qi_dim == 0
    (res,) = loaded.predict_batch([FeedbackRequest(answer_text=PARAPHRASE, **ROUTER)])
    assert 0.0 <= res.score <= 4.0


def test_token_alignment_features():
    from ml.features import ALIGN_DIM, QI_BASE_DIM, alignment_vector

    enc = HashingTextEncoder(64)
    ref, question = enc.token_states([ROUTER["reference_answer"], ROUTER["question"]])
    same, para, unrel, empty = (
        alignment_vector(t, ref, question)
        for t in enc.token_states([ROUTER["reference_answer"], PARAPHRASE, UNRELATED, ""])
    )
    assert float(same[0]) == pytest.approx(1.0) and float(same[1]) == pytest.approx(1.0)
    assert float(para[1]) > float(unrel[1])  # recall: reference tokens the answer matches
    assert float(para[3]) > float(unrel[3])  # share of the reference covered
    assert torch.count_nonzero(empty) == 0
    batch = Featurizer(enc)([FeedbackRequest(answer_text=PARAPHRASE, **ROUTER)]).batch
    assert torch.allclose(batch.qi[0, QI_BASE_DIM : QI_BASE_DIM + ALIGN_DIM], para)


def test_format_2_model_reads_the_prefix_of_the_evidence(tmp_path):
    """A format-2 model (20 evidence features) still loads and grades."""
    import json

    from ml.features import QI_BASE_DIM
    from ml.models.student import StudentModel

    enc = HashingTextEncoder(16)
    cfg = student_config_for(enc, image_dim=8, qi_dim=QI_BASE_DIM, **TINY)
    FeedbackModel(StudentModel(cfg), Featurizer(enc), "v2").save(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps(meta | {"format_version": 2}))
    loaded = FeedbackModel.load(tmp_path)
    assert loaded.model.cfg.qi_dim == QI_BASE_DIM
    (res,) = loaded.predict_batch([FeedbackRequest(answer_text=PARAPHRASE, **ROUTER)])
    assert 0.0 <= res.score <= 4.0


def test_token_states_of_more_texts_than_the_cache_holds():
    enc = HashingTextEncoder(16)
    enc.token_cache_size = 3
    texts = [f"answer number {i} about routers" for i in range(10)]
    states = enc.token_states(texts)
    assert len(states) == 10 and len(enc._tokens) == 3
    assert all(s.shape == (5, 16) for s in states)
    assert torch.equal(enc.token_states(texts[:1])[0], states[0])


def test_where_an_answer_stands_among_its_classmates():
    from ml.features import ALIGN_DIM, MIN_PEERS, PEER_DIM, QI_BASE_DIM, peer_vector

    enc = HashingTextEncoder(64)
    class_answers = [
        PARAPHRASE,
        "The default route forwards packets that match no routing table entry.",
        "Packets with no matching entry go to the gateway.",
        "It makes the router faster.",
        UNRELATED,
        "A router needs it to boot.",
    ]
    reqs = [
        FeedbackRequest(answer_text=t, peer_answers=[p for p in class_answers if p != t], **ROUTER)
        for t in class_answers
    ]
    peer = Featurizer(enc)(reqs).batch.qi[:, QI_BASE_DIM + ALIGN_DIM :]  # [6, PEER_DIM]
    assert peer.shape == (6, PEER_DIM) and bool((peer[:, 0] == 1).all())
    # Cosine to the reference, within the class: the paraphrase ranks first, the unrelated
    # answer last, whatever the absolute cosines are.
    assert float(peer[0, 2]) == 1.0 and float(peer[4, 2]) == 0.0
    assert float(peer[0, 1]) > 0 > float(peer[4, 1])
    # Too few classmates, or no answer at all: nothing is said.
    few = FeedbackRequest(
        answer_text=PARAPHRASE, peer_answers=class_answers[: MIN_PEERS - 1], **ROUTER
    )
    empty = FeedbackRequest(answer_text="", peer_answers=class_answers, **ROUTER)
    alone = Featurizer(enc)([few, empty]).batch.qi[:, QI_BASE_DIM + ALIGN_DIM :]
    assert torch.count_nonzero(alone) == 0
    a = enc.encode([PARAPHRASE])[0]
    assert torch.count_nonzero(peer_vector(a, 0, enc.encode(class_answers), torch.ones(6), a)) == 0


def test_classmates_are_other_answers_to_the_same_question():
    from ml.data.examples import classmates
    from ml.types import MAX_PEER_ANSWERS

    corpus = load_corpus()
    peers = classmates(corpus, seed=1)
    for e, p in zip(corpus, peers, strict=True):
        same = {x.answer_text for x in corpus if x.question_id == e.question_id}
        assert e.answer_text not in p and set(p) <= same and len(p) <= MAX_PEER_ANSWERS
        assert len(p) == len(same - {e.answer_text})  # the corpus has few answers per question
    assert classmates(corpus, seed=1) == peers  # seeded
    dropped = classmates(corpus, seed=1, dropout=0.5)
    assert 0 < sum(not p for p in dropped) < len(corpus)


def test_class_probe_speaks_for_new_questions_only(qi_model, tmp_path):
    from dataclasses import replace

    from ml.features import CLASS_INPUT, CLASS_PROBE_DIM, PEER_FLAG, fit_class_probes
    from ml.probe import fit_class_probe

    probes = qi_model.featurizer.class_probes
    assert "en" in probes  # fitted on the corpus's English questions
    corpus = load_corpus()
    seen = corpus[0].to_request(with_learner=False)
    classmates_of_seen = [e.answer_text for e in corpus if e.question_id == seen.question_id]
    class_answers = [PARAPHRASE, UNRELATED, "It is faster.", "Packets go to the gateway.", "No."]
    reqs = [
        FeedbackRequest(answer_text=PARAPHRASE, peer_answers=class_answers[1:], **ROUTER),
        FeedbackRequest(answer_text=PARAPHRASE, **ROUTER),  # no classmates' answers yet
        replace(seen, peer_answers=classmates_of_seen[1:]),
    ]
    batch = qi_model.featurizer(reqs).batch
    assert batch.class_probe.shape == (3, CLASS_PROBE_DIM)
    assert torch.count_nonzero(batch.class_probe[0, :3]) == 3  # English slot
    assert torch.count_nonzero(batch.class_probe[1]) == 0
    with torch.inference_mode():
        out = qi_model.model(batch)
        silent = qi_model.model(replace(batch, class_probe=torch.zeros_like(batch.class_probe)))
    assert not torch.allclose(out.verdict_logits[0], silent.verdict_logits[0])  # new question
    assert torch.allclose(out.verdict_logits[2], silent.verdict_logits[2])  # seen: memory rules

    # Training rows see probes fitted without their own question.
    gen = torch.Generator().manual_seed(0)
    qi = torch.randn(12, QI_DIM, generator=gen)
    qi[:, PEER_FLAG] = 1.0
    qids = [q for q in "abcd" for _ in range(3)]
    verdicts = torch.tensor([0, 1, 2] * 4)
    fitted, cross = fit_class_probes(qi, verdicts, verdicts / 2.0, ["en"] * 12, qids)
    assert cross.shape == (12, CLASS_PROBE_DIM) and torch.count_nonzero(cross[:, 3:]) == 0
    x = qi[:, CLASS_INPUT]
    without_a = fit_class_probe(x[3:], verdicts[3:], verdicts[3:] / 2.0)
    assert torch.allclose(cross[:3, :3], without_a(x[:3])[:, :3].clamp_min(1e-4).log())
    assert not torch.allclose(cross[:3, :3], fitted["en"](x[:3])[:, :3].clamp_min(1e-4).log())

    # They travel with the model.
    qi_model.save(tmp_path / "m")
    loaded = FeedbackModel.load(tmp_path / "m", "cpu")
    assert set(loaded.featurizer.class_probes) == set(probes)
    assert torch.equal(loaded.featurizer(reqs).batch.class_probe, batch.class_probe)
