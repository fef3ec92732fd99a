import torch
from transformers import AutoModelForSequenceClassification

from blockprune_pl import train
from blockprune_pl.export import export, load_run


def test_hf_export_keeps_zeros_and_logits(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        "prune.rate=4.0",
        "prune.phases.finetune=2",
        "prune.phases.penalty=2",
        "prune.phases.retrain=2",
    )
    results = train.run(cfg)
    masked, tokenizer, _ = load_run(cfg.output_dir)
    out = export(cfg.output_dir, tmp_path / "hf")
    loaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    batch = tokenizer(["a fine film", "dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(masked(**batch).logits, loaded(**batch).logits)
    kept = sum(
        int(torch.count_nonzero(m.weight))
        for n, m in loaded.named_modules()
        if isinstance(m, torch.nn.Linear) and "encoder" in n
    )
    assert kept == results["pruning"]["kept_prunable_params"]
