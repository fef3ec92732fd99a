"""The entry points as a user types them."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY_RUN


def cli(*args, cwd=ROOT, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, "-m", "blockprune_pl", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cfg_job_prints_the_composed_config():
    out = cli("model=tiny_roberta", "task=mrpc", "prune=neurons", "--cfg", "job")
    assert out.returncode == 0, out.stderr
    assert "geometry: neurons" in out.stdout and "name: mrpc" in out.stdout


def test_help_lists_the_config_groups():
    out = cli("--help")
    assert (
        out.returncode == 0
        and "prune: bsp, dense" in out.stdout.replace("\n", " ")
        or all(g in out.stdout for g in ("model:", "task:", "prune:"))
    )


def test_unknown_option_names_the_allowed_ones():
    out = cli("task=sst3", "--cfg", "job")
    assert out.returncode != 0
    assert "sst3" in out.stderr and "sst2" in out.stderr


def test_hub_model_offline_fails_fast_without_a_deep_stack_trace(glue, tmp_path):
    env_home = {"HF_HOME": str(tmp_path)}
    os.environ.update(env_home)
    try:
        out = cli(
            "model=roberta",
            "task=mnli",
            f"task.data_dir={glue}",
            f"hydra.run.dir={tmp_path / 'run'}",
            timeout=120,
        )
    finally:
        os.environ.pop("HF_HOME")
    assert out.returncode != 0
    assert "model.name_or_path=/path/to" in out.stderr or "task.data_dir" in out.stderr


def test_multirun_sweeps_and_names_dirs_by_overrides(glue, tmp_path):
    out = cli(
        "-m",
        f"task.data_dir={glue}",
        *TINY_RUN,
        "prune.phases.finetune=2",
        "prune.phases.penalty=2",
        "prune.phases.retrain=2",
        "prune=bsp,tiles",
        "prune.block=[8,8]",
        "prune.rate=2",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    runs = sorted(p.parent for p in Path(tmp_path).glob("*/metrics.json"))
    assert len(runs) == 2 and any("prune=tiles" in r.name for r in runs)
    for run in runs:
        assert json.loads((run / "metrics.json").read_text())["target_rate"] == 2.0
    (tmp_path / "broken" / ".hydra").mkdir(parents=True)
    (tmp_path / "broken" / ".hydra" / "config.yaml").write_text("{}")
    out = subprocess.run(
        [sys.executable, "-m", "blockprune_pl.collect", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    table = (tmp_path / "results.md").read_text()
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert {r["geometry"] for r in rows} == {"bsp", "tiles"}
    for row in rows:
        saved = json.loads((tmp_path / row["run"] / "metrics.json").read_text())
        assert float(row["value"]) == pytest.approx(saved["final"]["val/acc"])
        assert float(row["drop"]) == pytest.approx(
            saved["dense"]["val/acc"] - saved["final"]["val/acc"]
        )
        if "commit" in saved["code"]:  # a git checkout: the row names the code's commit
            assert row["commit"].rstrip("+") == saved["code"]["commit"][:7]
    assert "\n- broken\n" in table and (tmp_path / "metric_vs_rate_sst2.png").is_file()
    tiles = next(r.name for r in runs if "prune=tiles" in r.name)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "blockprune_pl.collect",
            str(tmp_path),
            "--only",
            "*tiles*",
            "--heatmap",
            tiles,
            "--out",
            str(tmp_path / "tiles_only"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader((tmp_path / "tiles_only" / "results.csv").open()))
    assert [r["run"] for r in rows] == [tiles]
    assert (tmp_path / "tiles_only" / "density_heatmap.png").stat().st_size > 1000


@pytest.mark.parametrize("logger", ["tensorboard", "wandb"])
def test_other_loggers_run_offline(glue, tmp_path, logger):
    out = cli(
        f"task.data_dir={glue}",
        *TINY_RUN,
        f"logger={logger}",
        "prune.rate=2",
        "prune.phases.finetune=2",
        "prune.phases.penalty=2",
        "prune.phases.retrain=2",
        f"hydra.run.dir={tmp_path}",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "metrics.json").is_file()
    if logger == "tensorboard":
        assert any((tmp_path / "tensorboard").rglob("events.out.tfevents*"))
        return
    # an offline run that `wandb sync` can upload: the records hold the logged keys, and the
    # heatmap image and per-layer density table are saved as media
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    records = next(run.glob("run-*.wandb")).read_bytes()
    for key in (
        b"val/acc",
        b"prune/penalty",
        b"prune/frac_small",
        b"density/layer_0",
        b"sst2-tiny_bert",
    ):  # the last: the run's W&B group
        assert key in records, key
    assert any(run.rglob("media/images/block_norms/heatmap_*.png"))
    assert any(run.rglob("media/table/density/per_layer_*.table.json"))


def test_sweep_through_submitit_local_executor(glue, tmp_path):
    out = cli(
        "-m",
        "hydra/launcher=submitit_local",
        f"task.data_dir={glue}",
        *TINY_RUN,
        "prune=dense",
        "prune.phases.finetune=2",
        "seed=1,2",
        f"hydra.sweep.dir={tmp_path}",
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(list(Path(tmp_path).glob("*/metrics.json"))) == 2
    assert any((tmp_path / ".submitit").rglob("*.pkl"))


@pytest.mark.parametrize("refit", [False, True])
def test_ddp_on_two_cpu_processes_keeps_ranks_in_agreement(glue, tmp_path, refit):
    # with a refit every rank solves for the kept weights from the Gram matrices summed over ranks
    out = cli(
        f"task.data_dir={glue}",
        *TINY_RUN,
        "optim.batch_size=8",
        "prune.rate=4",
        "prune.phases.finetune=2",
        "prune.phases.penalty=3",
        "prune.phases.retrain=2",
        "trainer.strategy=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        f"prune.refit={str(refit).lower()}",
        f"hydra.run.dir={tmp_path}",
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["config"]["prune"]["refit"] is refit
    assert saved["world_size"] == 2 and saved["pruning"]["ranks_agree"] is True
    assert saved["pruning"]["achieved_rate"] == pytest.approx(4.0, abs=0.05)


def test_console_script_runs_hydra_and_subcommands(tmp_path):
    exe = Path(sys.executable).with_name("blockprune")
    out = subprocess.run([str(exe), "--cfg", "job"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "geometry: neurons" in out.stdout
    out = subprocess.run(
        [str(exe), "collect", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "0 runs" in out.stdout
