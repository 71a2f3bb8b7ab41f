"""KD loss against numbers worked out by hand (not by calling the code under test)."""

from __future__ import annotations

import math

import pytest
import torch

from ml.losses import distillation_loss, kd_kl, soft_cross_entropy, two_hot


def test_kd_kl_single_head_temperature_one():
    # teacher p = [0.8, 0.2], student logits [0, 0] -> q = [0.5, 0.5]
    # KL = 0.8 ln(0.8/0.5) + 0.2 ln(0.2/0.5) = 0.376003 - 0.183258 = 0.192745
    loss = kd_kl(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.8, 0.2]]), 1.0, teacher_is_probs=True)
    assert float(loss) == pytest.approx(0.192745, abs=1e-5)


def test_distillation_loss_two_heads_with_temperature_and_lambdas():
    # T = 2.
    # head "verdict": teacher logits [ln 4, 0] -> softmax([ln 2, 0]) = [2/3, 1/3];
    #   student logits [0, 0] -> [1/2, 1/2];
    #   KL = 2/3 ln(4/3) + 1/3 ln(2/3) = 0.191788 - 0.135155 = 0.056633; * T^2 = 0.226532
    # head "score": teacher probs [0.8, 0.2] -> p^(1/2) renormalised = [2/3, 1/3];
    #   student logits [0, 2 ln 2] -> softmax([0, ln 2]) = [1/3, 2/3];
    #   KL = 2/3 ln 2 + 1/3 ln(1/2) = ln(2)/3 = 0.231049; * T^2 = 0.924196
    # total = 1.0 * 0.226532 + 0.5 * 0.924196 = 0.688630
    student = {
        "verdict": torch.tensor([[0.0, 0.0]]),
        "score": torch.tensor([[0.0, 2 * math.log(2)]]),
    }
    teacher_verdict = torch.tensor([[math.log(4), 0.0]])
    teacher_score = torch.tensor([[0.8, 0.2]])
    verdict_part = distillation_loss(
        student, {"verdict": teacher_verdict}, {"verdict": 1.0}, temperature=2.0
    )
    assert float(verdict_part) == pytest.approx(0.226532, abs=1e-5)
    score_part = distillation_loss(
        student, {"score": teacher_score}, {"score": 0.5}, temperature=2.0, teacher_is_probs=True
    )
    assert float(score_part) == pytest.approx(0.5 * 0.924196, abs=1e-5)
    assert float(verdict_part + score_part) == pytest.approx(0.688630, abs=1e-5)


def test_kd_masks_rows_and_skips_zero_lambda():
    s = torch.tensor([[0.0, 0.0], [5.0, -5.0]])
    t = torch.tensor([[0.8, 0.2], [0.8, 0.2]])
    masked = kd_kl(s, t, 1.0, teacher_is_probs=True, mask=torch.tensor([True, False]))
    assert float(masked) == pytest.approx(0.192745, abs=1e-5)
    zero = distillation_loss({"v": s}, {"v": t}, {"v": 0.0}, teacher_is_probs=True)
    assert float(zero) == 0.0


def test_kd_gradient_vanishes_when_student_matches_teacher():
    s = torch.tensor([[1.0, 2.0, 0.5]], requires_grad=True)
    loss = kd_kl(s, s.detach().clone(), 3.0)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(s.grad, torch.zeros(3), atol=1e-6)


def test_two_hot_and_soft_ce():
    # 0.25 over 5 bins (0, .25, .5, .75, 1) -> all mass on bin 1; 0.6 -> 0.6 on .5, 0.4 on .75
    th = two_hot(torch.tensor([0.25, 0.6]), 5)
    assert th[0].tolist() == pytest.approx([0, 1, 0, 0, 0])
    assert th[1].tolist() == pytest.approx([0, 0, 0.6, 0.4, 0], abs=1e-6)
    # uniform logits over 2 classes: CE = ln 2 for any target distribution
    ce = soft_cross_entropy(torch.zeros(1, 2), torch.tensor([[0.3, 0.7]]))
    assert float(ce) == pytest.approx(math.log(2), abs=1e-6)
