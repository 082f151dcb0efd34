"""bench/resumable.py's run_parts: finished parts are kept, and parts measured on other
inputs (another generator's digest) are measured again, the old entry set aside."""
import json

import pytest

@pytest.fixture
def run_parts(bench):
    return bench("resumable").run_parts


def test_a_part_is_kept_for_its_key_and_measured_again_for_another(tmp_path, run_parts):
    out, calls = tmp_path / "r.json", []

    def job(value):
        def run():
            calls.append(value)
            return {"value": value}
        return run

    run_parts([("a", job(1)), ("b", job(2))], out, {}, key="g1")
    run_parts([("a", job(10)), ("b", job(20))], out, {}, key="g1")  # both done for g1: nothing runs
    assert calls == [1, 2]
    run_parts([("a", job(3))], out, {}, key="g2")  # a retrained generator: a runs again, b is left alone
    assert calls == [1, 2, 3]
    results = json.loads(out.read_text())
    assert results["a"]["figures"] == {"value": 3} and results["a"]["key"] == "g2"
    assert results["a (key g1)"]["figures"] == {"value": 1}  # the old figures stay, named by their key
    assert results["b"]["key"] == "g1"


def test_parts_recorded_before_keys_existed_are_measured_again_once(tmp_path, run_parts):
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"a": {"figures": {"value": 0}}}))
    run_parts([("a", lambda: {"value": 1})], out, {}, key="g")
    results = json.loads(out.read_text())
    assert results["a"]["figures"] == {"value": 1} and results["a (key unrecorded)"]["figures"] == {"value": 0}
    run_parts([("a", lambda: {"value": 2})], out, {}, key="g")
    assert json.loads(out.read_text())["a"]["figures"] == {"value": 1}


def test_a_name_too_long_for_a_file_is_shortened_distinctly_and_short_names_stay(tmp_path, bench):
    # The F_1 MTT sweep's names (245 characters) made `distill_<name>.json` longer than a file
    # name may be (255 bytes): every value failed with ENAMETOOLONG. Every bench script now
    # names a result through bench/distill.py's result_file.
    result_file = bench("distill").result_file
    recorded = "vs_glad_dc_ipc10_it40_cross_arch_protocol.runs-3"
    assert result_file(recorded).name == f"distill_{recorded}.json"  # what the tables already point at
    a, b = "sweep_" + "x" * 300 + "_1.4", "sweep_" + "x" * 300 + "_20"
    assert result_file(a) != result_file(b) and result_file(a) == result_file(a)
    for name in (a, b):
        assert len(result_file(name).name) == len("distill_.json") + 240
        (tmp_path / result_file(name).name).write_text("{}")  # the OS takes it
