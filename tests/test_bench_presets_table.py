"""bench/presets_table.py's README tables: a row only where its preset was measured and its
result is today's."""


def row(preset: str, convnet: float, result: str) -> dict:
    return {"preset": preset, "convnet": convnet, "convnet_std": 0.5, "cross_arch_mean": convnet - 5,
            "cross_arch_std": 0.4, "fid": 100.0, "kid": 0.01, "within_class_distance": 15.0,
            "real_within_class_distance": 15.7, "result": result}


def test_the_table_leaves_out_unmeasured_presets_and_rows_of_stale_results(bench):
    presets_table = bench("presets_table")
    tag = "_protocol.runs-3"
    table = {presets_table.row_key(p, 10, tag): row(p, c, f"bench/results/{r}.json")
             for p, c, r in (("random real", 75.0, "a"), ("minimax=dm", 78.0, "b"), ("pixel=dm", 82.0, "old"))}
    stale = {"bench/results/old.json": "it is marked superseded"}.get
    lines = presets_table.markdown(table, ["random real", "minimax=dm", "pixel=dm", "diffusion=sample"], 10, tag,
                                   why_stale=stale).splitlines()
    assert lines[0].startswith("| IPC 10 | ConvNet |") and lines[0].endswith("(real 15.7) |")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| random real", "| `minimax=dm`"]
    assert lines[3] == "| `minimax=dm` | 78.00 +- 0.50 | 73.00 +- 0.40 | 100.0 | 0.0100 | 15.0 |"
    assert len(presets_table.markdown(table, ["random real", "minimax=dm", "pixel=dm"], 10, tag).splitlines()) == 5
