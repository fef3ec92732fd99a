import math

import pytest
import torch

from blockprune_pl.distill import (
    attention_distillation,
    hidden_distillation,
    logit_distillation,
    replace_tokens,
)


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


def test_attention_distillation_is_the_kl_per_query_row_over_real_queries():
    # one layer, one head, three tokens, the last one padding (a key no query attends to)
    t = torch.tensor([[[[0.5, 0.5, 0.0], [0.9, 0.1, 0.0], [0.3, 0.7, 0.0]]]])
    s = torch.tensor([[[[0.25, 0.75, 0.0], [0.9, 0.1, 0.0], [0.99, 0.01, 0.0]]]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    row0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    expected = (row0 + 0.0) / 2  # the padded query row (2) does not count
    assert float(attention_distillation((s,), (t,), mask)) == pytest.approx(expected)
    assert float(attention_distillation((t,), (t,), mask)) == pytest.approx(0, abs=1e-7)
    # two layers: their mean
    both = attention_distillation((s, t), (t, t), mask)
    assert float(both) == pytest.approx(expected / 2)


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


def test_attention_term_teaches_a_cut_students_attention_to_attend_as_the_teachers():
    import copy

    from transformers import BertConfig, BertForSequenceClassification

    from blockprune_pl.models.encoder import expose_attention_probs

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    teacher = BertForSequenceClassification(config)
    with torch.no_grad():  # sharp attention patterns, as a trained model has
        for layer in teacher.bert.encoder.layer:
            layer.attention.self.query.weight.mul_(8)
            layer.attention.self.key.weight.mul_(8)
    student = copy.deepcopy(teacher)
    for model in (teacher, student):
        expose_attention_probs(model)
    teacher.eval()
    queries = [layer.attention.self.query.weight for layer in student.bert.encoder.layer]
    cut = torch.ones_like(queries[0])
    cut[::2] = 0  # every other query row removed, as a structured cut does
    ids = torch.randint(5, 200, (8, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)

    def loss():
        with torch.no_grad():
            t = teacher(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
        s = student(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
        return attention_distillation(s, t, mask.float())

    with torch.no_grad():
        for q in queries:
            q.mul_(cut)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    first = float(loss())
    for _ in range(40):
        opt.zero_grad()
        loss().backward()
        opt.step()
        with torch.no_grad():
            for q in queries:
                q.mul_(cut)  # the cut rows stay removed
    assert first > 0.05
    assert float(loss()) < 0.5 * first
