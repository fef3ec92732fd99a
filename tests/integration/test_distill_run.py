from pathlib import Path

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


def test_teacher_is_the_frozen_dense_model_and_resume_reloads_it(tiny_cfg):
    cfg = tiny_cfg(*RUN)
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

    resumed = tiny_cfg(*RUN, f"ckpt_path={out / 'checkpoints' / 'step12.ckpt'}", out="resumed")
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
