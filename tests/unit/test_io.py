import json

import pytest

from blockprune_pl import io


def test_interrupted_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    io.write_json_atomic(path, {"val/acc": 0.9})

    def broken_dump(data, f, **kw):
        f.write('{"val/acc": 0.')  # half a file, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(io.json, "dump", broken_dump)
    with pytest.raises(KeyboardInterrupt):
        io.write_json_atomic(path, {"val/acc": 0.1})
    assert json.loads(path.read_text()) == {"val/acc": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_non_finite_values_are_written_as_strings(tmp_path):
    path = io.write_json_atomic(tmp_path / "m.json", {"rate": float("inf"), "x": [float("nan")]})
    assert json.loads(path.read_text()) == {"rate": "inf", "x": ["nan"]}
