from __future__ import annotations

import json

import pytest

from ml.data import load_corpus, load_jsonl, load_saf, write_jsonl
from ml.data.saf import rubric_from_reference
from ml.errors import DatasetError
from ml.types import Verdict


def test_rubric_from_german_points():
    crits = rubric_from_reference("Erst A tun (0.25 P) und B zeigen (0,5 P). Rest.", "q")
    assert [c.points for c in crits] == [0.25, 0.5]
    assert crits[0].description == "Erst A tun"
    assert crits[1].description == "und B zeigen"
    assert rubric_from_reference("no points here", "q") == ()


def test_load_saf_counts_and_fields(saf_root):
    train_de = load_saf("training", "de", saf_root)
    assert len(train_de) == 1534
    assert len({e.question_id for e in train_de}) == 6
    ex = train_de[0]
    assert ex.rubric and all(c.points > 0 for c in ex.rubric)
    assert 0.0 <= ex.score <= 1.0 and isinstance(ex.verdict, Verdict) and ex.feedback
    unseen_en = load_saf("unseen_answers", "en", saf_root)
    assert len(unseen_en) == 252
    assert len({e.question_id for e in unseen_en}) == 18  # keyed by file: XML ids collide
    assert unseen_en[0].rubric == ()


def test_load_saf_errors(tmp_path):
    with pytest.raises(DatasetError):
        load_saf("training", "fr", tmp_path)
    with pytest.raises(DatasetError):
        load_saf("training", "en", tmp_path)


def test_jsonl_round_trip(tmp_path):
    corpus = load_corpus()
    assert {e.language for e in corpus} == {"en", "zh"}
    assert all(e.rubric and e.criteria_met for e in corpus)
    path = tmp_path / "data.jsonl"
    write_jsonl(corpus[:5], path)
    assert load_jsonl(path) == corpus[:5]


def test_jsonl_bad_row(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "x"}) + "\n")
    with pytest.raises(DatasetError, match="bad.jsonl:1"):
        load_jsonl(path)
