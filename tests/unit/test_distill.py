import math

import pytest
import torch

from blockprune_pl.distill import hidden_distillation, logit_distillation, replace_tokens


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


def _pairs(rows: int = 64, length: int = 40):
    """[CLS]=101 ... [SEP]=102 ... [SEP] then padding 0, word ids from 1000 up."""
    g = torch.Generator().manual_seed(0)
    ids = torch.zeros(rows, length, dtype=torch.long)
    mask = torch.zeros(rows, length, dtype=torch.long)
    for r in range(rows):
        n = int(torch.randint(10, length, (1,), generator=g))
        ids[r, :n] = torch.randint(1000, 1100, (n,), generator=g)
        ids[r, 0], ids[r, n // 2], ids[r, n - 1] = 101, 102, 102
        mask[r, :n] = 1
    return ids, mask


def test_replace_tokens_changes_only_words_at_the_share_and_draws_from_the_batch():
    ids, mask = _pairs()
    special = torch.tensor([0, 101, 102])
    out = replace_tokens(ids, mask, 0.3, special, torch.Generator().manual_seed(1))
    words = mask.bool() & ~torch.isin(ids, special)
    assert torch.equal(out[~words], ids[~words])  # [CLS], [SEP] and padding untouched
    changed = (out != ids) & words
    # a replacement can draw the same word, so slightly under 0.3 of the words change
    assert 0.22 < changed.sum() / words.sum() < 0.32
    assert set(out[words].tolist()) <= set(ids[words].tolist())  # the batch's own words
    again = replace_tokens(ids, mask, 0.3, special, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)  # the same seed replaces the same tokens
    assert torch.equal(replace_tokens(ids, mask, 0.0, special, torch.Generator()), ids)
