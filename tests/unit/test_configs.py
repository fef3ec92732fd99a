import pytest

from tests.conftest import CONF, compose

GROUPS = ["model", "task", "prune", "trainer", "logger"]


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))


@pytest.mark.parametrize("group, option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_of_every_group_composes(group, option, tmp_path):
    cfg = compose([f"{group}={option}"], tmp_path)
    assert cfg[group] is not None
    if group == "task":
        assert cfg.task.name == option and cfg.task.main_metric in cfg.task.metrics
    if group == "prune":
        assert cfg.prune.rate >= 1.0 and set(cfg.prune.phases) == {"finetune", "penalty", "retrain"}


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiments_compose_and_only_override(experiment, tmp_path):
    cfg = compose([f"experiment={experiment}"], tmp_path)
    assert cfg.model.name and cfg.task.name and cfg.prune.geometry
    text = (CONF / "experiment" / f"{experiment}.yaml").read_text()
    assert text.startswith("# @package _global_") and "defaults:" not in text


def test_slurm_launcher_preset_composes():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.gpus_per_node == 1


def test_nine_glue_tasks_and_required_models_exist():
    assert options("task") == sorted(
        ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]
    )
    assert {
        "bert",
        "roberta",
        "distilbert",
        "minilm",
        "tiny_bert",
        "tiny_roberta",
        "tiny_distilbert",
    } <= set(options("model"))
    assert {"dense", "bsp", "tiles", "neurons", "irregular", "magnitude"} <= set(options("prune"))


def test_default_is_minilm_on_sst2_dense():
    cfg = compose([])
    assert (cfg.model.name, cfg.task.name, cfg.prune.geometry, cfg.prune.rate) == (
        "minilm",
        "sst2",
        "neurons",
        1.0,
    )


def test_default_preset_is_the_neurons_split_with_the_penalty_recipe():
    # the best recipe measured on MiniLM: whole heads (q and k cut with them) and whole FFN
    # neurons ranked by Fisher scores, the attention 5.5 times as dense as the FFN, with the
    # targeted per-phase penalty and the teacher of prune=bsp
    cfg = compose(["prune.rate=5"]).prune
    bsp = compose(["prune=bsp"]).prune
    assert (cfg.geometry, cfg.qk, cfg.rate, cfg.attn_ratio) == ("neurons", "same", 5.0, 5.5)
    # heads and neurons ranked by what removing each costs the loss; prune=bsp by norm
    assert (cfg.score, bsp.score) == ("fisher", "norm")
    recipe = ("penalty", "target", "lam", "lam_per", "relative", "penalty_mode", "distill")
    assert {k: cfg[k] for k in recipe} == {k: bsp[k] for k in recipe}
    assert cfg.penalty and cfg.target == "doomed" and cfg.distill.enabled
    # three times bsp's penalty and retrain phases (the fine-tune as bsp's)
    assert dict(cfg.phases) == {
        "finetune": bsp.phases.finetune,
        "penalty": 3 * bsp.phases.penalty,
        "retrain": 3 * bsp.phases.retrain,
    }


@pytest.mark.parametrize(
    ("overrides", "label"),
    [
        ([], "minilm"),
        (["model=roberta"], "roberta"),
        (["model.name_or_path=/data/models/my_electra/"], "my_electra"),
        (["model.name_or_path=microsoft/deberta-v3-small"], "deberta-v3-small"),
        (["model=roberta", "model.name_or_path=camembert-base"], "camembert-base"),
        (["model.name_or_path=/data/x", "model.name=mine"], "mine"),
    ],
)
def test_model_label_follows_an_overridden_path(overrides, label):
    from omegaconf import OmegaConf

    cfg = compose(overrides)
    assert cfg.model.name == label
    assert OmegaConf.to_container(cfg.model, resolve=True)["name"] == label


def test_make_runs_one_cut_ranks_by_norm_as_it_has_no_penalty_steps_to_score():
    # the default preset ranks by Fisher scores, gathered over the penalty phase; make run's
    # protocol has none, and a Fisher ranking would refuse to start
    prune = compose(["experiment=short_budget"]).prune
    assert (prune.phases.penalty, prune.score) == (0, "norm")
