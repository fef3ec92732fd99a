"""Export a run's final weights: `python -m blockprune_pl.export <run dir or .ckpt> --format hf`.

`hf`: a plain Hugging Face folder (`save_pretrained`) with the pruned zeros in place, loadable
by anyone with `AutoModelForSequenceClassification.from_pretrained`.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from omegaconf import OmegaConf

from blockprune_pl.errors import ConfigError
from blockprune_pl.models import build_model, load_tokenizer

FORMATS = ("hf",)


def find_checkpoint(path: str | Path) -> Path:
    """A run dir (its `checkpoints/last.ckpt`) or a checkpoint file."""
    path = Path(path)
    ckpt = path / "checkpoints" / "last.ckpt" if path.is_dir() else path
    if not ckpt.is_file():
        raise ConfigError(f"no checkpoint at {ckpt}: pass a run dir or a .ckpt file")
    return ckpt


def load_run(path: str | Path):
    """`(model, tokenizer, cfg)` with the checkpoint's weights; the config comes from the run's
    metrics.json, or from the checkpoint's own hyper-parameters."""
    ckpt_path = find_checkpoint(path)
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        state = ckpt["state_dict"]
    except Exception as err:
        raise ConfigError(f"{ckpt_path} is not a readable Lightning checkpoint: {err}") from err
    metrics = ckpt_path.parent.parent / "metrics.json"
    if not metrics.is_file():
        raise ConfigError(f"{metrics} not found: export needs the run's metrics.json (its config)")
    cfg = OmegaConf.create(json.loads(metrics.read_text())["config"])
    tokenizer = load_tokenizer(cfg.model)
    model = build_model(cfg.model, int(cfg.task.num_labels), tokenizer, seed=int(cfg.seed))
    prefix = "model."
    model.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    return model.eval(), tokenizer, cfg


def export(path: str | Path, out: str | Path, fmt: str = "hf") -> Path:
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not available; choose one of {list(FORMATS)}")
    model, tokenizer, _ = load_run(path)
    out = Path(out)
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)  # whole folder or nothing
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m blockprune_pl.export", description=__doc__)
    parser.add_argument("run", help="a run dir (with metrics.json and checkpoints/) or a .ckpt")
    parser.add_argument("--format", default="hf", choices=FORMATS)
    parser.add_argument("--out", help="destination folder (default: <run>/export_<format>)")
    args = parser.parse_args(argv)
    run = Path(args.run)
    base = run if run.is_dir() else run.parent.parent
    out = export(run, args.out or base / f"export_{args.format}", args.format)
    print(f"exported {args.format}: {out}")


if __name__ == "__main__":
    main()
