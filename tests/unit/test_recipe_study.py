"""The recipe study's driver (experiments/recipe_minilm/run.py) builds the command lines it says
it builds: an override given on its command line reaches every run and wins over the script's."""

from tests.conftest import recipe_script


def _jobs(extra):
    """The study's runs for CoLA at rate 5.295, parsed from a command line as a user gives it."""
    study = recipe_script("run")
    argv = ["--glue", "GLUE", "--methods", "neurons_ratio_fisher", "--rates", "5.295"]
    args = study.parse_args([*argv, "--ablations", "none", "--only", "cola/", *extra])
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
