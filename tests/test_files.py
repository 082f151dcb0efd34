"""genprior/files.py: a write that fails leaves the previous file whole; identical tensors give identical bytes."""
import json

import pytest
import torch

from genprior.files import save_safetensors, write_json, write_text


def test_failed_write_keeps_the_old_file(tmp_path):
    path = write_json(tmp_path / "metrics.json", {"acc": 1.0})
    with pytest.raises(UnicodeEncodeError):  # fails after the call began, before any byte lands
        write_text(path, "half \ud800")
    assert json.loads(path.read_text()) == {"acc": 1.0}
    write_json(path, {"acc": 2.0})
    assert json.loads(path.read_text()) == {"acc": 2.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temporary left


def test_safetensors_bytes_do_not_depend_on_metadata_order(tmp_path):
    t = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(4, dtype=torch.int64)}
    one = save_safetensors(t, tmp_path / "one.safetensors", {"x": "1", "y": "2", "z": "3"}).read_bytes()
    two = save_safetensors(t, tmp_path / "two.safetensors", {"z": "3", "x": "1", "y": "2"}).read_bytes()
    assert one == two


def test_a_write_cut_on_the_way_to_the_disk_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    import errno
    import os

    path = write_json(tmp_path / "metrics.json", {"acc": 1.0})
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    write_json(path, {"acc": 2.0})
    assert len(synced) == 2  # the file's bytes, then the folder's entry for its new name

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_json(path, {"acc": 3.0})
    assert json.loads(path.read_text()) == {"acc": 2.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_name_near_the_limit_is_written_and_leaves_no_temporary(tmp_path):
    # 250 bytes: the name plus ".<pid>.tmp" would pass 255 (bench/results names such files)
    path = write_json(tmp_path / ("r" * 245 + ".json"), {"acc": 1.0})
    assert json.loads(path.read_text()) == {"acc": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
