import pytest

from blockprune_pl.collect import _commit, _speedup, method_of
from blockprune_pl.record import RunRecord, code_version


def metrics(rate=5.0, penalty=True, kd=False, bench=None):
    prune = {"penalty": penalty, "penalty_mode": "proximal", "lam": 3.0}
    return RunRecord(
        task="sst2",
        model="minilm",
        geometry="bsp",
        target_rate=rate,
        main_metric="val/acc",
        final={},
        best={},
        dense={},
        steps={"total": 4},
        params={"total": 10},
        pruning={},
        checkpoints={},
        wall_time_s=1.0,
        config={"prune": prune},
        distill={"enabled": kd},
        bench=bench,
    )


def _write_run(folder, rate, final):
    m = metrics(rate=rate)
    m.final = {"val/acc": final}
    m.pruning = {"achieved_rate": rate, "kept_prunable_params": 1, "prunable_params": 5}
    folder.mkdir(parents=True)
    m.write(folder / "metrics.json")


def test_method_names_the_penalty_and_distillation():
    assert method_of(metrics(rate=1.0)) == "dense"
    assert method_of(metrics(penalty=False)) == "magnitude"
    assert method_of(metrics()) == "proximal lam=3"
    assert method_of(metrics(kd=True)) == "proximal lam=3 +kd"
    assert method_of(metrics(penalty=False, kd=True)) == "magnitude +kd"


def test_method_names_the_recipe_knobs():
    m = metrics(kd=True)
    m.config["prune"].update(lam_per="phase", target="doomed", scope="global")
    m.distill["hidden_weight"] = 1.0
    assert method_of(m) == "proximal lam=3/phase doomed global +kd+hidden"
    m.distill["augment"] = 0.3
    assert method_of(m) == "proximal lam=3/phase doomed global +kd+hidden+aug0.3"
    m.distill["attention_weight"] = 1.0
    assert method_of(m) == "proximal lam=3/phase doomed global +kd+hidden+attn+aug0.3"
    m.distill.update(augment=0.0, attention_weight=0.0)
    m.config["prune"]["min_density"] = 0.02
    assert method_of(m) == "proximal lam=3/phase doomed global floor=0.02 +kd+hidden"
    m.config["prune"]["min_density"] = 0.0
    m.config["prune"].update(col_blocks=32, balance=True)
    assert method_of(m) == "proximal lam=3/phase doomed col_blocks=32 balanced global +kd+hidden"
    m.config["prune"]["roles"] = ["ffn_out", "ffn_in", "attn_out", "v", "k", "q"]
    assert method_of(m) == "proximal lam=3/phase doomed col_blocks=32 balanced global +kd+hidden"
    m.config["prune"]["roles"] = ["q", "k"]
    assert method_of(m) == (
        "proximal lam=3/phase doomed col_blocks=32 roles=q,k balanced global +kd+hidden"
    )
    m.config["prune"]["roles"] = ["q", "k", "v", "attn_out", "ffn_in", "ffn_out"]
    m.config["prune"]["role_rates"] = {"q": 1.0, "k": 1.5}
    assert method_of(m) == (
        "proximal lam=3/phase doomed col_blocks=32 role_rates=q:1,k:1.5 balanced global +kd+hidden"
    )
    m.config["prune"]["qk"] = "dims"
    assert method_of(m) == (
        "proximal lam=3/phase doomed col_blocks=32 role_rates=q:1,k:1.5 qk=dims balanced global "
        "+kd+hidden"
    )
    m.config["prune"].update(role_rates=None, attn_ratio=5.5)
    assert method_of(m) == (
        "proximal lam=3/phase doomed col_blocks=32 attn_ratio=5.5 qk=dims balanced global "
        "+kd+hidden"
    )
    m.config["prune"]["score"] = "fisher"
    assert method_of(m) == (
        "proximal lam=3/phase doomed col_blocks=32 attn_ratio=5.5 qk=dims score=fisher balanced "
        "global +kd+hidden"
    )
    m = metrics(penalty=False)
    m.config["prune"]["schedule"] = "cubic"
    assert method_of(m) == "magnitude cubic"


@pytest.mark.parametrize(
    ("geometry", "named"),
    [("bsp", True), ("hybrid", True), ("heads_bsp", True), ("neurons", False)],
)
def test_segment_width_is_named_where_the_geometry_has_segments(geometry, named):
    m = metrics()
    m.geometry = geometry
    m.config["prune"]["col_blocks"] = 16
    assert ("col_blocks=16" in method_of(m)) == named


def test_method_names_the_refit_frozen_embeddings_and_a_missing_penalty_phase():
    m = metrics(kd=True)
    m.config["prune"].update(refit=True, freeze_embeddings=True)
    assert method_of(m) == "proximal lam=3 refit frozen-emb +kd"
    m.steps = {"finetune": 0, "penalty": 0, "retrain": 4, "total": 4}
    assert method_of(m) == "one-shot magnitude refit frozen-emb +kd"


def test_speedup_is_the_batch_one_row_when_benchmarked():
    assert _speedup(metrics()) is None
    rows = [{"batch": 8, "speedup": 3.0}, {"batch": 1, "speedup": 2.5}]
    assert _speedup(metrics(bench={"results": rows})) == 2.5


def test_each_run_is_measured_against_the_dense_run_of_its_own_model_and_task(tmp_path):
    from blockprune_pl.collect import collect

    def write(name, model, task, rate, final, own_dense):
        m = metrics(rate=rate)
        m.model, m.task = model, task
        m.final, m.dense = {"val/acc": final}, {"val/acc": own_dense}
        m.pruning = {"achieved_rate": rate, "kept_prunable_params": 1, "prunable_params": 5}
        (tmp_path / name).mkdir()
        m.write(tmp_path / name / "metrics.json")

    write("minilm_sst2_dense", "minilm", "sst2", 1.0, 0.90, 0.90)
    write("electra_sst2_dense", "electra", "sst2", 1.0, 0.80, 0.80)
    write("minilm_sst2_r5", "minilm", "sst2", 5.0, 0.85, 0.99)
    write("electra_sst2_r5", "electra", "sst2", 5.0, 0.70, 0.99)
    write("minilm_rte_r5", "minilm", "rte", 5.0, 0.50, 0.60)  # no dense run: its own record
    rows, incomplete = collect(tmp_path)
    by_run = {r["run"]: r for r in rows}
    assert by_run["minilm_sst2_r5"]["dense"] == 0.90
    assert by_run["electra_sst2_r5"]["dense"] == 0.80
    assert by_run["electra_sst2_r5"]["drop"] == pytest.approx(0.10)
    assert by_run["minilm_rte_r5"]["dense"] == 0.60 and incomplete == []


def test_run_folders_given_one_by_one_are_named_by_their_folder(tmp_path):
    from blockprune_pl.collect import collect

    _write_run(tmp_path / "sst2_dense", 1.0, 0.9)
    _write_run(tmp_path / "sst2_bsp_r5", 5.0, 0.8)
    (tmp_path / "sst2_stopped" / ".hydra").mkdir(parents=True)
    (tmp_path / "sst2_stopped" / ".hydra" / "config.yaml").write_text("{}")
    rows, incomplete = collect(
        [tmp_path / "sst2_bsp_r5", tmp_path / "sst2_dense", tmp_path / "sst2_stopped"]
    )
    assert sorted(r["run"] for r in rows) == ["sst2_bsp_r5", "sst2_dense"]
    assert incomplete == ["sst2_stopped"]
    assert {r["run"]: r["dense"] for r in rows}["sst2_bsp_r5"] == 0.9


def test_a_record_round_trips_and_a_foreign_file_is_named(tmp_path):
    from blockprune_pl.errors import ConfigError

    record = metrics(kd=True)
    record.write(tmp_path / "metrics.json")
    assert RunRecord.read(tmp_path / "metrics.json") == record
    (tmp_path / "other.json").write_text('{"task": "sst2"}')
    with pytest.raises(ConfigError, match=r"other.json is not a run record .*'model'"):
        RunRecord.read(tmp_path / "other.json")


def test_the_record_names_the_commit_of_this_checkout():
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    code = code_version()
    assert code["commit"] == head.stdout.decode().strip()
    assert isinstance(code["dirty"], bool) and code["version"]


def test_a_copy_inside_another_repository_names_no_commit(tmp_path):
    import subprocess

    if subprocess.run(["git", "init", "-q", str(tmp_path)], capture_output=True).returncode:
        pytest.skip("no git")
    (tmp_path / "site-packages").mkdir()  # an installed copy in a venv of another checkout
    subprocess.run(
        [
            "git",
            "-C",
            str(tmp_path),
            "-c",
            "user.email=a@b",
            "-c",
            "user.name=a",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "other project",
        ],
        check=True,
    )
    assert "commit" not in code_version(tmp_path / "site-packages")
    assert "commit" in code_version(tmp_path)  # the top of a checkout names its commit


def test_only_changed_code_or_configs_mark_a_run_dirty(tmp_path):
    import subprocess

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.email=a@b", "-c", "user.name=a", *args],
            capture_output=True,
        )

    if git("init", "-q").returncode:
        pytest.skip("no git")
    (tmp_path / "blockprune_pl").mkdir()
    (tmp_path / "blockprune_pl" / "train.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("results\n")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    (tmp_path / "README.md").write_text("results, edited while a run trained\n")
    assert code_version(tmp_path)["dirty"] is False
    (tmp_path / "blockprune_pl" / "train.py").write_text("x = 2\n")
    assert code_version(tmp_path)["dirty"] is True


def test_the_collector_shows_the_short_commit_and_marks_changed_code():
    m = metrics()
    assert _commit(m) == ""  # records written before the code was recorded
    m.code = {"commit": "0123456789abcdef", "dirty": False}
    assert _commit(m) == "0123456"
    m.code["dirty"] = True
    assert _commit(m) == "0123456+"


def test_method_names_a_phase_trained_at_another_lr():
    m = metrics(penalty=False)
    m.steps = {"penalty": 0, "retrain": 8, "total": 12}
    m.config["prune"]["retrain_lr_scale"] = 3.0
    m.config["prune"]["penalty_lr_scale"] = 2.0  # no penalty phase: the scale never acted
    assert method_of(m) == "one-shot magnitude retrain-lr x3"


def test_a_written_table_reads_back_as_the_rows_it_was_written_from(tmp_path):
    from blockprune_pl.collect import collect, read_rows, write

    _write_run(tmp_path / "runs" / "sst2" / "dense", 1.0, 0.9)
    _write_run(tmp_path / "runs" / "sst2" / "bsp_r5", 5.0, 0.8)
    rows, _ = collect(tmp_path / "runs")
    write(rows, [], tmp_path / "table")
    again = read_rows(tmp_path / "table" / "results.csv")
    assert again == rows
    assert isinstance(again[1]["drop"], float) and again[1]["speedup"] is None


def test_merge_keeps_the_earlier_rows_and_replaces_a_run_collected_again(tmp_path):
    from blockprune_pl.collect import main, read_rows

    first, second, table = tmp_path / "first", tmp_path / "second", tmp_path / "table"
    _write_run(first / "sst2" / "dense", 1.0, 0.90)
    _write_run(first / "sst2" / "bsp_r5", 5.0, 0.80)
    _write_run(first / "sst2" / "bsp_r2", 2.0, 0.85)
    main([str(first), "--out", str(table)])
    # the first folders are gone; a second seed and a rerun of one run arrive
    _write_run(second / "sst2" / "dense", 1.0, 0.90)
    _write_run(second / "sst2" / "bsp_seed43_r5", 5.0, 0.82)
    _write_run(second / "sst2" / "bsp_r2", 2.0, 0.87)
    main([str(second), "--out", str(table), "--merge"])
    by_run = {r["run"]: r for r in read_rows(table / "results.csv")}
    assert sorted(by_run) == ["sst2/bsp_r2", "sst2/bsp_r5", "sst2/bsp_seed43_r5", "sst2/dense"]
    assert by_run["sst2/bsp_r5"]["value"] == 0.80  # kept from the first collection
    assert by_run["sst2/bsp_r2"]["value"] == 0.87  # replaced by the rerun
    assert by_run["sst2/bsp_seed43_r5"]["drop"] == pytest.approx(0.08)
    assert "| 0.8200 |" in (table / "results.md").read_text()


def test_merge_without_a_table_or_into_a_foreign_one_is_refused(tmp_path):
    from blockprune_pl.collect import main
    from blockprune_pl.errors import ConfigError

    _write_run(tmp_path / "runs" / "sst2" / "dense", 1.0, 0.9)
    with pytest.raises(SystemExit, match=r"--merge: .*results.csv does not exist"):
        main([str(tmp_path / "runs"), "--out", str(tmp_path / "table"), "--merge"])
    (tmp_path / "table").mkdir()
    (tmp_path / "table" / "results.csv").write_text("task,value\nsst2,0.9\n")
    with pytest.raises(ConfigError, match=r"not a results table of this collector: no \['model'"):
        main([str(tmp_path / "runs"), "--out", str(tmp_path / "table"), "--merge"])
