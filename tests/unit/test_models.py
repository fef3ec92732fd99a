import time

import pytest
import torch

from blockprune_pl.errors import ModelLoadError
from blockprune_pl.models import build_model, load_tokenizer, resolve_name_or_path
from tests.conftest import compose


@pytest.mark.parametrize(
    "name, cls",
    [
        ("tiny_bert", "BertForSequenceClassification"),
        ("tiny_roberta", "RobertaForSequenceClassification"),
        ("tiny_distilbert", "DistilBertForSequenceClassification"),
    ],
)
def test_tiny_models_build_offline_and_run(name, cls):
    cfg = compose([f"model={name}"])
    tok = load_tokenizer(cfg.model)
    model = build_model(cfg.model, 3, tok, seed=0)
    assert type(model).__name__ == cls and model.config.hidden_size == 32
    batch = tok(["a short sentence", "another one here"], padding=True, return_tensors="pt")
    assert model(**batch).logits.shape == (2, 3)
    again = build_model(cfg.model, 3, tok, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))


def test_minilm_resolves_to_the_packaged_folder():
    path = resolve_name_or_path(compose([]).model.name_or_path)
    assert path.endswith("model") and (__import__("pathlib").Path(path) / "config.json").is_file()


def test_regression_head_for_stsb():
    cfg = compose(["model=tiny_bert"])
    model = build_model(cfg.model, 1, load_tokenizer(cfg.model))
    assert model.config.problem_type == "regression"


@pytest.mark.parametrize("name", ["roberta", "bert", "distilbert"])
def test_uncached_hub_id_offline_fails_fast_with_the_fix(name, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    cfg = compose([f"model={name}"])
    started = time.time()
    with pytest.raises(ModelLoadError, match="model.name_or_path=/path/to"):
        build_model(cfg.model, 2)
    assert time.time() - started < 10


def test_missing_local_folder_is_named(tmp_path):
    cfg = compose([f"model.name_or_path={tmp_path / 'nope'}"])
    with pytest.raises(ModelLoadError, match="nope"):
        load_tokenizer(cfg.model)


def test_pretrained_model_is_returned_in_train_mode(glue):
    model = build_model(compose([]).model, 2)
    assert model.training and all(m.training for m in model.modules())


def _saved_one_label_model(tmp_path):
    """A tiny BERT with a one-label (STS-B-like) head, saved as a user would save it."""
    cfg = compose(["model=tiny_bert"])
    tok = load_tokenizer(cfg.model)
    model = build_model(cfg.model, 1, tok, seed=0)
    folder = tmp_path / "one_label"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model, folder


def test_a_saved_head_with_another_label_count_is_refused_with_the_fix(tmp_path):
    _, folder = _saved_one_label_model(tmp_path)
    cfg = compose([f"model.name_or_path={folder}", "model.tiny=null"])
    with pytest.raises(ModelLoadError, match=r"head with 1 label\(s\), but the task needs 2"):
        build_model(cfg.model, 2)


def test_reinit_mismatched_head_keeps_the_encoder_and_starts_a_fresh_head(tmp_path):
    saved, folder = _saved_one_label_model(tmp_path)
    cfg = compose(
        [f"model.name_or_path={folder}", "model.tiny=null", "model.reinit_mismatched_head=true"]
    )
    model = build_model(cfg.model, 2)
    assert model.classifier.weight.shape == (2, saved.config.hidden_size)
    encoder, kept = saved.bert.state_dict(), model.bert.state_dict()
    assert encoder.keys() == kept.keys()
    assert all(torch.equal(encoder[k], kept[k]) for k in encoder)


def test_a_saved_head_with_the_task_label_count_is_loaded_as_saved(tmp_path):
    saved, folder = _saved_one_label_model(tmp_path)
    cfg = compose([f"model.name_or_path={folder}", "model.tiny=null"])
    model = build_model(cfg.model, 1)
    assert torch.equal(model.classifier.weight, saved.classifier.weight)
