"""Where the time of an exported model goes: torch profiler, CPU, one forward pass repeated.

Prunes MiniLM (or BERT-base) one-shot like run.py, exports it (`bsp` -> gathered, `neurons` ->
compact), and prints the ops that take the most self time, for the dense and the exported model
side by side, and the share of the dense pass spent in Linear GEMMs.
Usage (repo root):
python experiments/speed/where_time_goes.py [geometry] [rate] [batch] [threads] [minilm|bert-base]
    [balanced]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from run import exported, model_for  # noqa: E402

from blockprune_pl.export import load_pruned  # noqa: E402
from blockprune_pl.export.bench import encoder_linear_flops  # noqa: E402


def top_ops(model, batch: int, seq: int = 128, repeats: int = 20, rows: int = 8):
    """The profiler's table of the ops with most self time, and the share of the time spent in
    Linear GEMMs (`addmm`/`mm`)."""
    ids = torch.randint(1000, 2000, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    with torch.inference_mode():
        for _ in range(3):
            model(input_ids=ids, attention_mask=mask)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                model(input_ids=ids, attention_mask=mask)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    gemm = sum(e.self_cpu_time_total for e in events if e.key in ("aten::addmm", "aten::mm"))
    return events.table(sort_by="self_cpu_time_total", row_limit=rows), gemm / total


def main() -> None:
    defaults = ["bsp", "5", "1", "1", "minilm", ""]
    geometry, rate, batch, threads, name, balance = (sys.argv[1:] + defaults[len(sys.argv) - 1 :])[
        :6
    ]
    torch.set_num_threads(int(threads))
    with tempfile.TemporaryDirectory() as tmp:
        folder = exported(
            name, geometry, float(rate), Path(tmp) / "model", balance=balance == "balanced"
        )
        pruned = load_pruned(folder)
        dense = model_for(name)
        tokens = int(batch) * 128
        kinds = {}
        for name, module in pruned.named_modules():
            if type(module).__name__ == "GatheredLinear":
                kinds[name] = "dense" if module.runs_dense(tokens) else "gathered"
        if kinds:
            gathered = sorted(n for n, k in kinds.items() if k == "gathered")
            print(f"{len(gathered)} of {len(kinds)} Linears run gathered at {tokens} tokens")
            print(f"dense ones: {sorted(n for n, k in kinds.items() if k == 'dense')}")
        for label, model in (("dense", dense), (f"{geometry} r{rate}", pruned)):
            print(f"\n== {label}, batch {batch}, {threads} thread(s), 20 forward passes")
            table, share = top_ops(model, int(batch))
            print(table)
            if label == "dense":
                ideal = encoder_linear_flops(dense) / encoder_linear_flops(pruned)
                # Amdahl: only the Linears shrink (for bsp/tiles; compact also drops heads)
                bound = 1 / ((1 - share) + share / ideal)
                print(
                    f"Linear GEMMs: {100 * share:.0f}% of the dense pass; shrunk {ideal:.2f}x "
                    f"with the rest unchanged, the whole pass is at best {bound:.2f}x faster"
                )


if __name__ == "__main__":
    main()
