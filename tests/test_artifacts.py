import json

import pytest

from genprior import artifacts
from genprior.errors import ConfigError


def test_an_artifact_is_built_once_and_checked_on_reuse(tmp_path):
    built = []

    def build(folder):
        built.append(folder)
        (folder / "part.txt").write_text("x")

    where = tmp_path / "a"
    assert artifacts.build_once(where, {"seed": 0}, build, "toy") == where
    assert artifacts.build_once(where, {"seed": 0}, build, "toy") == where and len(built) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no temporary folder left behind
    with pytest.raises(ConfigError, match="seed"):  # another identity never takes this folder
        artifacts.build_once(where, {"seed": 1}, build, "toy")


def test_an_empty_folder_is_filled_and_a_race_lost_keeps_the_winners_artifact(tmp_path):
    (tmp_path / "empty").mkdir()  # e.g. made by a user beforehand
    artifacts.build_once(tmp_path / "empty", {"seed": 0}, lambda f: (f / "part.txt").write_text("x"), "toy")
    assert (tmp_path / "empty" / "part.txt").read_text() == "x"

    where = tmp_path / "raced"

    def build_while_another_process_finishes_first(folder):
        (folder / "part.txt").write_text("mine")
        where.mkdir()
        (where / "part.txt").write_text("theirs")
        (where / artifacts.MANIFEST).write_text(json.dumps({"seed": 0}))

    artifacts.build_once(where, {"seed": 0}, build_while_another_process_finishes_first, "toy")
    assert (where / "part.txt").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "raced"]


def test_a_resumable_artifact_never_adopts_files_it_did_not_make(tmp_path):
    """open_manifest (experts, inversions: built piece by piece) refuses a folder that holds
    files but no manifest: they may come from other settings, and nothing could tell."""
    where = tmp_path / "experts"
    where.mkdir()
    (where / "expert_000.safetensors").write_text("from an older buffer")
    with pytest.raises(ConfigError, match="holds files but no manifest.json"):
        artifacts.open_manifest(where, {"seed": 0}, "expert buffer")
    assert not (where / artifacts.MANIFEST).exists()
    artifacts.open_manifest(tmp_path / "fresh", {"seed": 0}, "expert buffer")  # new or empty: taken
    (tmp_path / "racing").mkdir()  # another rank writing the same manifest at this moment: not refused
    (tmp_path / "racing" / f"{artifacts.MANIFEST}.12345.tmp").write_text("{}")
    artifacts.open_manifest(tmp_path / "racing", {"seed": 0}, "expert buffer")
    artifacts.open_manifest(tmp_path / "fresh", {"seed": 0}, "expert buffer")  # its own: taken again
