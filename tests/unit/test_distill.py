import math

import pytest
import torch

from blockprune_pl.distill import hidden_distillation, logit_distillation


def test_kd_loss_matches_a_hand_computation():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = torch.tensor([[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    temp = 2.0
    total = 0.0
    for srow, trow in zip(s.tolist(), t.tolist()):
        zs = sum(math.exp(v / temp) for v in srow)
        zt = sum(math.exp(v / temp) for v in trow)
        for a, b in zip(srow, trow):
            p, q = math.exp(b / temp) / zt, math.exp(a / temp) / zs
            total += p * math.log(p / q)
    expected = temp**2 * total / 2
    assert float(logit_distillation(s, t, temp, regression=False)) == pytest.approx(expected)
    assert float(logit_distillation(t, t, temp, regression=False)) == pytest.approx(0, abs=1e-7)


def test_regression_distillation_is_mse():
    s, t = torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [1.0]])
    assert float(logit_distillation(s, t, 2.0, regression=True)) == pytest.approx((1 + 4) / 2)


def test_hidden_distillation_ignores_padding():
    s = (torch.zeros(1, 3, 2),)
    t = (torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]]),)
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert float(hidden_distillation(s, t, mask)) == pytest.approx((1 + 9) / 2)
