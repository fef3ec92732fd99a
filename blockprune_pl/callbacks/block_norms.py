"""Watch the penalty work: group-norm histograms and heatmaps, per-layer density, the fraction
of groups the penalty has driven near zero. Goes to every configured Lightning logger."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from blockprune_pl.callbacks.pruning import PruningCallback
from blockprune_pl.errors import ConfigError
from blockprune_pl.pruning import pruning_stats


class BlockNormLogger(L.Callback):
    def __init__(
        self, pruning: PruningCallback, every: int = 50, small: float = 1e-2, images_every: int = 10
    ):
        if every < 1:
            raise ConfigError(f"prune.log_every={every} must be >= 1")
        self.pruning, self.every, self.small, self.images_every = (
            pruning,
            every,
            small,
            images_every,
        )
        self._logged = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        # also one step before the hard prune: how far the penalty got
        due = step % self.every == 0 or step + 1 == self.pruning.plan.prune_at
        if due and step != self._logged:
            self._logged = step
            self.log_now(trainer, pl_module, images=(step // self.every) % self.images_every == 0)

    def on_train_end(self, trainer, pl_module):
        self.log_now(trainer, pl_module, images=True)

    @rank_zero_only
    @torch.no_grad()
    def log_now(self, trainer, pl_module, images: bool) -> None:
        pruner, step = self.pruning.pruner, trainer.global_step
        norms = [n.detach().float().cpu() for n in pruner.norms()]
        rms = torch.cat([n / g.sizes().float().sqrt() for n, g in zip(norms, pruner.groups)])
        alphas = torch.cat([a.float().cpu() for a in pruner.alpha])
        stats = pruning_stats(
            pl_module.model, pruner.prunables, pl_module.model.config.num_attention_heads
        )
        scalars = {
            "prune/penalty": float(pruner.penalty()) if self.pruning.spec.penalty else 0.0,
            "prune/mean_alpha": float(alphas.mean()),
            "prune/frac_small": float((rms < self.small).float().mean()),
            "prune/doomed_energy": pruner.doomed_energy(),
            "prune/density": stats["density"],
            "prune/achieved_rate": stats["achieved_rate"],
            **{f"density/layer_{k}": v for k, v in stats["density_per_layer"].items()},
            **{f"density/{k}": v for k, v in stats["density_per_role"].items()},
        }
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=step)
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_histogram("block_norms/rms", rms, step)
            elif isinstance(logger, WandbLogger):
                import wandb

                logger.experiment.log({"block_norms/rms": wandb.Histogram(rms.numpy())}, step=step)
        if images:
            self._log_images(trainer, pruner, norms, stats, step)

    def _log_images(self, trainer, pruner, norms, stats, step) -> None:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        fig = heatmap_figure(pruner, norms, step)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure("block_norms/heatmap", fig, step, close=False)
            elif isinstance(logger, WandbLogger):
                import wandb

                rows = [[layer, d] for layer, d in stats["density_per_layer"].items()]
                logger.experiment.log(
                    {
                        "block_norms/heatmap": wandb.Image(fig),
                        "density/per_layer": wandb.Table(columns=["layer", "density"], data=rows),
                    },
                    step=step,
                )
        folder = Path(trainer.default_root_dir) / "block_norms"
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / f"step_{step:06d}.png", dpi=80)
        plt.close(fig)


def heatmap_figure(pruner, norms, step):
    """One panel per group set (a matrix, or a layer's heads/neurons): its group norms."""
    from matplotlib import pyplot as plt

    layers = sorted({g.layer for g in pruner.groups})
    kinds = list(dict.fromkeys(g.kind for g in pruner.groups))
    fig, axes = plt.subplots(
        len(layers), len(kinds), squeeze=False, figsize=(2.2 * len(kinds), 1.6 * len(layers))
    )
    for g, n in zip(pruner.groups, norms):
        ax = axes[layers.index(g.layer)][kinds.index(g.kind)]
        grid = n.reshape(g.grid) if hasattr(g, "grid") else n.reshape(1, -1)
        ax.imshow(grid.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"L{g.layer} {g.kind}", fontsize=7)
    fig.suptitle(f"group norms, step {step}", fontsize=9)
    fig.tight_layout()
    return fig
