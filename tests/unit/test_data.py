import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blockprune_pl.data import GlueDataModule, load_split
from blockprune_pl.errors import DataError
from blockprune_pl.models import load_tokenizer
from tests.conftest import compose, glue_dir

LOCAL = sorted(p.name for p in glue_dir().iterdir() if p.is_dir()) if glue_dir() else []


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(compose([]).model)


def task_cfg(name, data_dir, *extra):
    return compose([f"task={name}", f"task.data_dir={data_dir}", *extra]).task


@pytest.mark.parametrize("name", LOCAL)
def test_every_local_split_has_the_task_schema_and_label_range(name, glue):
    task = task_cfg(name, glue)
    files = sorted((glue / name).glob("*.parquet"))
    assert files
    for path in files:
        rows = load_split(task, path.stem)
        labels = rows["label"]
        assert len(labels) == pq.read_metadata(path).num_rows
        if task.num_labels == 1:
            assert 0.0 <= min(labels) and max(labels) <= 5.0
        else:
            assert set(labels) <= set(range(task.num_labels))


@pytest.mark.parametrize("name", [n for n in LOCAL if n in ("sst2", "mrpc", "rte", "stsb", "cola")])
def test_datamodule_tokenizes_pairs_and_pads_dynamically(name, glue, tokenizer):
    task = task_cfg(name, glue, "task.train_limit=40", "task.val_limit=20", "task.max_length=24")
    dm = GlueDataModule(task, tokenizer, batch_size=8, seed=1)
    dm.setup()
    assert len(dm.train_set) == 40 and list(dm.val_sets) == ["validation"]
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[0] == 8 and batch["input_ids"].shape[1] <= 24
    lengths = batch["attention_mask"].sum(1)
    assert int(lengths.max()) == batch["input_ids"].shape[1]  # padded to the longest row only
    pair = len(task.text_fields) == 2
    assert bool((batch["token_type_ids"] == 1).any()) == pair
    assert batch["labels"].is_floating_point() == (task.num_labels == 1)


def test_train_limit_is_a_seeded_subsample(glue, tokenizer):
    task = task_cfg("rte", glue, "task.train_limit=50")
    a, b, c = (GlueDataModule(task, tokenizer, seed=s) for s in (3, 3, 4))
    for dm in (a, b, c):
        dm.setup()
    assert a.train_set.encodings["input_ids"] == b.train_set.encodings["input_ids"]
    assert a.train_set.encodings["input_ids"] != c.train_set.encodings["input_ids"]


def test_mnli_evaluates_the_splits_that_exist(glue, tokenizer, tmp_path):
    # the local copy has validation_matched only; build a folder with a tiny train split
    src = pq.read_table(glue / "mnli" / "validation_matched.parquet").slice(0, 30)
    (tmp_path / "mnli").mkdir()
    pq.write_table(src, tmp_path / "mnli" / "train.parquet")
    pq.write_table(src, tmp_path / "mnli" / "validation_matched.parquet")
    dm = GlueDataModule(task_cfg("mnli", tmp_path), tokenizer)
    dm.setup()
    assert list(dm.val_sets) == ["validation_matched"] and dm.val_suffixes == [""]
    pq.write_table(src, tmp_path / "mnli" / "validation_mismatched.parquet")
    dm = GlueDataModule(task_cfg("mnli", tmp_path), tokenizer)
    dm.setup()
    assert dm.val_suffixes == ["", "_mm"]


def test_temporary_parquet_folder(tmp_path, tokenizer):
    (tmp_path / "sst2").mkdir()
    table = pa.table({"sentence": ["good", "bad", "fine"], "label": [1, 0, 1], "idx": [0, 1, 2]})
    for split in ("train", "validation"):
        pq.write_table(table, tmp_path / "sst2" / f"{split}.parquet")
    dm = GlueDataModule(task_cfg("sst2", tmp_path), tokenizer, batch_size=3)
    dm.setup()
    assert next(iter(dm.train_dataloader()))["labels"].tolist() in ([1, 0, 1], [0, 1, 1], [1, 1, 0])


def test_missing_split_names_task_path_and_both_fixes(glue):
    with pytest.raises(DataError) as err:
        load_split(task_cfg("mnli", glue), "train")
    msg = str(err.value)
    assert "'mnli'" in msg and "mnli/train.parquet" in msg
    assert "task.data_dir=" in msg and "nyu-mll/glue" in msg


def test_wrong_schema_is_reported(tmp_path):
    (tmp_path / "rte").mkdir()
    pq.write_table(pa.table({"text": ["a"], "label": [0]}), tmp_path / "rte" / "train.parquet")
    with pytest.raises(DataError, match=r"missing \['sentence1', 'sentence2'\]"):
        load_split(task_cfg("rte", tmp_path), "train")


def test_labels_out_of_range_are_reported(tmp_path):
    (tmp_path / "sst2").mkdir()
    pq.write_table(
        pa.table({"sentence": ["a"], "label": [-1]}), tmp_path / "sst2" / "train.parquet"
    )
    with pytest.raises(DataError, match=r"row 0 has label -1; the task needs whole numbers 0..1"):
        load_split(task_cfg("sst2", tmp_path), "train")


def test_unreachable_hub_fails_fast_with_both_fixes(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    task = compose(["task=sst2"]).task
    started = time.time()
    with pytest.raises(DataError, match="HF_HUB_OFFLINE=1.*task.data_dir="):
        load_split(task, "train")
    assert time.time() - started < 5
