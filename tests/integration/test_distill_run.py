from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from blockprune_pl import train
from tests.conftest import assert_same_state

RUN = [
    "prune.rate=4.0",
    "prune.phases.finetune=4",
    "prune.phases.penalty=4",
    "prune.phases.retrain=8",
    "prune.distill.enabled=true",
    "prune.distill.hidden_weight=0.1",
    "checkpoint_every_n_steps=4",
]


@pytest.mark.parametrize(
    "extra",
    ["prune.distill.augment=0.0", "prune.distill.augment=0.3", "prune.distill.attention_weight=1"],
)
def test_teacher_is_the_frozen_dense_model_and_resume_reloads_it(tiny_cfg, extra):
    # with augment, a resumed run must replace the same tokens to end bit-identical; with the
    # attention term, it must run the same (eager) attention as the run it resumes
    cfg = tiny_cfg(*RUN, extra)
    results = train.run(cfg)
    out = Path(cfg.output_dir)
    assert results["distill"]["enabled"] is True
    teacher = AutoModelForSequenceClassification.from_pretrained(out / "teacher")
    dense = torch.load(out / "checkpoints" / "step4.ckpt", weights_only=False)["state_dict"]
    for name, value in teacher.state_dict().items():
        assert torch.equal(value, dense[f"model.{name}"]), name  # unchanged since step 4
    final = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert not any("teacher" in k for k in final["state_dict"])  # not stored twice
    cb = next(v for k, v in final["callbacks"].items() if "DistillationCallback" in k)
    assert cb["teacher_path"] == str(out / "teacher")

    resumed = tiny_cfg(
        *RUN,
        extra,
        f"ckpt_path={out / 'checkpoints' / 'step12.ckpt'}",
        out="resumed",
    )
    train.run(resumed)
    again = torch.load(Path(resumed.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert_same_state(final["state_dict"], again["state_dict"])


def test_teacher_gets_no_gradient(tiny_cfg):
    from blockprune_pl.models import GlueModule

    seen = {}
    original = GlueModule._distilled_loss

    def spy(self, batch):
        loss = original(self, batch)
        loss.backward(retain_graph=True)
        seen["grads"] = [p.grad for p in self.teacher.parameters()]
        seen["frozen"] = all(not p.requires_grad for p in self.teacher.parameters())
        return loss

    GlueModule._distilled_loss = spy
    try:
        train.run(tiny_cfg(*RUN[:-1]))
    finally:
        GlueModule._distilled_loss = original
    assert seen["frozen"] and all(g is None for g in seen["grads"])


def test_augment_feeds_student_and_teacher_the_same_changed_words(tiny_cfg):
    from blockprune_pl.models import GlueModule

    seen = []
    original = GlueModule._distilled_loss

    def spy(self, batch):
        fed = {}
        forwards = {"student": self.model.forward, "teacher": self.teacher.forward}

        def recorder(who):
            def record(**inputs):
                fed[who] = inputs["input_ids"].clone()
                return forwards[who](**inputs)

            return record

        self.model.forward, self.teacher.forward = recorder("student"), recorder("teacher")
        try:
            return original(self, batch)
        finally:
            self.model.forward, self.teacher.forward = forwards["student"], forwards["teacher"]
            seen.append((batch["input_ids"].clone(), fed["student"], fed["teacher"]))

    GlueModule._distilled_loss = spy
    try:
        train.run(tiny_cfg(*RUN[:-1], "prune.distill.augment=0.5"))
    finally:
        GlueModule._distilled_loss = original
    assert seen
    for clean, student, teacher in seen:
        assert torch.equal(student, teacher)
        assert (clean[:, 0] == student[:, 0]).all()  # [CLS] kept
    assert any((clean != student).any() for clean, student, _ in seen)


def test_attention_term_is_logged_through_the_distilled_phases(tiny_cfg):
    from tests.integration.test_train import logged

    cfg = tiny_cfg(*RUN[:-1], "prune.distill.attention_weight=1.0", "trainer.log_every_n_steps=1")
    train.run(cfg)
    losses = logged(cfg, "distill/attention_loss")
    # from the teacher's arrival (the end of the 4 fine-tune steps) to the last step
    assert sorted(losses) == list(range(4, 16))
    assert all(v >= 0 for v in losses.values()) and losses[15] > 0


def test_attention_term_on_a_model_that_returns_no_attention_names_the_setting(
    tiny_cfg, monkeypatch
):
    from blockprune_pl.errors import ConfigError
    from blockprune_pl.models import encoder

    # a model whose attention stays fused (sdpa): output_attentions gives nothing back
    monkeypatch.setattr(encoder, "expose_attention_probs", lambda model: None)
    with pytest.raises(ConfigError, match=r"prune\.distill\.attention_weight=1.*=0"):
        train.run(tiny_cfg(*RUN[:-1], "prune.distill.attention_weight=1"))
