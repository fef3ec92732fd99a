"""Time of one distilled training step (batch 32, a frozen teacher, logits + hidden-state loss,
AdamW) with the word embeddings trained or frozen, outside the framework, two rounds each.

    python experiments/recipe_minilm/refit/step_time_frozen.py DENSE_DIR --glue ../shared/data/glue
"""

import argparse
import time

import pandas as pd
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("--glue", required=True)
parser.add_argument("--threads", type=int, default=2)
args = parser.parse_args()
torch.set_num_threads(args.threads)
tok = AutoTokenizer.from_pretrained(args.model)
rows = pd.read_parquet(f"{args.glue}/sst2/train.parquet").sample(32 * 25, random_state=0)
texts, labels = list(rows.sentence), torch.tensor(rows.label.values)
batches = [tok(texts[i : i + 32], padding=True, return_tensors="pt") for i in range(0, 800, 32)]
for freeze in (False, True, False, True):
    torch.manual_seed(0)
    student = AutoModelForSequenceClassification.from_pretrained(args.model).train()
    teacher = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    if freeze:
        student.get_input_embeddings().requires_grad_(False)
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for i, batch in enumerate(batches):
        started = time.perf_counter()
        out = student(**batch, labels=labels[i * 32 : (i + 1) * 32], output_hidden_states=True)
        with torch.no_grad():
            ref = teacher(**batch, output_hidden_states=True)
        pairs = zip(out.hidden_states[1:], ref.hidden_states[1:])
        hidden = sum((a - b).square().mean() for a, b in pairs)
        (out.loss + hidden).backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - started)
    steady = sorted(times[5:])
    print(f"frozen embeddings {freeze}: median step {steady[len(steady) // 2]:.3f} s", flush=True)
