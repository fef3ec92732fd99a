"""GLUE as a LightningDataModule: local Parquet in the hub schema, or the hub dataset."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Subset
from transformers import DataCollatorWithPadding

from blockprune_pl.errors import ConfigError, DataError
from blockprune_pl.hub import hub_offline_reason


def _fixes(task) -> str:
    return (
        f"Fix: pass task.data_dir=<folder with {task.name}/<split>.parquet in the "
        f"{task.hub_dataset} schema> (e.g. ../shared/data/glue), or unset task.data_dir and "
        f"use a machine that reaches the Hugging Face hub ({task.hub_dataset})."
    )


def load_split(task, split: str) -> dict[str, list]:
    """Columns of one split as lists: `{text_field: [...], "label": [...]}`, schema-checked."""
    if task.data_dir:
        path = Path(task.data_dir) / task.name / f"{split}.parquet"
        if not path.is_file():
            raise DataError(
                f"task {task.name!r}: split {split!r} not found at {path}. {_fixes(task)}"
            )
        try:
            columns = pq.read_table(path).to_pydict()
        except Exception as err:
            raise DataError(f"task {task.name!r}: cannot read {path}: {err}") from err
        where = str(path)
    else:
        columns, where = _load_hub(task, split), f"hub:{task.hub_dataset}/{task.name}/{split}"
    needed = [*task.text_fields, "label"]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(
            f"task {task.name!r}: {where} has columns {sorted(columns)} but the task needs "
            f"{needed} (missing {missing}). {_fixes(task)}"
        )
    if not len(columns["label"]):
        raise DataError(
            f"task {task.name!r}: {where} has no rows; a {split!r} split needs at least one. "
            f"{_fixes(task)}"
        )
    for field in task.text_fields:
        _check_texts(task, where, field, columns[field])
    _check_labels(task, where, columns["label"])
    return {c: list(columns[c]) for c in needed}


def _check_texts(task, where: str, field: str, values: list) -> None:
    """Every row a string: None (a null), bytes (a binary column, e.g. not UTF-8) or numbers
    would reach the tokenizer and fail there with a message naming neither file nor row."""
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise DataError(
                f"task {task.name!r}: {where} column {field!r} row {i} is {_shown(value)}, not a "
                "string. Fix: write that column as UTF-8 strings (empty strings are allowed) "
                "and drop or fill the rows without text."
            )


def _check_labels(task, where: str, values: list) -> None:
    """Classification: whole numbers in 0..num_labels-1 (test splits hide labels as -1 and
    cannot be trained or scored). Regression: finite numbers, inside `task.label_range`."""
    classes = int(task.num_labels)
    for i, value in enumerate(values):
        number = isinstance(value, (int, float, np.integer, np.floating))
        finite = number and not isinstance(value, bool) and math.isfinite(value)
        if classes > 1:
            ok = finite and float(value).is_integer() and 0 <= value < classes
            allowed = f"whole numbers 0..{classes - 1}"
        else:
            low, high = task.get("label_range") or (-math.inf, math.inf)
            ok = finite and low <= value <= high
            allowed = f"finite numbers in [{low}, {high}]"
        if not ok:
            hint = " (test splits hide their labels as -1)" if value == -1 else ""
            raise DataError(
                f"task {task.name!r}: {where} row {i} has label {_shown(value)}; the task "
                f"needs {allowed}{hint}. Fix: correct or drop that row."
            )


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _load_hub(task, split: str) -> dict[str, list]:
    reason = hub_offline_reason()
    if reason:
        raise DataError(
            f"task {task.name!r}: task.data_dir is unset and the hub dataset "
            f"{task.hub_dataset} cannot be reached ({reason}). {_fixes(task)}"
        )
    import datasets

    try:
        return datasets.load_dataset(task.hub_dataset, task.name, split=split).to_dict()
    except Exception as err:
        raise DataError(
            f"task {task.name!r}: loading {task.hub_dataset}/{task.name} split {split!r} "
            f"failed: {err}. {_fixes(task)}"
        ) from err


class _Encoded(torch.utils.data.Dataset):
    def __init__(self, encodings: dict[str, list], labels: list):
        self.encodings, self.labels = encodings, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        item = {k: v[i] for k, v in self.encodings.items()}
        item["labels"] = self.labels[i]
        return item


class EpochSeededSampler(torch.utils.data.Sampler):
    """A random order fixed by (seed, epoch): Lightning calls `set_epoch`, so a run resumed at
    an epoch boundary sees exactly the batches the uninterrupted run saw."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=gen).tolist())


class GlueDataModule(L.LightningDataModule):
    """Tokenizes once in `setup`; batches are padded to their longest row (dynamic padding)."""

    def __init__(
        self,
        task,
        tokenizer,
        batch_size: int = 32,
        eval_batch_size: int = 128,
        seed: int = 0,
        num_workers: int = 0,
    ):
        super().__init__()
        self.task, self.tokenizer, self.seed = task, tokenizer, seed
        self.batch_size, self.eval_batch_size, self.num_workers = (
            batch_size,
            eval_batch_size,
            num_workers,
        )
        self.collate = DataCollatorWithPadding(tokenizer)
        self.train_set = None
        self.val_sets: dict[str, _Encoded] = {}

    @property
    def val_suffixes(self) -> list[str]:
        return [self.task.val_splits[s] or "" for s in self.val_sets]

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        for key in ("train_limit", "val_limit"):
            limit = self.task.get(key)
            if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 1):
                raise ConfigError(
                    f"task.{key}={limit!r} is not allowed: a positive number of rows, or null "
                    "for the whole split"
                )
        train = load_split(self.task, self.task.train_split)
        if self.task.train_limit and self.task.train_limit < len(train["label"]):
            rng = np.random.default_rng(self.seed)
            rows = np.sort(
                rng.choice(len(train["label"]), int(self.task.train_limit), replace=False)
            )
            train = {k: [v[i] for i in rows] for k, v in train.items()}
        self.train_set = self._encode(train)
        first = True
        for split in self.task.val_splits:
            try:
                rows = load_split(self.task, split)
            except DataError:
                if first:  # the main validation split is required; the others when present
                    raise
                continue
            finally:
                first = False
            if self.task.val_limit:
                rows = {k: v[: int(self.task.val_limit)] for k, v in rows.items()}
            self.val_sets[split] = self._encode(rows)

    def _encode(self, rows: dict[str, list]) -> _Encoded:
        texts = [rows[f] for f in self.task.text_fields]
        enc = self.tokenizer(*texts, truncation=True, max_length=int(self.task.max_length))
        cast = float if int(self.task.num_labels) == 1 else int
        return _Encoded(dict(enc), [cast(label) for label in rows["label"]])

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSeededSampler(len(self.train_set), self.seed)
        return DataLoader(
            self.train_set,
            self.batch_size,
            sampler=sampler,
            collate_fn=self.collate,
            **self._loader_kwargs(),
        )

    def calibration_dataloader(self, rows: int) -> DataLoader:
        """A fixed, seeded subset of `rows` training rows, in a fixed order: the inputs a refit
        at the cut is fitted to (the same rows on every rank and after a resume)."""
        count = min(int(rows), len(self.train_set))
        gen = torch.Generator().manual_seed(self.seed)
        picked = torch.randperm(len(self.train_set), generator=gen)[:count].tolist()
        subset = Subset(self.train_set, picked)
        return DataLoader(subset, self.eval_batch_size, collate_fn=self.collate)

    def val_dataloader(self) -> list[DataLoader]:
        return [
            DataLoader(ds, self.eval_batch_size, collate_fn=self.collate, **self._loader_kwargs())
            for ds in self.val_sets.values()
        ]

    def _loader_kwargs(self) -> dict:
        # a generator of its own: creating an iterator then draws no number from the global RNG,
        # which dropout uses, so evaluating does not change the training that follows
        return {
            "num_workers": self.num_workers,
            "generator": torch.Generator().manual_seed(self.seed),
        }

    def steps_per_epoch(self, accumulate: int = 1) -> int:
        batches = -(-len(self.train_set) // self.batch_size)
        return max(1, batches // accumulate)
