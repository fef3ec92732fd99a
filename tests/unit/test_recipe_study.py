"""The recipe study's driver (experiments/recipe_minilm/run.py) builds the command lines it says
it builds: an override given on its command line reaches every run and wins over the script's."""

import json
import os
import signal
import subprocess

import pytest

from tests.conftest import recipe_script


def _jobs(extra):
    """The study's runs for CoLA at rate 5.295, parsed from a command line as a user gives it."""
    return _all_jobs(["--only", "cola/", *extra])


def _all_jobs(argv):
    """The study's runs at rate 5.295 on every task, parsed from a command line."""
    study = recipe_script("run")
    base = ["--glue", "GLUE", "--methods", "neurons_ratio_fisher", "--rates", "5.295"]
    args = study.parse_args([*base, "--ablations", "none", *argv])
    return {j["name"]: j["overrides"] for j in study.jobs(args)}


def _value(overrides, key):
    """What Hydra ends with: the last override of that key."""
    return [o.split("=", 1)[1] for o in overrides if o.startswith(key + "=")][-1]


def test_extra_overrides_win_over_the_scripts_own_in_dense_and_pruned_runs():
    jobs = _jobs(["prune.phases.finetune=5", "prune.phases.retrain=7", "seed=44"])
    dense, pruned = jobs["cola/dense"], jobs["cola/neurons_ratio_fisher_r5.295"]
    assert _value(dense, "prune.phases.finetune") == "5"  # the script sets 3
    assert _value(pruned, "prune.phases.retrain") == "7"  # the script sets 2.0
    assert _value(dense, "seed") == _value(pruned, "seed") == "44"  # the script sets 42


def test_without_extra_overrides_the_study_keeps_its_own_phases_and_seed():
    jobs = _jobs([])
    assert _value(jobs["cola/dense"], "prune.phases.finetune") == "3"
    pruned = jobs["cola/neurons_ratio_fisher_r5.295"]
    assert _value(pruned, "prune.phases.retrain") == "2.0"  # its phase epochs times the scale
    assert _value(jobs["cola/dense"], "seed") == "42"


def test_dense_epochs_lengthen_the_dense_starts_and_leave_the_pruned_runs_unfine_tuned():
    jobs = _all_jobs(["--dense-epochs", "5"])
    for task in ("sst2", "stsb", "mrpc", "cola", "rte"):
        assert _value(jobs[f"{task}/dense"], "prune.phases.finetune") == "5"
        assert _value(jobs[f"{task}/neurons_ratio_fisher_r5.295"], "prune.phases.finetune") == "0"


def test_dense_epochs_per_task_change_only_the_tasks_named():
    jobs = _all_jobs(["--dense-epochs", "sst2=2,cola=5"])
    assert _value(jobs["sst2/dense"], "prune.phases.finetune") == "2"  # the script sets 1
    assert _value(jobs["cola/dense"], "prune.phases.finetune") == "5"  # the script sets 3
    assert _value(jobs["rte/dense"], "prune.phases.finetune") == "3"


def test_dense_epochs_for_a_task_outside_the_study_is_an_error_naming_it(capsys):
    with pytest.raises(SystemExit):
        _all_jobs(["--dense-epochs", "qnli=5"])
    err = capsys.readouterr().err
    assert "--dense-epochs" in err and "'qnli'" in err and "'cola'" in err


def test_a_stopped_driver_stops_its_running_runs_and_says_so(tmp_path, monkeypatch):
    study = recipe_script("run")
    started = []

    def start(job, args):  # a stand-in run that would train for a minute
        started.append(subprocess.Popen(["sleep", "60"]))
        return started[-1]

    def sleep(_):  # the driver's first wait: someone kills the driver alone
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(study, "start", start)
    monkeypatch.setattr(study.time, "sleep", sleep)
    handler_before = signal.getsignal(signal.SIGTERM)
    argv = ["--glue", "GLUE", "--methods", "neurons_ratio_fisher", "--rates", "5.295"]
    with pytest.raises(SystemExit) as stop:
        study.main([*argv, "--ablations", "none", "--only", "cola/", "--out", str(tmp_path)])
    assert stop.value.code == 128 + signal.SIGTERM
    assert len(started) == 1 and started[0].wait(timeout=10) == -signal.SIGTERM
    status = json.loads((tmp_path / "status.json").read_text())["status"]
    assert status["cola/dense"] == "stopped (the driver got SIGTERM)"
    assert status["cola/neurons_ratio_fisher_r5.295"] == "not started (the driver got SIGTERM)"
    assert signal.getsignal(signal.SIGTERM) == handler_before  # the caller's handler is back
