import json

import pytest

from blockprune_pl import io


def test_interrupted_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    io.write_json_atomic(path, {"val/acc": 0.9})

    def broken_dumps(data, **kw):
        raise KeyboardInterrupt  # the process dies while the text is being made

    monkeypatch.setattr(io.json, "dumps", broken_dumps)
    with pytest.raises(KeyboardInterrupt):
        io.write_json_atomic(path, {"val/acc": 0.1})
    assert json.loads(path.read_text()) == {"val/acc": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_non_finite_values_are_written_as_strings(tmp_path):
    path = io.write_json_atomic(tmp_path / "m.json", {"rate": float("inf"), "x": [float("nan")]})
    assert json.loads(path.read_text()) == {"rate": "inf", "x": ["nan"]}


def test_interrupted_folder_write_leaves_the_old_folder_whole(tmp_path):
    out = tmp_path / "export_hf"
    with io.atomic_folder(out) as partial:
        (partial / "config.json").write_text("{}")
    with pytest.raises(KeyboardInterrupt), io.atomic_folder(out) as partial:
        (partial / "half.bin").write_bytes(b"12")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export_hf"]
    assert [p.name for p in out.iterdir()] == ["config.json"]


def test_newest_readable_checkpoint_skips_broken_files_and_prefers_periodic_ones(tmp_path):
    import torch

    from blockprune_pl.checkpoint_io import AtomicCheckpointIO, newest_readable_checkpoint

    io_plugin = AtomicCheckpointIO()
    for name, step in (("step4.ckpt", 4), ("last.ckpt", 8), ("step8.ckpt", 8)):
        io_plugin.save_checkpoint({"state_dict": {}, "global_step": step}, tmp_path / name)
    whole = (tmp_path / "step8.ckpt").read_bytes()
    (tmp_path / "step12.ckpt").write_bytes(whole[: len(whole) // 2])  # killed mid-copy
    (tmp_path / ".step16.ckpt.x.partial").write_bytes(whole)
    assert newest_readable_checkpoint(tmp_path) == tmp_path / "step8.ckpt"
    (tmp_path / "step8.ckpt").unlink()
    assert newest_readable_checkpoint(tmp_path) == tmp_path / "last.ckpt"
    assert newest_readable_checkpoint(tmp_path / "none") is None
    assert torch.load(tmp_path / "last.ckpt")["global_step"] == 8


def test_thread_count_comes_back_after_the_block_even_on_error():
    import torch

    from blockprune_pl.threads import torch_threads

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1) as inside:
        assert inside == 1 and torch.get_num_threads() == 1
        raise RuntimeError
    assert torch.get_num_threads() == before
