from blockprune_pl.collect import _speedup, method_of


def metrics(rate=5.0, penalty=True, kd=False, bench=None):
    prune = {"penalty": penalty, "penalty_mode": "proximal", "lam": 3.0}
    return {
        "target_rate": rate,
        "config": {"prune": prune},
        "distill": {"enabled": kd},
        **({"bench": bench} if bench else {}),
    }


def test_method_names_the_penalty_and_distillation():
    assert method_of(metrics(rate=1.0)) == "dense"
    assert method_of(metrics(penalty=False)) == "magnitude"
    assert method_of(metrics()) == "proximal lam=3"
    assert method_of(metrics(kd=True)) == "proximal lam=3 +kd"
    assert method_of(metrics(penalty=False, kd=True)) == "magnitude +kd"


def test_method_names_the_recipe_knobs():
    m = metrics(kd=True)
    m["config"]["prune"].update(lam_per="phase", target="doomed", scope="global")
    m["distill"]["hidden_weight"] = 1.0
    assert method_of(m) == "proximal lam=3/phase doomed global +kd+hidden"
    m = metrics(penalty=False)
    m["config"]["prune"]["schedule"] = "cubic"
    assert method_of(m) == "magnitude cubic"


def test_speedup_is_the_batch_one_row_when_benchmarked():
    assert _speedup(metrics()) is None
    rows = [{"batch": 8, "speedup": 3.0}, {"batch": 1, "speedup": 2.5}]
    assert _speedup(metrics(bench={"results": rows})) == 2.5
