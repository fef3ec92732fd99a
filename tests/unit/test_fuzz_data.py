"""Local Parquet splits corrupted at random: each is either read and tokenized (every row
within max_length) or refused with a DataError that names the file and the problem. A raw
Python or Arrow error is a failure. FUZZ_EXAMPLES sets the number of draws."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from blockprune_pl.data import GlueDataModule  # noqa: E402
from blockprune_pl.errors import DataError  # noqa: E402
from blockprune_pl.models import load_tokenizer  # noqa: E402
from tests.conftest import compose  # noqa: E402

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10")) * 5  # no training: cheap draws
ROWS = 6
TASKS = {  # text fields, a valid label per row
    "sst2": (["sentence"], [0, 1, 1, 0, 1, 0]),
    "rte": (["sentence1", "sentence2"], [1, 0, 0, 1, 1, 0]),
    "stsb": (["sentence1", "sentence2"], [0.0, 5.0, 2.5, 3.2, 1.0, 4.8]),
}
# corruption -> does the project read it (True) or refuse it (False)
READ = {
    "none": True,
    "extra_column": True,
    "empty_string": True,
    "long_text": True,
    "drop_column": False,
    "no_rows": False,
    "null_text": False,
    "bytes_text": False,
    "number_text": False,
    "string_label": False,
    "null_label": False,
    "nan_label": False,
    "label_out_of_range": False,
    "fraction_label": None,  # classification refuses it, regression reads it
    "truncated_file": False,
}


def _table(task: str, kind: str, row: int, field_pick: int) -> pa.Table:
    fields, labels = TASKS[task]
    columns = {f: [f"text {i} of {f}" for i in range(ROWS)] for f in fields}
    columns["label"] = list(labels)
    field = fields[field_pick % len(fields)]
    regression = task == "stsb"
    if kind == "extra_column":
        columns["idx"] = list(range(ROWS))
    elif kind == "empty_string":
        columns[field][row] = ""
    elif kind == "long_text":
        columns[field][row] = "word " * 5_000
    elif kind == "drop_column":
        del columns[field if field_pick % 2 else "label"]
    elif kind == "no_rows":
        columns = {k: v[:0] for k, v in columns.items()}
    elif kind == "null_text":
        columns[field][row] = None
    elif kind == "bytes_text":  # a binary column holding bytes that are not UTF-8
        columns[field] = [s.encode() for s in columns[field]]
        columns[field][row] = b"\xff\xfe caf\xe9"
        return pa.table(
            {k: pa.array(v, pa.binary()) if k == field else v for k, v in columns.items()}
        )
    elif kind == "number_text":
        columns[field] = list(range(ROWS))
    elif kind == "string_label":
        columns["label"] = [str(v) for v in columns["label"]]
    elif kind == "null_label":
        columns["label"][row] = None
    elif kind == "nan_label":
        columns["label"] = [float(v) for v in columns["label"]]
        columns["label"][row] = float("nan")
    elif kind == "label_out_of_range":
        columns["label"][row] = 5.5 if regression else 2
    elif kind == "fraction_label":
        columns["label"] = [float(v) for v in columns["label"]]
        columns["label"][row] = 0.5
    return pa.table(columns)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(compose([]).model)


@pytest.mark.integration  # hundreds of Parquet files written and read: beyond the unit budget
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    task=st.sampled_from(sorted(TASKS)),
    kind=st.sampled_from(sorted(READ)),
    split=st.sampled_from(["train", "validation"]),
    row=st.integers(0, ROWS - 1),
    field_pick=st.integers(0, 3),
)
def test_a_corrupted_split_is_read_or_refused_naming_the_file(
    tokenizer, task, kind, split, row, field_pick
):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / task
        folder.mkdir()
        for name in ("train", "validation"):
            bad = name == split
            pq.write_table(
                _table(task, kind if bad else "none", row, field_pick), folder / f"{name}.parquet"
            )
        path = folder / f"{split}.parquet"
        if kind == "truncated_file":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        cfg = compose([f"task={task}", f"task.data_dir={tmp}", "task.max_length=32"]).task
        data = GlueDataModule(cfg, tokenizer, batch_size=4)
        read = READ[kind] if READ[kind] is not None else task == "stsb"
        if read:
            data.setup()
            sets = [data.train_set, *data.val_sets.values()]
            assert all(len(ids) <= 32 for s in sets for ids in s.encodings["input_ids"])
            assert len(data.train_set) == ROWS
            return
        with pytest.raises(DataError) as err:
            data.setup()
        message = str(err.value)
        assert str(path) in message, message
        if kind in ("null_text", "bytes_text", "number_text"):
            # a binary or numeric column is refused at its first row, a null where it sits
            assert f"row {row if kind == 'null_text' else 0} is" in message, message
        if kind in ("null_label", "nan_label", "label_out_of_range", "fraction_label"):
            assert f"row {row} has label" in message, message
