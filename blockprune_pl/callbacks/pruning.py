"""When things happen: alpha refreshes, the penalty gradient, the hard-prune transition, and
masks kept exactly zero during retraining. What happens lives in `blockprune_pl.pruning`."""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch

from blockprune_pl.errors import ConfigError
from blockprune_pl.pruning import BlockPruner
from blockprune_pl.pruning.masks import cubic_density
from blockprune_pl.pruning.refit import input_grams

SCHEDULES = ("one_shot", "cubic")


@dataclass(frozen=True)
class PhasePlan:
    """Lengths in optimizer steps: dense fine-tune, penalty, masked retrain."""

    finetune: int
    penalty: int
    retrain: int

    @property
    def prune_at(self) -> int:
        return self.finetune + self.penalty

    @property
    def total(self) -> int:
        return self.prune_at + self.retrain

    def phase(self, step: int) -> str:
        """The phase optimizer step `step` (0-based) belongs to."""
        if step < self.finetune:
            return "finetune"
        return "penalty" if step < self.prune_at else "retrain"


class PruningCallback(L.Callback):
    def __init__(
        self,
        pruner: BlockPruner,
        plan: PhasePlan,
        reweight_every: int = 50,
        schedule: str = "one_shot",
        prune_every: int = 20,
        freeze_embeddings: bool = False,
    ):
        if schedule not in SCHEDULES:
            raise ConfigError(
                f"prune.schedule={schedule!r} is not allowed; choose one of {SCHEDULES}"
            )
        if reweight_every < 0 or prune_every < 1:
            raise ConfigError(
                f"prune.reweight_every={reweight_every} must be >= 0 and "
                f"prune.prune_every={prune_every} >= 1"
            )
        if not isinstance(freeze_embeddings, bool):
            raise ConfigError(
                f"prune.freeze_embeddings={freeze_embeddings!r} is not allowed: true or false"
            )
        if min(plan.finetune, plan.penalty, plan.retrain) < 0:
            raise ConfigError(f"phase lengths must be >= 0, got {plan}")
        if pruner.spec.score == "fisher" and plan.penalty < 2:
            # the Fisher scores are gathered over the penalty phase's steps: the targeted penalty
            # starts at a refresh after some, and the cut needs some to rank by
            raise ConfigError(
                f"prune.score=fisher ranks the groups by the gradients of the penalty phase, "
                f"which has {plan.penalty} optimizer steps here; give it 2 or more "
                "(prune.phases.penalty) or use prune.score=norm"
            )
        # prepared on the model by the caller (which also checked the rate can be reached)
        self.pruner, self.spec, self.plan = pruner, pruner.spec, plan
        self.reweight_every, self.schedule, self.prune_every = reweight_every, schedule, prune_every
        self.freeze_embeddings = freeze_embeddings
        self.last_refresh: int | None = None  # step of the last alpha refresh
        self.last_prune: int | None = None
        self.last_penalty = 0.0
        self._handled_step = -1
        self._phase_lr: float | None = None  # sum of the penalty phase's learning rates
        self.ranks_agree: bool | None = None  # set once checked under DDP

    @property
    def final_density(self) -> float:
        return self.spec.density

    @property
    def fisher_warmup(self) -> int:
        """score=fisher: penalty steps whose gradients the first ranking waits for."""
        every = self.reweight_every or self.plan.penalty
        return max(1, min(every, self.plan.penalty // 2))

    @property
    def is_final(self) -> bool:
        return self.pruner.density <= self.final_density

    def setup(self, trainer, pl_module, stage):
        # Lightning calls setup before it moves, wraps (DDP) and restores the module: as its
        # submodule the pruner's buffers (alpha, keep flags, masks) go along with each
        pl_module.add_module("pruner", self.pruner)
        ddp_kwargs = getattr(trainer.strategy, "_ddp_kwargs", None)
        if (
            self.freeze_embeddings
            and self.plan.finetune > 0
            and ddp_kwargs is not None
            and not ddp_kwargs.get("find_unused_parameters")
        ):
            # DDP expects a gradient for every parameter that required one when it wrapped
            raise ConfigError(
                "prune.freeze_embeddings=true stops the embeddings' gradients after the "
                f"fine-tune, which trainer.strategy={type(trainer.strategy).__name__} does not "
                "allow: use trainer.strategy=ddp_find_unused_parameters_true"
            )

    def on_train_start(self, trainer, pl_module):
        self._advance(trainer, pl_module)

    def _lr_at(self, trainer, step: int) -> float:
        """The learning rate of optimizer step `step` (first parameter group), from the
        scheduler's own formula, so it is known ahead for the whole phase."""
        scheduler = trainer.lr_scheduler_configs[0].scheduler
        return scheduler.base_lrs[0] * scheduler.lr_lambdas[0](step)

    def proximal_threshold(self, trainer, step: int) -> float:
        """lr * lam for the step just taken; with lam_per=phase, lam is shared out over the
        penalty phase in proportion to the lr, so the thresholds of the phase sum to lam."""
        lr = self._lr_at(trainer, step)
        if self.spec.lam_per == "step":
            return lr * self.spec.lam
        if self._phase_lr is None:
            steps = range(self.plan.finetune, self.plan.prune_at)
            self._phase_lr = sum(self._lr_at(trainer, s) for s in steps)
        return self.spec.lam * lr / self._phase_lr if self._phase_lr > 0 else 0.0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        step = trainer.global_step
        if self.plan.phase(step) == "penalty" and self.spec.score == "fisher":
            self.pruner.accumulate_fisher()  # the loss's gradient, before the penalty's
        if self.plan.phase(step) == "penalty" and self.spec.penalty:
            if self.spec.penalty_mode == "grad":
                self.last_penalty = self.pruner.add_penalty_grad()
            else:
                self.last_penalty = float(self.pruner.penalty().detach())
        self.pruner.mask_grads()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step == self._handled_step:  # gradient accumulation: act once per optimizer step
            return
        self._handled_step = step
        if self.plan.phase(step - 1) == "penalty" and self.spec.penalty:
            if self.spec.penalty_mode == "proximal":
                self.pruner.proximal_step(self.proximal_threshold(trainer, step - 1))
        self._advance(trainer, pl_module)

    def _advance(self, trainer, pl_module) -> None:
        """Bring the pruning state to what step `trainer.global_step` calls for (idempotent)."""
        step, plan, pruner = trainer.global_step, self.plan, self.pruner
        in_penalty = plan.phase(step) == "penalty"
        if self.freeze_embeddings and plan.phase(step) != "finetune":
            # no gradient: AdamW then skips the word embeddings (no update, no decay)
            pl_module.model.get_input_embeddings().weight.requires_grad_(False)
        if in_penalty and self.spec.penalty:
            due = self.last_refresh is None or (
                self.reweight_every and step - self.last_refresh >= self.reweight_every
            )
            if self.spec.score == "fisher" and self.last_refresh == plan.finetune:
                # the phase-start refresh had no gradient to rank by and penalised nothing:
                # rank again once the scores have seen reweight_every steps, or half the phase
                due = due or step - plan.finetune >= self.fisher_warmup
            if due:
                pruner.refresh_alpha()
                self.last_refresh = step
        if in_penalty and self.schedule == "cubic" and step > plan.finetune:
            if (step - plan.finetune) % self.prune_every == 0 and self.last_prune != step:
                density = cubic_density(step, plan.finetune, plan.prune_at, self.final_density)
                self._prune(trainer, density, step)
        if step == plan.finetune and plan.penalty > 0:
            # the dense reference: the fine-tuned model, or the start when there is no fine-tune
            self._evaluate(trainer, pl_module, "dense", step)
        if step >= plan.prune_at and not self.is_final:
            self._evaluate(trainer, pl_module, "dense" if plan.penalty == 0 else "penalty", step)
            self._prune(trainer, self.final_density, step)
            # the report card of the penalty: the metric right after the cut, no retraining yet
            self._evaluate(trainer, pl_module, "after_prune", step)
        pruner.apply_masks()
        pl_module.selectable = self.is_final

    def _evaluate(self, trainer, pl_module, tag: str, step: int) -> None:
        """The metric right before a transition: the dense model, and the model the penalty left."""
        if any(h.get("tag") == tag for h in pl_module.history):
            return
        loaders = trainer.datamodule.val_dataloader() if trainer.datamodule else []
        pl_module.evaluate(loaders, tag)

    def _prune(self, trainer, density: float, step: int) -> None:
        grams = self._calibrate(trainer) if self.spec.refit else None
        self.pruner.prune(density, grams)
        for optimizer in trainer.optimizers:
            self.pruner.mask_optimizer_state(optimizer)
        self.last_prune = step
        self.check_ranks_agree(trainer)

    def _calibrate(self, trainer) -> dict[str, torch.Tensor]:
        """X^T X of every prunable Linear's inputs over the calibration rows (dropout off),
        summed over DDP ranks so that every rank refits the same weights."""
        grams = input_grams(
            trainer.lightning_module.model,
            self.pruner.calibration_modules(),
            trainer.datamodule.calibration_dataloader(self.spec.refit_rows),
        )
        if trainer.world_size > 1:
            grams = {k: trainer.strategy.reduce(v, reduce_op="sum") for k, v in grams.items()}
        return grams

    def on_train_end(self, trainer, pl_module):
        self.check_ranks_agree(trainer)

    def check_ranks_agree(self, trainer) -> None:
        """Under DDP every rank prunes its own copy: they must hold the same masks, alpha and
        prunable weights, or the model silently diverges. Compare fingerprints across ranks."""
        if trainer.world_size < 2:
            return
        mine = self.pruner.fingerprint()
        every = trainer.strategy.all_gather(mine)
        if not torch.equal(every, mine.expand_as(every)):
            raise RuntimeError(
                f"pruning state differs across DDP ranks at step {trainer.global_step}: "
                f"fingerprints (keep, alpha, weights) {every.tolist()}"
            )
        self.ranks_agree = True

    def state_dict(self) -> dict:
        # the pruner's own state is in the module's state_dict (it is a submodule)
        return {
            "last_refresh": self.last_refresh,
            "last_prune": self.last_prune,
            "plan": [self.plan.finetune, self.plan.penalty, self.plan.retrain],
        }

    def load_state_dict(self, state: dict) -> None:
        plan = [self.plan.finetune, self.plan.penalty, self.plan.retrain]
        if state["plan"] != plan:
            raise ConfigError(
                f"checkpoint phase lengths (finetune, penalty, retrain) = {state['plan']} differ "
                f"from this run's {plan} in optimizer steps; resume with the same prune.phases, "
                "task.train_limit and optim.batch_size"
            )
        self.last_refresh, self.last_prune = state["last_refresh"], state["last_prune"]
