import logging
import warnings
from types import SimpleNamespace

import pytest
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from blockprune_pl.callbacks.console import StepProgressBar, quiet_library_notices
from blockprune_pl.models.encoder import load_line

pytestmark = pytest.mark.unit


def test_load_line_names_the_fresh_head_and_unused_weights():
    info = {"missing_keys": ["classifier.weight", "classifier.bias"], "unexpected_keys": []}
    line = load_line("some/model", info)
    assert line == "model: loaded some/model; initialised fresh: classifier.bias, classifier.weight"
    many = {"unexpected_keys": [f"pooler.w{i}" for i in range(6)]}
    expected = "unused: pooler.w0, pooler.w1, pooler.w2, pooler.w3 and 2 more"
    assert load_line("m", many).endswith(expected)


def test_progress_bar_shows_the_step_not_a_negative_epoch_count():
    bar = StepProgressBar()
    bar._trainer = SimpleNamespace(global_step=40, max_steps=282, max_epochs=-1)
    text = bar._get_train_description(3)
    assert "step 40/282" in text and "-2" not in text


def test_the_litlogger_tip_is_dropped_and_other_notices_kept(caplog):
    quiet_library_notices()
    with caplog.at_level(logging.INFO):
        rank_zero_info("Tip: try installing [litlogger](https://pypi.org/project/litlogger/)")
        rank_zero_info("GPU available: False")
    messages = [r.getMessage() for r in caplog.records]
    assert "GPU available: False" in messages
    assert not any("litlogger" in m for m in messages)


def test_the_pytree_deprecation_is_dropped_and_other_warnings_kept():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_notices()
        warnings.warn(
            "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, "
            "TreeSpec) and treespec.is_leaf()` instead.",
            FutureWarning,
            stacklevel=1,
        )
        warnings.warn("lr is very high", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["lr is very high"]


def test_the_checkpoint_weights_only_note_is_dropped(caplog):
    quiet_library_notices()
    log = logging.getLogger("lightning.pytorch.trainer.connectors.checkpoint_connector")
    with caplog.at_level(logging.INFO):
        log.info("`weights_only` was not set, defaulting to `False`.")
        log.info("Restoring states from the checkpoint path at x.ckpt")
    assert [r.getMessage() for r in caplog.records] == [
        "Restoring states from the checkpoint path at x.ckpt"
    ]
