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
