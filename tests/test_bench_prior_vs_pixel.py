"""bench/prior_vs_pixel.py's README table: current rows only, IPC then objective, each side's
per-network figures, and the prior's lead marked as noise where inside the combined std."""


def side(convnet: float, mean: float, std: float) -> dict:
    return {"per_model": {"convnet": f"{convnet:.2f} +- 0.10", "alexnet": "50.00 +- 1.00"},
            "cross_arch_mean": mean, "cross_arch_std": std}


def row(objective: str, ipc: int, lead: dict | None = None, **extra) -> dict:
    return {"objective": objective, "ipc": ipc, "iterations": 300, "protocol": "cross_arch",
            "pixel": side(70, 50, 0.5), "haba": side(71, 50 + (lead or {"value": 0})["value"], 0.5),
            "haba_minus_pixel": {"cross_arch_mean": lead}, **extra}


def test_the_table_has_the_current_rows_in_order_and_marks_a_lead_inside_the_noise(bench):
    prior_vs_pixel = bench("prior_vs_pixel")
    table = {"a": row("mtt", 1, {"value": 0.3, "within_noise": True}),
             "b": row("dm", 10, {"value": 2.5, "within_noise": False}),
             "c": row("dc", 1, {"value": 9.0, "within_noise": False}, superseded="made before the bound"),
             "d": row("dc", 10, {"value": 1.0, "within_noise": False}, haba_overrides=["synset.views=one"]),
             "e": {"objective": "dm", "ipc": 1, "protocol": "cross_arch", "pixel": side(70, 50, 0.5)}}  # one side
    lines = prior_vs_pixel.markdown(table, "haba").splitlines()
    assert lines[0] == "| objective, IPC (steps) | set | ConvNet | AlexNet | cross-arch mean | lead |"
    body = [line.split(" | ")[:2] + [line.split(" | ")[-1]] for line in lines[2:]]
    assert body == [["| MTT, 1 (300)", "pixel", " |"], ["| MTT, 1 (300)", "haba", "+0.30 (noise) |"],
                    ["| DC, 10 (300)", "pixel", " |"], ["| DC, 10 (300)", "haba (synset.views=one)", "+1.00 |"],
                    ["| DM, 10 (300)", "pixel", " |"], ["| DM, 10 (300)", "haba", "+2.50 |"]]
    assert "70.00 +- 0.10 | 50.00 +- 1.00 | 50.00 +- 0.50" in lines[2]


def test_the_table_leaves_out_a_row_whose_side_was_read_from_a_stale_result(bench):
    prior_vs_pixel = bench("prior_vs_pixel")
    fresh, old = row("dm", 1, {"value": 2.0, "within_noise": False}), row("mtt", 10, {"value": -1.0, "within_noise": False})
    fresh["haba"]["result"], old["haba"]["result"] = "bench/results/fresh.json", "bench/results/old.json"
    table = {"a": fresh, "b": old}
    stale = {"bench/results/old.json": "it is marked superseded"}.get
    body = prior_vs_pixel.markdown(table, "haba", why_stale=stale).splitlines()[2:]
    assert [line.split(" | ")[0] for line in body] == ["| DM, 1 (300)", "| DM, 1 (300)"]
    assert len(prior_vs_pixel.markdown(table, "haba").splitlines()) == 6  # no judge of staleness: both rows


def test_variants_of_one_cell_share_its_pixel_row_and_another_pixel_set_gets_its_own(bench):
    prior_vs_pixel = bench("prior_vs_pixel")
    plain, variant = row("dm", 1, {"value": 2.0, "within_noise": False}), row("dm", 1, haba_overrides=["x=1"])
    other = row("dm", 1, haba_overrides=["y=2"], pixel=side(60, 40, 0.5))  # judged against another pixel set
    body = prior_vs_pixel.markdown({"a": variant, "b": plain, "c": other}, "haba").splitlines()[2:]
    assert [line.split(" | ")[1] for line in body] == ["pixel", "haba", "haba (x=1)", "pixel", "haba (y=2)"]
    assert "60.00 +- 0.10" in body[3]
