"""The recipe study's summary (experiments/recipe_minilm/summarize.py) reads a collector table and
gives each run's average drop against its own dense start and, with --against, against the
dense starts named there."""

import pytest

from blockprune_pl.collect import COLUMNS, read_rows, write
from tests.conftest import recipe_script


def _row(task, run, value, dense):
    row = dict.fromkeys(COLUMNS)
    row.update(model="minilm", task=task, geometry="neurons", rate=5.295, method="m",
               metric="val/x", value=value, dense=dense, drop=dense - value, run=run)  # fmt: skip
    return row


def test_against_measures_each_final_metric_from_the_given_dense_starts(tmp_path):
    rows = [
        _row("cola", "cola/fisher_r5.295", 0.29, 0.31),
        _row("rte", "rte/fisher_r5.295", 0.56, 0.56),
    ]
    write(rows, [], tmp_path)
    summary = recipe_script("summarize")
    lines = summary.table(read_rows(tmp_path / "results.csv"), {"cola": 30.0, "rte": 58.0})
    fisher = next(line for line in lines if line.startswith("| fisher |"))
    cells = [c.strip() for c in fisher.strip("|").split("|")]
    assert cells[-2] == "1.00 (2 tasks)"  # own starts: cola 2, rte 0
    assert cells[-1] == "1.50 (2 tasks)"  # the given starts: cola 30 - 29 = 1, rte 58 - 56 = 2


def test_against_rejects_a_task_outside_the_study_naming_it():
    with pytest.raises(SystemExit, match="qnli=80.*one of"):
        recipe_script("summarize").parse_against("cola=30.9,qnli=80")


def test_seeds_averages_the_runs_of_one_name_task_by_task(tmp_path):
    rows = [
        _row("cola", "cola/fisher_r5.295", 0.29, 0.31),
        _row("cola", "cola/fisher_seed43_r5.295", 0.25, 0.31),
        _row("rte", "rte/fisher_r5.295", 0.56, 0.56),
    ]
    write(rows, [], tmp_path)
    lines = recipe_script("summarize").table(read_rows(tmp_path / "results.csv"), {}, seeds=True)
    runs = [line for line in lines if line.startswith("| fisher")]
    assert len(runs) == 1  # seed 43 folded into the seed-42 name
    cells = [c.strip() for c in runs[0].strip("|").split("|")]
    assert cells[3 + 3] == "27.00 (+4.00)"  # cola: mean of 29 and 25 against 31
    assert cells[-1] == "2.00 (2 tasks)"  # cola 4, rte 0


def test_phases_splits_each_drop_into_first_phase_cut_and_retrain(tmp_path):
    rows = [
        _row("cola", "cola/fisher_r2", 0.29, 0.31),
        _row("cola", "cola/fisher_seed43_r2", 0.27, 0.31),
        _row("rte", "rte/fisher_r2", 0.58, 0.60),
    ]
    # cola: 31 -> 28 in the penalty phase, free cut, +1 retrained; seed 43: 31 -> 26, -1, +2
    rows[0].update(before_prune=0.28, after_prune=0.28)
    rows[1].update(before_prune=0.26, after_prune=0.25)
    rows[2].update(before_prune=0.60, after_prune=0.57)  # rte: 0, -3 at the cut, +1
    write(rows, [], tmp_path)
    lines = recipe_script("summarize").phase_table(read_rows(tmp_path / "results.csv"), seeds=True)
    run = next(line for line in lines if line.startswith("| fisher"))
    cells = [c.strip() for c in run.strip("|").split("|")]
    assert cells[2 + 2] == "+0.00 / -3.00 / +1.00"  # rte
    assert cells[2 + 3] == "-4.00 / -0.50 / +1.50"  # cola: the two seeds' means
    assert cells[-3:] == ["-2.00 (2 tasks)", "-1.75 (2 tasks)", "+1.25 (2 tasks)"]


def test_phases_rejects_against_naming_it(tmp_path, capsys):
    write([_row("cola", "cola/fisher_r2", 0.29, 0.31)], [], tmp_path)
    main = recipe_script("summarize").main
    with pytest.raises(SystemExit):
        main([str(tmp_path / "results.csv"), "--phases", "--against", "cola=30.9"])
    assert "--against 'cola=30.9' does not apply to --phases" in capsys.readouterr().err
