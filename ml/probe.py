"""Per-question linear probes over the graded answers to one question.

The kNN statistics (``ml.features.knn_stats``) vote with the few nearest graded answers; a linear
model fitted on all of them learns which directions of the embedding space separate this
question's correct answers from its partial and wrong ones (a learned, question-specific
metric). Probes are tiny (one multinomial logistic regression for the verdict, one ridge
regression for the score) and are fitted on the fly: once per question from the model's memory,
once per activity from an instructor's reviews. Since format 6 their inputs are the encoder's
layer features (``TextEncoder.layer_features``: every layer's mean pooling, standardised over
the answers the probe is fitted on); formats 4-5 fitted them on the sentence embeddings.

The student adds a learned function of the probe's output to its verdict and score logits
(``StudentConfig.probe_dim``). It must see in training what it sees at inference - a probe that
never saw the answer it grades - so training rows get probes cross-fitted on the other folds of
their question (``FeedbackMemory.probe``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

PROBE_DIM = 4  # verdict probabilities (3) + score (0..1)
# Inverse L2 strength (sklearn's C) of the verdict probe and ridge strength of the score probe.
PROBE_C = 10.0
RIDGE_ALPHA = 1.0
MAX_ITER = 60
# On standardised layer features (format 6): C of the verdict probe, and the ridge strength per
# input dimension (a standardised answer has squared norm ~ the width, a sentence embedding 1).
LAYER_PROBE_C = 0.1
STD_FLOOR = 1e-3  # features (nearly) constant over the answers are zeroed, not blown up


@dataclass(frozen=True)
class LinearProbe:
    weight: Tensor  # [D, 3]
    bias: Tensor  # [3]
    score_weight: Tensor  # [D]
    score_bias: float

    def __call__(self, answers: Tensor) -> Tensor:
        """answers [..., D] -> [..., PROBE_DIM]: verdict probabilities, score clipped to 0..1."""
        p = (answers @ self.weight + self.bias).softmax(-1)
        s = (answers @ self.score_weight + self.score_bias).clamp(0.0, 1.0)
        return torch.cat([p, s[..., None]], -1)


def fit_probe(
    answers: Tensor, verdicts: Tensor, scores: Tensor, *, standardize: bool = False
) -> LinearProbe | None:
    """Fit on ``answers`` [n, D], ``verdicts`` [n] (index into VERDICTS) and ``scores`` [n] in
    0..1; None when there is nothing to fit (n == 0). Deterministic. With ``standardize`` every
    input is first scaled to zero mean and unit variance over ``answers`` (folded into the
    returned weights) and the penalties are those of ``LAYER_PROBE_C``."""
    n, d = answers.shape
    if n == 0:
        return None
    # Workers predict under inference mode, whose tensors cannot enter autograd: fit on copies.
    with torch.inference_mode(False), torch.enable_grad():
        x = answers.detach().float().clone()
        y = verdicts.detach().long().clone()
        s = scores.detach().float().clone()
        shift, scale = torch.zeros(d), torch.ones(d)
        if standardize:
            shift, scale = x.mean(0), x.std(0, unbiased=False).clamp_min(STD_FLOOR)
            x = (x - shift) / scale
        c, alpha = (LAYER_PROBE_C, RIDGE_ALPHA * d) if standardize else (PROBE_C, RIDGE_ALPHA)
        # Verdict: minimise sum(log loss) + |W|^2 / (2C), the objective of sklearn's
        # LogisticRegression(C) (intercept unpenalised), by L-BFGS from zero.
        w = torch.zeros(d, 3, requires_grad=True)
        b = torch.zeros(3, requires_grad=True)
        opt = torch.optim.LBFGS(
            [w, b], lr=1.0, max_iter=MAX_ITER, line_search_fn="strong_wolfe", tolerance_grad=1e-5
        )

        def closure() -> Tensor:
            opt.zero_grad()
            logits = x @ w + b
            loss = F.cross_entropy(logits, y, reduction="sum") + (w * w).sum() / (2 * c)
            loss.backward()
            return loss

        opt.step(closure)
        w, b = w.detach(), b.detach()
    # Score: ridge regression with an unpenalised intercept (sklearn's Ridge(alpha)), solved in
    # its dual form since there are fewer answers than dimensions.
    x_mean, s_mean = x.mean(0), s.mean()
    xc = x - x_mean
    gram = xc @ xc.T + alpha * torch.eye(n)
    sw = xc.T @ torch.linalg.solve(gram, s - s_mean)
    sb = float(s_mean - x_mean @ sw)
    # Fold the standardisation in: ((a - shift) / scale) @ w == a @ (w / scale) - z @ w.
    z = shift / scale
    return LinearProbe(w / scale[:, None], b - z @ w, sw / scale, sb - float(z @ sw))


@dataclass(frozen=True)
class ClassProbe:
    """A probe over where answers stand among their class's answers (``ml.features``' peer
    evidence), fitted on the answers to every training question of one language: it grades
    answers to questions it never saw. Standardised inputs, as the features differ in scale."""

    mean: Tensor  # [F]
    std: Tensor  # [F]
    probe: LinearProbe

    def __call__(self, x: Tensor) -> Tensor:
        """x [..., F] -> [..., PROBE_DIM]."""
        return self.probe((x - self.mean) / self.std)


def fit_class_probe(x: Tensor, verdicts: Tensor, scores: Tensor) -> ClassProbe | None:
    if x.shape[0] < 2:
        return None
    mean, std = x.mean(0), x.std(0).clamp_min(1e-4)
    probe = fit_probe((x - mean) / std, verdicts, scores)
    return None if probe is None else ClassProbe(mean, std, probe)


def class_probe_state(probes: dict[str, ClassProbe]) -> dict[str, Tensor]:
    """Flat tensors for ``torch.save`` (language-prefixed keys)."""
    out: dict[str, Tensor] = {}
    for lang, p in probes.items():
        out |= {
            f"{lang}.mean": p.mean,
            f"{lang}.std": p.std,
            f"{lang}.weight": p.probe.weight,
            f"{lang}.bias": p.probe.bias,
            f"{lang}.score_weight": p.probe.score_weight,
            f"{lang}.score_bias": torch.tensor(p.probe.score_bias),
        }
    return out


def class_probes_from_state(state: dict[str, Tensor]) -> dict[str, ClassProbe]:
    langs = {k.split(".")[0] for k in state}
    return {
        lang: ClassProbe(
            state[f"{lang}.mean"],
            state[f"{lang}.std"],
            LinearProbe(
                state[f"{lang}.weight"],
                state[f"{lang}.bias"],
                state[f"{lang}.score_weight"],
                float(state[f"{lang}.score_bias"]),
            ),
        )
        for lang in sorted(langs)
    }
