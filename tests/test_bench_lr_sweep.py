"""bench/lr_sweep.py's verdict: the best ConvNet mean, a tie inside the combined std, and a
preset's value compared with the pick whether the key is a number or a word."""
import pytest


@pytest.fixture
def lr_sweep(bench):
    return bench("lr_sweep")


def test_the_verdict_picks_the_best_mean_and_calls_a_margin_inside_the_noise_a_tie(lr_sweep):
    rows = {"0.1": {"convnet": 70.0, "convnet_std": 0.3}, "1": {"convnet": 70.5, "convnet_std": 0.4},
            "10": {"failed": "bench/distill.py exited 1"}}
    assert lr_sweep.verdict(rows) == {"best": "1", "runner_up": "0.1", "margin": 0.5, "combined_std": 0.5,
                                      "tie": False}
    rows["1"]["convnet_std"] = 0.5  # combined std 0.58 > margin 0.5
    assert lr_sweep.verdict(rows)["tie"] is True
    assert lr_sweep.verdict({"10": {"failed": "x"}}) == {"best": None}


def test_a_presets_value_is_the_pick_as_a_number_or_as_a_word(lr_sweep):
    assert lr_sweep.same_value("0.1", "1e-1") and not lr_sweep.same_value("0.1", "0.2")
    assert lr_sweep.same_value("identity", "identity") and not lr_sweep.same_value("random", "identity")
    assert not lr_sweep.same_value("0.1", "identity")


def test_a_presets_value_reads_as_the_command_line_writes_it(lr_sweep):
    assert lr_sweep.preset_value("haba=dm", 10, "synset.base_resolution") == "null"  # not "None"
    assert lr_sweep.same_value(lr_sweep.preset_value("haba=dm", 10, "synset.optim.bases.lr"), "0.3")
    assert lr_sweep.preset_value("haba=dm", 10, "synset.hallucinator_init") == "identity"


def test_the_preset_is_beaten_only_by_a_convnet_win_outside_the_noise_that_the_other_networks_do_not_veto(lr_sweep):
    def r(convnet, std, others=None, others_std=None):
        return {"convnet": convnet, "convnet_std": std, "cross_arch_mean": others, "cross_arch_std": others_std}

    rows = {"0.2": r(68.3, 0.75, 59.1, 0.04), "0.008": r(70.2, 1.14, 37.7, 10.9), "0.08": r(69.1, 1.5, 57.8, 2.8)}
    assert not lr_sweep.beaten(rows, "0.2")  # +1.9 on the ConvNet (> 1.36), but -21.4 on AlexNet (> 10.9): veto
    rows["0.008"]["cross_arch_mean"] = 55.0  # -4.1, inside AlexNet's noise: no veto
    assert lr_sweep.beaten(rows, "0.2") and lr_sweep.beaten(rows, "2e-1")
    assert not lr_sweep.beaten(rows, "0.008")  # the preset holds the best
    assert not lr_sweep.beaten(rows, "0.08")  # +1.1 against a combined std of 1.88: inside the noise
    assert lr_sweep.beaten({"a": r(71.0, 0.1), "b": r(70.0, 0.1)}, "b")  # ConvNet alone, outside the noise
    # a preset value the sweep did not run: beaten unless the best and the runner-up tie
    assert lr_sweep.beaten({"a": r(71.0, 0.1), "b": r(70.0, 0.1)}, "c")
    assert not lr_sweep.beaten({"a": r(71.0, 0.5), "b": r(70.8, 0.5)}, "c")
