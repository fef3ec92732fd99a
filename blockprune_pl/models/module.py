"""The LightningModule: any HF sequence classifier, AdamW, warm-up/decay, GLUE metrics.

It knows nothing about pruning; callbacks act on `self.model` and set `self.selectable`
(False while the weights are not yet in their final, pruned shape, so no such checkpoint is
kept as "best").
"""

from __future__ import annotations

import math
import random
import time

import lightning as L
import numpy as np
import torch
from torch import nn

from blockprune_pl.data.metrics import build_metrics
from blockprune_pl.errors import ConfigError


def phased_linear_schedule(segments: list[tuple[int, float]], warmup_ratio: float):
    """LR multiplier per optimizer step: each (steps, scale) segment warms up linearly for
    `warmup_ratio` of its length, then decays linearly to 0, as in HF's GLUE example, so that
    every phase (fine-tune, penalty, retrain) gets a full schedule of its own."""
    bounds, start = [], 0
    for steps, scale in segments:
        bounds.append((start, int(steps), float(scale)))
        start += int(steps)

    def factor(step: int) -> float:
        for begin, steps, scale in bounds:
            if begin <= step < begin + steps:
                t, warm = step - begin, max(1, math.ceil(warmup_ratio * steps))
                if t < warm:
                    return scale * (t + 1) / warm
                return scale * max(0.0, (steps - t) / max(1, steps - warm))
        return 0.0

    return factor


def rng_states() -> dict:
    """Global RNG states as tensors and plain data (checkpoints load with weights_only=True)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class GlueModule(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        task,
        optim,
        segments: list[tuple[int, float]],
        val_suffixes: list[str],
        special_ids: tuple[int, ...] = (),
    ):
        super().__init__()
        self.model = model
        self.task, self.optim, self.segments = task, optim, segments
        self.regression = int(task.num_labels) == 1
        # the tokenizer's special tokens: prune.distill.augment never replaces them
        ids = torch.tensor(sorted(set(special_ids)), dtype=torch.long)
        self.register_buffer("special_ids", ids, persistent=False)  # moves with the module
        self.val_suffixes = list(val_suffixes)
        self.val_metrics = nn.ModuleList(
            build_metrics(list(task.metrics), int(task.num_labels)) for _ in self.val_suffixes
        )
        self.selectable = True
        self.history: list[dict] = []  # one entry per validation: step + metrics
        # a frozen teacher, set by the distillation callback; kept in a tuple so it is not a
        # submodule: never trained, never saved inside this module's checkpoint
        self._teacher: tuple = ()
        self.distill = None  # the prune.distill config while a teacher is set

    def set_teacher(self, teacher: nn.Module | None, distill=None) -> None:
        if teacher is None:
            self._teacher, self.distill = (), None
            return
        teacher.eval().requires_grad_(False)
        if float(distill.get("attention_weight", 0.0)) > 0:
            from blockprune_pl.models.encoder import expose_attention_probs

            for model in (teacher, self.model):
                expose_attention_probs(model)
        self._teacher, self.distill = (teacher,), distill

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def forward(self, **batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        if self.teacher is not None:
            loss = self._distilled_loss(batch)
        else:
            loss = self.model(**batch).loss
        if not torch.isfinite(loss):
            # stop before the optimizer writes NaN into the weights; checkpoints stay good
            raise FloatingPointError(
                f"non-finite training loss {float(loss)} at optimizer step {self.global_step}: "
                f"lower optim.lr (now {self.optim.lr}) or prune.lam, or enable gradient "
                "clipping; resume from the last good checkpoint with ckpt_path=..."
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["labels"].shape[0])
        return loss

    def _distilled_loss(self, batch) -> torch.Tensor:
        from blockprune_pl.distill import (
            attention_distillation,
            hidden_distillation,
            logit_distillation,
        )

        d = self.distill
        hidden = float(d.hidden_weight) > 0
        attention = float(d.get("attention_weight", 0.0)) > 0
        batch = self._augmented(batch, float(d.get("augment", 0.0)))
        wanted = dict(output_hidden_states=hidden, output_attentions=attention)
        out = self.model(**batch, **wanted)
        started = time.perf_counter()
        with torch.no_grad():
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            teacher = self.teacher(**inputs, **wanted)
        size = batch["labels"].shape[0]
        self.log("distill/teacher_ms", 1e3 * (time.perf_counter() - started), batch_size=size)
        kd = logit_distillation(out.logits, teacher.logits, d.temperature, self.regression)
        loss = (1 - float(d.alpha)) * out.loss + float(d.alpha) * kd
        self.log("distill/kd_loss", kd, batch_size=size)
        mask = batch.get("attention_mask")
        mask = mask.float() if mask is not None else None
        if hidden:
            hid = hidden_distillation(out.hidden_states[1:], teacher.hidden_states[1:], mask)
            loss = loss + float(d.hidden_weight) * hid
            self.log("distill/hidden_loss", hid, batch_size=size)
        if attention:
            if not out.attentions or not teacher.attentions:
                raise ConfigError(
                    f"prune.distill.attention_weight={d.attention_weight}: "
                    f"{type(self.model).__name__} returns no attention probabilities, even "
                    "eager; set prune.distill.attention_weight=0 for this model"
                )
            att = attention_distillation(out.attentions, teacher.attentions, mask)
            loss = loss + float(d.attention_weight) * att
            self.log("distill/attention_loss", att, batch_size=size)
        return loss

    def _augmented(self, batch: dict, share: float) -> dict:
        """The batch with `share` of its tokens replaced (prune.distill.augment); student and
        teacher both see the changed input. The draw depends only on the run's seed and the
        optimizer step, so a resumed run replaces the same tokens."""
        if share <= 0 or "input_ids" not in batch:
            return batch
        from blockprune_pl.distill import replace_tokens

        generator = torch.Generator().manual_seed(
            (torch.initial_seed() + 7919 * (self.global_step + 1)) % 2**63
        )
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        mask = torch.ones_like(ids) if mask is None else mask
        ids = replace_tokens(ids, mask, share, self.special_ids, generator)
        return {**batch, "input_ids": ids}

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        out = self.model(**batch)
        self.log("val/loss", out.loss, add_dataloader_idx=False, batch_size=len(batch["labels"]))
        preds = out.logits.squeeze(-1) if self.regression else out.logits.argmax(-1)
        self.val_metrics[dataloader_idx].update(preds, batch["labels"])

    def on_validation_epoch_end(self):
        results = {}
        for suffix, metrics in zip(self.val_suffixes, self.val_metrics):
            for name, value in metrics.compute().items():
                results[f"val/{name}{suffix}"] = float(value)
            metrics.reset()
        main = results[f"val/{self.task.main_metric}"]
        self.log_dict(results, prog_bar=True)
        # only weights in their final shape compete for the best checkpoint
        self.log("val/select", main if self.selectable else float("-inf"))
        self.history.append(
            {"step": int(self.global_step), "selectable": self.selectable, **results}
        )

    @torch.no_grad()
    def evaluate(self, loaders, tag: str) -> dict:
        """Validation metrics now, outside Lightning's loop (e.g. right before hard pruning);
        recorded in `history` under `tag`. Fresh metric objects, so the loop's are untouched."""
        was_training = self.model.training
        self.model.eval()
        results = {}
        for suffix, loader in zip(self.val_suffixes, loaders):
            metrics = build_metrics(list(self.task.metrics), int(self.task.num_labels))
            for batch in loader:
                batch = {k: v.to(self.device) for k, v in batch.items()}
                logits = self.model(**batch).logits
                preds = logits.squeeze(-1) if self.regression else logits.argmax(-1)
                metrics.update(preds.cpu(), batch["labels"].cpu())
            results.update({f"val/{k}{suffix}": float(v) for k, v in metrics.compute().items()})
        self.model.train(was_training)
        self.history.append(
            {"step": int(self.global_step), "selectable": False, "tag": tag, **results}
        )
        return results

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # dropout draws from the global RNGs: restoring them makes a resumed run continue exactly
        checkpoint["rng_states"] = rng_states()
        checkpoint["val_history"] = self.history

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])
        self.history = list(checkpoint.get("val_history", []))

    def configure_optimizers(self):
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias")
        params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        groups = [
            {
                "params": [p for n, p in params if not n.endswith(no_decay)],
                "weight_decay": self.optim.weight_decay,
            },
            {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=self.optim.lr, eps=self.optim.adam_eps)
        schedule = phased_linear_schedule(self.segments, self.optim.warmup_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
