"""OmegaConf resolvers the configs use; registered when blockprune_pl.train is imported."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def sweep_group(default: str) -> str:
    """The sweep's folder name inside a Hydra multirun (so a sweep's runs share one W&B group),
    else `default`."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
    except (ImportError, ValueError):
        return default
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return Path(hydra_cfg.sweep.dir).name
    return default


def model_label(preset: str, preset_path: str, name_or_path: str) -> str:
    """The run's model label: the preset's name while `name_or_path` is the preset's own,
    else the last part of the folder path or hub id (`model.name=...` overrides both)."""
    if str(name_or_path) == str(preset_path):
        return preset
    return Path(str(name_or_path).rstrip("/")).name or str(name_or_path)


def register() -> None:
    if not OmegaConf.has_resolver("sweep_group"):
        OmegaConf.register_new_resolver("sweep_group", sweep_group)
    if not OmegaConf.has_resolver("model_label"):
        OmegaConf.register_new_resolver("model_label", model_label)
