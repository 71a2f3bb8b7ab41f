from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ml.cli import ml_group
from ml.errors import ModelNotFoundError
from ml.registry import ModelRegistry


def _fake_model_dir(path, name):
    path.mkdir(parents=True)
    (path / "meta.json").write_text(json.dumps({"name": name, "format_version": 1}))
    (path / "metrics.json").write_text(json.dumps({"acc": 1}))
    return path


def test_registry_list_activate_rollback(tmp_path):
    reg = ModelRegistry(tmp_path / "reg")
    assert reg.active() is None and reg.list() == []
    v1 = reg.register(_fake_model_dir(tmp_path / "a", "a"), activate=True)
    v2 = reg.register(_fake_model_dir(tmp_path / "b", "b"))
    assert (v1, v2) == ("v0001", "v0002")
    assert reg.active() == v1
    reg.set_active(v2)
    assert reg.active_path() == tmp_path / "reg" / "v0002"
    assert [m["active"] for m in reg.list()] == [False, True]
    assert reg.list()[0]["metrics"] == {"acc": 1}
    assert reg.rollback() == v1 and reg.active() == v1
    with pytest.raises(ModelNotFoundError):
        reg.rollback()
    with pytest.raises(ModelNotFoundError):
        reg.set_active("v9999")
    with pytest.raises(ModelNotFoundError):
        reg.register(tmp_path / "missing")


@pytest.mark.slow
def test_cli_distill_export_evaluate(tmp_path, saf_root, monkeypatch):
    """distill (hashing encoder, 2 epochs, corpus) -> export -> registry -> evaluate baseline."""
    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(
        ml_group,
        ["distill", "--data", "corpus", "--encoder", "hashing", "--epochs", "2", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    for name in ("meta.json", "config.json", "metrics.json", "MODEL_CARD.md", "student.pt"):
        assert (out / name).is_file()
    res = runner.invoke(
        ml_group, ["export", "--model", str(out), "--registry", str(tmp_path / "r"), "--activate"]
    )
    assert res.exit_code == 0, res.output
    assert ModelRegistry(tmp_path / "r").active() == "v0001"
    res = runner.invoke(
        ml_group,
        ["evaluate", "--model", "baseline", "--languages", "de", "--no-bertscore"],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output[res.output.index("{") :])
    assert data["unseen_answers"]["de"]["n"] == 271
    assert 0 <= data["unseen_answers"]["de"]["accuracy"] <= 100


@pytest.mark.slow
def test_cli_build_default_corpus_only(tmp_path):
    """The `make model` path (corpus only, 2 epochs): a format-3 MiniLM model is built,
    registered as active, loads and grades a typed answer."""
    from ml.data import load_corpus
    from ml.inference import FORMAT_VERSION, FeedbackModel

    out, reg = tmp_path / "default", tmp_path / "registry"
    res = CliRunner().invoke(
        ml_group,
        ["build-default", "--no-saf", "--epochs", "2", "--out", str(out), "--registry", str(reg)],
    )
    assert res.exit_code == 0, res.output
    assert ModelRegistry(reg).active() == "v0001"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION and meta["text_encoder"]["kind"] == "minilm"
    model = FeedbackModel.load(ModelRegistry(reg).active_path())
    assert model.model.cfg.trained_media == [] and model.cross is None
    (result,) = model.predict_batch([load_corpus()[0].to_request(with_learner=False)])
    assert 0 <= result.score <= result.max_score and result.feedback
