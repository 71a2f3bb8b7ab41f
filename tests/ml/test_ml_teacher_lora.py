"""LoRA teacher pipeline on a tiny random Llama with SmolLM2's real tokenizer (from the GGUF)."""

from __future__ import annotations

import os

import pytest

from ml.data import load_corpus
from ml.teacher.smollm import SmolTeacher, TeacherConfig, finetune, gguf_path, target_text


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    pytest.importorskip("peft")
    pytest.importorskip("gguf")
    try:
        src = gguf_path()
    except Exception as exc:  # noqa: BLE001 - optional package
        if os.environ.get("CI"):  # `make install` installs it: CI must exercise the teacher
            raise
        pytest.skip(str(exc))
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
    )
    out = tmp_path_factory.mktemp("tiny-base")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.slow
def test_finetune_label_generate(tiny_base, tmp_path):
    examples = load_corpus()[:4]
    assert target_text(examples[0]).startswith("Verdict: correct\nScore: 1.00\nFeedback: ")
    cfg = TeacherConfig(base=str(tiny_base), max_steps=2, batch_size=2, max_length=128)
    metrics = finetune(examples, cfg, tmp_path / "adapter")
    assert len(metrics["loss"]) == 2
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    teacher = SmolTeacher.load(tmp_path / "adapter")
    labels = teacher.label(examples[:2])
    for lab in labels:
        assert sum(lab.verdict_probs) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 <= lab.score <= 1.0
    score, feedback = teacher.generate(examples[0], max_new_tokens=4)
    assert score is None or 0.0 <= score <= 1.0
    assert isinstance(feedback, str)
