import importlib.util
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]


def recipe_script(name: str):
    """A script of experiments/recipe_minilm (not a package) imported as a module, e.g. `run`."""
    path = ROOT / "experiments" / "recipe_minilm" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONF = ROOT / "conf"


def glue_dir() -> Path | None:
    path = Path(os.environ.get("GLUE_DIR", ROOT.parent / "shared" / "data" / "glue"))
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def glue():
    path = glue_dir()
    if path is None:
        pytest.skip("real GLUE Parquet folder not found (set GLUE_DIR)")
    return path


def compose(overrides=(), output_dir=None):
    """The run config exactly as `python -m blockprune_pl <overrides>` composes it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    from blockprune_pl.resolvers import register  # the configs' ${model_label:...}

    register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides))
    if output_dir is not None:
        with open_dict(cfg):
            cfg.output_dir = str(output_dir)
    return cfg


TINY_RUN = [
    "model=tiny_bert",
    # the tiny runs test the plumbing with bsp's row segments; the default preset (neurons_split)
    # has its own tests, and a later prune=... wins over this one
    "prune=bsp",
    "task.train_limit=64",
    "task.val_limit=32",
    "optim.batch_size=16",
    "prune.phase_unit=step",
    "prune.log_every=2",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


@pytest.fixture
def tiny_cfg(glue, tmp_path):
    def make(*overrides, out="run"):
        return compose([f"task.data_dir={glue}", *TINY_RUN, *overrides], tmp_path / out)

    return make


def pytest_collection_modifyitems(config, items):
    """Tiers by folder: tests/unit (fast, tiny models), tests/integration (whole runs on tiny
    models, DDP, launchers), tests/slow (the real MiniLM); a test marked `integration` in a
    unit file runs with the integration tier."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "unit" in parts and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.unit)  # a unit file may send a slower test up a tier


def assert_same_state(expected: dict, got: dict) -> None:
    """Two checkpoints' module state dicts hold the same values, bit for bit: weights, and the
    pruner's alpha and keep flags (buffers of its `pruner` submodule) and its extra state."""
    assert any(k.startswith("pruner.alpha_") for k in expected), "no pruner state saved"
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        if torch.is_tensor(value):
            assert torch.equal(value, got[name]), name
        else:
            assert value == got[name], name
