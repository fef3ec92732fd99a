import json

import pytest
import torch

from blockprune_pl import train
from blockprune_pl.errors import ConfigError

PHASES = ["prune.phases.finetune=4", "prune.phases.penalty=4", "prune.phases.retrain=4"]


def weights_of(cfg, results):
    ckpt = torch.load(results["checkpoints"]["last"], weights_only=False)
    return ckpt["state_dict"], ckpt


def test_dense_tiny_fit_writes_metrics_json(tiny_cfg):
    cfg = tiny_cfg("prune=dense", "prune.phase_unit=epoch", "prune.phases.finetune=2")
    results = train.run(cfg)
    saved = json.loads(
        (cfg_path := (__import__("pathlib").Path(cfg.output_dir)))
        .joinpath("metrics.json")
        .read_text()
    )
    assert saved["final"] == results["final"] and "val/acc" in saved["final"]
    assert saved["steps"] == {"finetune": 8, "penalty": 0, "retrain": 0, "total": 8}
    assert saved["params"]["total"] > saved["params"]["encoder"] > 0
    assert saved["pruning"]["achieved_rate"] == 1.0 and saved["wall_time_s"] > 0
    assert saved["config"]["task"]["name"] == "sst2"
    assert (cfg_path / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("preset", ["bsp", "tiles", "neurons", "irregular", "magnitude"])
def test_every_prune_preset_runs_and_reaches_its_rate(tiny_cfg, preset):
    extra = ["prune.block=[8,8]"] if preset == "tiles" else []
    cfg = tiny_cfg(f"prune={preset}", "prune.rate=4.0", *PHASES, *extra)
    results = train.run(cfg)
    stats = results["pruning"]
    assert results["steps"]["total"] == 12
    tolerance = 0.7 if preset == "neurons" else 0.1  # 4 heads: one head is a big step
    assert abs(stats["achieved_rate"] - 4.0) < tolerance
    state, ckpt = weights_of(cfg, results)
    # the pruner's buffers are saved with the model
    assert state["pruner._extra_state"]["density"] == 0.25
    # the saved final weights hold the zeros measured in metrics.json
    kept = sum(
        int(torch.count_nonzero(v))
        for k, v in state.items()
        if k.endswith("weight")
        and "LayerNorm" not in k
        and any(s in k for s in ("attention", "intermediate", "output.dense"))
    )
    assert kept == stats["kept_prunable_params"]


def logged(cfg, key: str) -> dict[int, float]:
    """`{step: value}` of one metric from the run's CSV log."""
    import csv
    from pathlib import Path

    (log,) = Path(cfg.output_dir).glob("csv/*/metrics.csv")
    return {int(r["step"]): float(r[key]) for r in csv.DictReader(log.open()) if r.get(key)}


def test_cubic_schedule_prunes_gradually(tiny_cfg):
    from blockprune_pl.pruning.masks import cubic_density

    phases = ["prune.phases.finetune=2", "prune.phases.penalty=8", "prune.phases.retrain=2"]
    # no penalty: the proximal step zeroes doomed groups by itself, and the logged density
    # counts non-zero weights; here the schedule alone sets it
    cfg = tiny_cfg(
        "prune.rate=4.0",
        "prune.schedule=cubic",
        "prune.prune_every=1",
        "prune.log_every=1",
        "prune.penalty=false",
        *phases,
    )
    results = train.run(cfg)
    assert abs(results["pruning"]["achieved_rate"] - 4.0) < 0.1
    density = logged(cfg, "prune/density")
    inside = {s: d for s, d in density.items() if 2 < s < 10}
    # every step of the penalty phase sits on the cubic curve (within one group per matrix),
    # strictly between dense and the target: not one shot at the end
    for step, value in inside.items():
        assert value == pytest.approx(cubic_density(step, 2, 10, 0.25), abs=0.04), step
    assert sum(0.3 < d < 0.95 for d in inside.values()) >= 4
    assert list(inside.values()) == sorted(inside.values(), reverse=True)


@pytest.mark.parametrize("penalty", [True, False])
def test_the_targeted_penalty_empties_the_doomed_groups_before_the_cut(tiny_cfg, penalty):
    cfg = tiny_cfg("prune.rate=2.0", f"prune.penalty={penalty}", "prune.log_every=1", *PHASES)
    results = train.run(cfg)
    energy = results["pruning"]["pruned_energy"]["total"]
    doomed = logged(cfg, "prune/doomed_energy")
    if penalty:
        # the groups the cut removes hold almost nothing when it comes, so the metric right
        # after the cut is the metric right before it
        assert energy < 1e-3
        assert doomed[7] < 0.05 * doomed[4]
        assert results["after_prune"] == results["before_prune"]
    else:
        assert energy > 0.2 and doomed[7] > 0.2


def test_existing_results_are_never_overwritten(tiny_cfg):
    cfg = tiny_cfg("prune=dense", "prune.phases.finetune=1")
    train.run(cfg)
    before = (__import__("pathlib").Path(cfg.output_dir) / "metrics.json").read_text()
    with pytest.raises(ConfigError, match="already holds results"):
        train.run(cfg)
    assert (__import__("pathlib").Path(cfg.output_dir) / "metrics.json").read_text() == before


def test_gradient_accumulation_counts_phases_and_penalty_in_optimizer_steps(tiny_cfg, monkeypatch):
    from blockprune_pl.pruning import BlockPruner

    thresholds = []
    real_step = BlockPruner.proximal_step

    def counted(self, threshold):
        thresholds.append(threshold)
        return real_step(self, threshold)

    monkeypatch.setattr(BlockPruner, "proximal_step", counted)
    # 64 rows / batch 16 = 4 batches an epoch = 2 optimizer steps with accumulation 2
    cfg = tiny_cfg(
        "prune.rate=2.0",
        "prune.phase_unit=epoch",
        "prune.phases.finetune=1",
        "prune.phases.penalty=2",
        "prune.phases.retrain=1",
        "trainer.accumulate_grad_batches=2",
    )
    results = train.run(cfg)
    assert results["steps"] == {"finetune": 2, "penalty": 4, "retrain": 2, "total": 8}
    # one proximal step per optimizer step of the penalty phase (8 batches), and their
    # thresholds add up to the phase's lam
    assert len(thresholds) == 4
    assert sum(thresholds) == pytest.approx(float(cfg.prune.lam))
    assert results["pruning"]["pruned_energy"]["total"] < 1e-3
    assert torch.load(results["checkpoints"]["last"], weights_only=False)["global_step"] == 8


def test_global_scope_ranks_all_matrices_together_end_to_end(tiny_cfg):
    cfg = tiny_cfg("prune.rate=4.0", "prune.scope=global", "prune.qk=same", *PHASES)
    results = train.run(cfg)
    stats = results["pruning"]
    assert abs(stats["achieved_rate"] - 4.0) < 0.1
    # one ranking over the model: the matrices end at different densities (scope=layer puts
    # every matrix within one 4-weight group of 0.25)
    per_role = stats["density_per_role"].values()
    assert max(abs(d - 0.25) for d in per_role) > 0.01


def test_attn_ratio_keeps_the_attention_denser_end_to_end(tiny_cfg):
    # ratio 3 at rate 2.5 on the tiny BERT (4 heads): the attention asks for 2.4 heads and keeps
    # 2, the FFN makes up the rate (0.3 instead of the 0.4 of every matrix at the rate)
    overrides = ("prune=heads_bsp", "prune.col_blocks=4", "prune.rate=2.5", "prune.attn_ratio=3")
    results = train.run(tiny_cfg(*overrides, *PHASES))
    stats = results["pruning"]
    assert stats["density_per_role"]["q"] == stats["density_per_role"]["attn_out"] == 0.5
    assert stats["density_per_role"]["ffn_in"] == pytest.approx(0.3, abs=0.02)
    assert stats["achieved_rate"] == pytest.approx(2.5, abs=0.05)


def test_fisher_score_cuts_the_groups_the_penalty_steps_ranked_lowest(tiny_cfg):
    # a penalty phase of 6 steps, shorter than reweight_every (20): the first ranking waits for
    # the gradients of 3 steps, then the penalty acts on the groups ranked lowest
    overrides = ("prune=neurons", "prune.rate=2.0", "prune.score=fisher")
    cfg = tiny_cfg(*overrides, "prune.phases.finetune=2", "prune.phases.penalty=6")
    results = train.run(cfg)
    state, _ = weights_of(cfg, results)
    assert int(state["pruner.fisher_steps"]) == 6  # gathered over the penalty steps only
    sets = [k for k in state if k.startswith("pruner.fisher_") and k != "pruner.fisher_steps"]
    assert len(sets) == 4  # heads and neurons of the tiny BERT's two layers
    for key in sets:
        fisher, keep = state[key], state[key.replace("fisher_", "keep_")]
        assert 0 < int(keep.sum()) < len(keep)
        assert float(fisher[keep].min()) >= float(fisher[~keep].max())  # the cut kept the best
        assert int(state[key.replace("fisher_", "alpha_")].count_nonzero()) > 0  # penalised


def test_best_checkpoint_is_never_a_state_before_the_final_prune(tiny_cfg):
    cfg = tiny_cfg("prune.rate=8.0", *PHASES)
    results = train.run(cfg)
    best = results["checkpoints"]["best"]
    assert best, results["checkpoints"]
    ckpt = torch.load(best, weights_only=False)
    assert ckpt["global_step"] >= 8  # finetune 4 + penalty 4: the cut
    assert ckpt["state_dict"]["pruner._extra_state"]["density"] == 0.125


def test_the_start_line_says_what_runs(tiny_cfg, capsys):
    cfg = tiny_cfg("prune.rate=2.0", *PHASES)
    train.run(cfg)
    out = capsys.readouterr().out
    expected = "== tiny_bert on sst2: bsp rate 2; optimizer steps finetune 4, penalty 4, retrain 4"
    assert expected in out
    assert "device cpu" in out


def test_frozen_embeddings_stay_as_the_fine_tune_left_them(tiny_cfg):
    from safetensors.torch import load_file

    cfg = tiny_cfg("prune.rate=4.0", *PHASES, "prune.freeze_embeddings=true")
    results = train.run(cfg)
    state, _ = weights_of(cfg, results)
    # the teacher folder holds the model exactly as the fine-tune left it
    teacher = load_file(f"{cfg.output_dir}/teacher/model.safetensors")
    key = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(state[f"model.{key}"], teacher[key])
    ffn = "bert.encoder.layer.0.intermediate.dense.weight"
    assert not torch.equal(state[f"model.{ffn}"], teacher[ffn])  # the rest trained on


def test_frozen_embeddings_are_trained_in_the_fine_tune(tiny_cfg):
    from blockprune_pl.models import build_model, load_tokenizer

    cfg = tiny_cfg("prune.rate=4.0", *PHASES, "prune.freeze_embeddings=true")
    results = train.run(cfg)
    state, _ = weights_of(cfg, results)
    start = build_model(cfg.model, 2, load_tokenizer(cfg.model), seed=int(cfg.seed))
    key = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(state[f"model.{key}"], start.state_dict()[key])


def test_each_phase_runs_at_its_own_lr_scale(tiny_cfg):
    cfg = tiny_cfg("prune.rate=2", *PHASES, "prune.penalty_lr_scale=2", "prune.retrain_lr_scale=3")
    built = train.build(cfg, train.preflight(cfg, None))
    setup = built.module.configure_optimizers()
    optimizer, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # the same position in each 4-step phase: the peak after the one-step warm-up
    assert lrs[0] == pytest.approx(cfg.optim.lr)
    assert lrs[4] == pytest.approx(2 * cfg.optim.lr)
    assert lrs[8] == pytest.approx(3 * cfg.optim.lr)


def test_record_names_the_code_as_it_was_when_the_run_started(tiny_cfg, monkeypatch):
    import json
    from pathlib import Path

    from blockprune_pl import train

    # the checkout moves to another commit while the run trains
    moved = {"yet": False}
    fit = train.fit

    def fit_then_move(*args, **kwargs):
        fit(*args, **kwargs)
        moved["yet"] = True

    monkeypatch.setattr(train, "fit", fit_then_move)
    monkeypatch.setattr(
        train, "code_version", lambda: {"commit": ("b" if moved["yet"] else "a") * 40}
    )
    cfg = tiny_cfg("prune.rate=2.0", "prune.phases.finetune=2", "prune.phases.penalty=2",
                   "prune.phases.retrain=2")  # fmt: skip
    train.run(cfg)
    record = json.loads((Path(cfg.output_dir) / "metrics.json").read_text())
    assert record["code"]["commit"] == "a" * 40
