"""Export a run's final weights in one of the formats below, and load any of them back.

- `hf`: a plain Hugging Face folder (`save_pretrained`) with the pruned zeros in place, loadable
  by anyone with `AutoModelForSequenceClassification.from_pretrained`;
- `compact`: empty heads and FFN neurons removed, a smaller dense model; per-layer widths are
  saved in `compact.json` beside the weights, and `blockprune_pl.load_pruned` rebuilds it;
- `gathered`: for `bsp`/`tiles` runs (and the attention of `hybrid` runs, whose FFN is
  compacted as in `compact`; the FFN of `heads_bsp` runs, whose cut heads are removed as in
  `compact`), each pruned Linear stores only its kept blocks (values +
  row indices per column block) and runs as dense GEMMs over contiguous column slices; per layer
  and input size the faster of dense and gathered on this machine is used (measured once at
  128/512/4,096 tokens with 1 thread and with torch's thread count, in `gathered.json`);
- `int8`: the `onnx` export with its MatMul/Gemm weights quantized to int8 per output channel
  (onnxruntime's dynamic quantization; `int8.json` says how); `load_pruned` runs it in
  onnxruntime;
- `onnx`: the run's fast form (gathered for `bsp`/`tiles`/`hybrid`/`heads_bsp`, else
  compact) as ONNX (`model.onnx`, beside the folder it was made from); each layer's shape is
  recorded in the graph, and each gathered layer's form is the one chosen for the traced size
  (one sequence of 128 tokens).

The command line is `python -m blockprune_pl.export` (`__main__.py`).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch
from omegaconf import OmegaConf

from blockprune_pl.errors import ConfigError
from blockprune_pl.export.onnx import INT8_FILE, OnnxClassifier, quantize_int8, save_onnx
from blockprune_pl.io import atomic_folder
from blockprune_pl.models import build_model, load_tokenizer
from blockprune_pl.record import RunRecord

FORMATS = ("hf", "compact", "gathered", "onnx", "int8")
COMPACT_FILE = "compact.json"
GATHERED_FILE = "gathered.json"
GATHERED_GEOMETRIES = ("bsp", "tiles", "hybrid", "heads_bsp")


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
    cfg = OmegaConf.create(RunRecord.read(metrics).config)
    tokenizer = load_tokenizer(cfg.model)
    model = build_model(cfg.model, int(cfg.task.num_labels), tokenizer, seed=int(cfg.seed))
    prefix = "model."
    model.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    return model.eval(), tokenizer, cfg


def export(path: str | Path, out: str | Path, fmt: str = "hf") -> Path:
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not available; choose one of {list(FORMATS)}")
    model, tokenizer, cfg = load_run(path)
    return export_model(model, tokenizer, cfg.prune, out, fmt)


def export_model(model, tokenizer, prune_cfg, out: str | Path, fmt: str, measure=True) -> Path:
    """Write a pruned model (zeros in place, as a run leaves it) in `fmt` to the folder `out`.
    `prune_cfg` needs `geometry`, `col_blocks` and `block`; `measure=False` keeps every gathered
    layer gathered instead of timing it against one dense GEMM; `tokenizer` may be None."""
    if fmt != "hf":  # compact and gathered rebuild layers: the caller's model stays as it was
        model = copy.deepcopy(model)
    with atomic_folder(out) as partial:  # whole folder or nothing
        _write_format(model, tokenizer, prune_cfg, partial, fmt, measure)
    return Path(out)


def _write_format(model, tokenizer, prune_cfg, partial: Path, fmt: str, measure: bool) -> None:
    if fmt == "hf":
        model.save_pretrained(partial)
    elif fmt == "gathered" or (
        fmt in ("onnx", "int8")
        and prune_cfg.geometry in GATHERED_GEOMETRIES
        and float(prune_cfg.get("rate", 2.0)) > 1.0  # a dense run's fast form is itself
    ):
        save_gathered(model, prune_cfg, partial, measure)
    else:
        save_compact(model, partial)
    if fmt in ("onnx", "int8"):
        save_onnx(load_pruned(partial), partial / "model.onnx")
    if fmt == "int8":
        quantize_int8(partial / "model.onnx", partial)
    if tokenizer is not None:
        tokenizer.save_pretrained(partial)


def save_compact(model, folder: Path, write_weights: bool = True, neurons: bool = True) -> None:
    from safetensors.torch import save_file

    from blockprune_pl.export.compact import compact

    folder.mkdir(parents=True, exist_ok=True)
    widths = compact(model, neurons)
    (folder / COMPACT_FILE).write_text(json.dumps({"layer_widths": widths}, indent=2))
    if write_weights:
        model.config.save_pretrained(folder)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, folder / "model.safetensors")


def save_gathered(model, prune_cfg, folder: Path, measure: bool = True) -> None:
    from safetensors.torch import save_file

    from blockprune_pl.export.compact import _replace
    from blockprune_pl.export.gathered import GatheredLinear
    from blockprune_pl.export.timing import dense_ranges
    from blockprune_pl.pruning import PruneSpec, find_prunable, layout_for

    geometry = prune_cfg.geometry
    if geometry not in GATHERED_GEOMETRIES:
        raise ConfigError(
            f"--format gathered needs a run with geometry in {list(GATHERED_GEOMETRIES)}, "
            f"not geometry={geometry!r}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    spec = PruneSpec.from_dict(OmegaConf.to_container(prune_cfg, resolve=True))
    if geometry == "hybrid":  # whole FFN neurons: removed; the attention's segments: gathered
        save_compact(model, folder, write_weights=False)
    elif geometry == "heads_bsp":  # whole heads: removed; the FFN's segments: gathered
        save_compact(model, folder, write_weights=False, neurons=False)
    # the matrices cut in segments: all of them, or only those a coupled form left whole
    in_segments = {"hybrid": lambda p: not p.in_ffn, "heads_bsp": lambda p: p.in_ffn}
    segmented = in_segments.get(geometry, lambda p: True)
    prunables = [p for p in find_prunable(model, layout_for(model)) if segmented(p)]
    layers = {}
    for p in prunables:
        width = spec.group_shape(p.module.in_features)[1]
        gathered = GatheredLinear.from_linear(p.module, width)
        plan, timings = {}, {}
        # small GEMMs gain less from threads than a large one: the choice depends on the count
        for n in sorted({1, torch.get_num_threads()}) if measure else []:
            ranges, timings[n] = dense_ranges(p.module, gathered, n)
            # [lo, hi) token counts run dense; JSON has no infinity: hi null = no upper end
            plan[n] = [[lo, hi if math.isfinite(hi) else None] for lo, hi in ranges]
        layers[p.name] = {
            "dense_for_tokens": plan,  # per thread count
            "timings_ms": timings,
            "col_width": width,
            "rows": [int(getattr(gathered, f"rows_{j}").numel()) for j in range(gathered.blocks)],
        }
        # always stored packed (only kept blocks on disk); `dense_for_tokens` says how it runs
        _replace(model, p.name, gathered)
    model.config.save_pretrained(folder)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    (folder / GATHERED_FILE).write_text(json.dumps({"layers": layers}, indent=2))


def _gathered_shells(model, layers: dict) -> None:
    """Empty GatheredLinears of the saved shapes, for the weights to be loaded into."""
    from blockprune_pl.export.compact import _replace
    from blockprune_pl.export.gathered import GatheredLinear

    for name, spec in layers.items():
        linear = model.get_submodule(name)
        width = spec["col_width"]
        rows = [torch.zeros(n, dtype=torch.int32) for n in spec["rows"]]
        values = [
            torch.zeros(n, min(width, linear.in_features - j * width))
            for j, n in enumerate(spec["rows"])
        ]
        _replace(
            model,
            name,
            GatheredLinear(
                linear.in_features, linear.out_features, width, rows, values, linear.bias
            ),
        )


def _densify_chosen(model, layers: dict) -> None:
    for name, spec in layers.items():
        plan = {
            int(threads): [(lo, math.inf if hi is None else hi) for lo, hi in ranges]
            for threads, ranges in spec["dense_for_tokens"].items()
        }
        model.get_submodule(name).densify(plan)


def load_pruned(path: str | Path, int8: bool = True):
    """A ready `nn.Module` (eval mode) from an exported folder of any format. An `int8` folder
    gives its quantized graph in onnxruntime; `int8=False` the fp32 torch form it was made from."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from blockprune_pl.export.compact import apply_widths

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path} is not an exported model folder (no config.json)")
    if int8 and (path / INT8_FILE).is_file():  # the int8 weights live in the graph: run it
        return OnnxClassifier(path / "model.onnx").eval()
    if (path / GATHERED_FILE).is_file():
        model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(path))
        if (path / COMPACT_FILE).is_file():  # hybrid, heads_bsp: compacted first
            apply_widths(model, json.loads((path / COMPACT_FILE).read_text())["layer_widths"])
        layers = json.loads((path / GATHERED_FILE).read_text())["layers"]
        _gathered_shells(model, layers)
        model.load_state_dict(load_file(path / "model.safetensors"))
        _densify_chosen(model, layers)
        return model.eval()
    if not (path / COMPACT_FILE).is_file():
        return AutoModelForSequenceClassification.from_pretrained(path).eval()
    widths = json.loads((path / COMPACT_FILE).read_text())["layer_widths"]
    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(path))
    apply_widths(model, widths)
    model.load_state_dict(load_file(path / "model.safetensors"))
    return model.eval()
