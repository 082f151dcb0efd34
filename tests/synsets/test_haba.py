"""HaBa: bases x hallucinators, the storage budget, gradients, and the adversary kept apart from the set."""
import pytest
import torch

from genprior.errors import ConfigError
from genprior.synsets.haba import Hallucinator, HabaSynset, supcon
from tests.toys import check_chunked_gradient, image_split


def split(channels=1, resolution=28, num_classes=3, per_class=40):  # room for ipc=10's small bases
    return image_split(num_classes, resolution, channels, per_class)


@pytest.mark.parametrize("channels, resolution", [(1, 28), (3, 32), (3, 64)])
def test_rendering_shapes_counts_and_the_exported_product(channels, resolution):
    s = HabaSynset(split(channels, resolution), ipc=10, hallucinators=3, dsa="none", views="one")
    s.begin_step(0)
    images = s.render_all()
    assert images.shape == (len(s), channels, resolution, resolution) and len(s) == 3 * s.bases_per_class
    exported, labels, meta = s.export_items(chunk=7)
    assert exported.shape == (len(s) * 3, channels, resolution, resolution) and meta["views"] == 3
    assert labels.tolist() == s.labels.repeat_interleave(3).tolist()
    # item b * 3 + h is basis b through hallucinator h
    for b, h in [(0, 0), (4, 2), (len(s) - 1, 1)]:
        torch.testing.assert_close(exported[b * 3 + h], s._views(torch.tensor([b]), torch.tensor([h]))[0])
    assert sum(p.numel() for p in Hallucinator(3, 3, 32).parameters()) == 5568  # the official count at 32 px RGB


def test_views_all_distills_on_the_exported_product_and_one_on_a_drawn_view_per_basis():
    real = split()
    every, one = (HabaSynset(real, ipc=4, hallucinators=3, dsa="none", adversary=False, views=v) for v in ("all", "one"))
    assert len(every) == 3 * len(one) == 3 * every.num_bases and every.items_per_class == 3 * every.bases_per_class
    every.begin_step(5), one.begin_step(5)
    exported, labels, meta = every.export_items()
    torch.testing.assert_close(every.render_all(chunk=4), exported)  # each step: the whole saved set
    assert every.labels.tolist() == labels.tolist() and meta == {"views": 3, "bases_per_class": every.bases_per_class}
    drawn = one.render_all()  # basis b through the hallucinator (seed, step) drew for it
    torch.testing.assert_close(drawn, exported[torch.arange(one.num_bases) * 3 + one.assignment])
    assert one.export_items()[1].tolist() == labels.tolist()
    with pytest.raises(ConfigError, match="unknown HaBa views 'two'; valid: all, one"):
        HabaSynset(real, ipc=4, hallucinators=3, views="two")


def test_with_views_all_the_set_term_compares_two_drawn_hallucinations_of_each_basis_among_the_steps_images():
    s = HabaSynset(split(), ipc=4, hallucinators=3, dsa="none")
    s.begin_step(7)
    images = s.render_all().requires_grad_(True)
    first, second = s._two_views(7, 2)
    assert (first != second).all()
    basis = torch.arange(s.num_bases)
    with torch.no_grad():
        expected = s.adversary.set_term(s._views(basis, first), s._views(basis, second), 7)
    torch.testing.assert_close(s.auxiliary_loss(images, 7), expected)


def test_hallucinations_render_under_bf16_autocast():
    s = HabaSynset(split(), ipc=4, hallucinators=3, dsa="none")
    s.begin_step(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # was: index_put of bf16 into a float32 buffer
        images = s.render_all().requires_grad_(True)
        aux = s.auxiliary_loss(images, 0)
    assert images.dtype == torch.float32 and torch.isfinite(aux)


@pytest.mark.parametrize("channels, resolution", [(1, 28), (3, 32)])
@pytest.mark.parametrize("ipc", [1, 10])
def test_storage_never_exceeds_the_pixel_budget(channels, resolution, ipc):
    s = HabaSynset(split(channels, resolution, num_classes=10), ipc=ipc, dsa="none", adversary=False)
    st = s.storage()
    assert st["floats"] <= st["budget"] == ipc * 10 * channels * resolution ** 2
    assert st["floats"] == s.bases.numel() + sum(p.numel() for p in s.hallucinators.parameters())
    assert "paper" in st["paper_accounting"] and s.bases_per_class >= 1


@pytest.mark.parametrize("channels, resolution, ipc, asked, base, per_class", [
    (1, 28, 1, {}, 7, 2),  # not one full-size basis fits beside 5 hallucinators; 14 px: none either
    (1, 28, 10, {}, 14, 36),  # 9 full-size ones fit, fewer than the pixel set's 10 images
    (1, 28, 10, dict(bases_per_class=9), 28, 9),  # as many as asked for fit at full size
    (1, 28, 10, dict(base_resolution=28), 28, 9),
    (3, 32, 10, {}, 16, 36),
])
def test_a_null_base_resolution_halves_until_ipc_bases_per_class_fit(channels, resolution, ipc, asked, base, per_class):
    s = HabaSynset(split(channels, resolution, num_classes=10, per_class=40), ipc=ipc, dsa="none", adversary=False,
                   **asked)
    assert tuple(s.bases.shape[-2:]) == (base, base) and s.bases_per_class == per_class
    assert s.storage()["floats"] <= s.storage()["budget"]


@pytest.mark.parametrize("views", ["all", "one"])
def test_the_chunked_gradient_reaches_bases_and_hallucinators_as_plain_autograd(views):
    s = HabaSynset(split(), ipc=4, hallucinators=3, dsa="none", adversary=False, views=views)
    for step in range(100):  # a step whose draw uses every hallucinator
        s.begin_step(step)
        if views == "all" or len(s.assignment.unique()) == 3:
            break
    grads = check_chunked_gradient(s, chunk=5)
    assert "bases" in grads and all(f"hallucinators.{n}" in grads for n, _ in s.hallucinators.named_parameters())


def test_the_bound_keeps_every_rendered_value_in_the_data_range_and_passes_gradients():
    real = split(channels=3, resolution=32)
    lo, hi = real.images.amin((0, 2, 3)).view(1, 3, 1, 1), real.images.amax((0, 2, 3)).view(1, 3, 1, 1)
    bounded = HabaSynset(real, ipc=4, hallucinators=3, dsa="none", adversary=False)
    free = HabaSynset(real, ipc=4, hallucinators=3, dsa="none", adversary=False, bound=False)
    with torch.no_grad():  # a set that drifted far out of the data's range, as haba=dm did
        for s in (bounded, free):
            s.bases.mul_(1e3)
    bounded.begin_step(0), free.begin_step(0)
    x, raw = bounded.render_all(), free.render_all()
    assert (raw < lo).any() and (raw > hi).any()  # unbounded: leaves the range (the official output)
    assert (x >= lo).all() and (x <= hi).all() and x.std() > 0
    c, w = (hi + lo) / 2, (hi - lo) / 2
    torch.testing.assert_close(x, c + w * torch.tanh((raw - c) / w))  # the same product, squashed
    with torch.no_grad():
        bounded.bases.div_(1e3)
    bounded.render(torch.arange(len(bounded))).pow(2).sum().backward()
    assert bounded.bases.grad.abs().sum() > 0 and all(p.grad.abs().sum() > 0 for p in bounded.hallucinators.parameters())
    assert "centre" not in bounded.state_dict()  # the range is the data's, never part of the saved set


@pytest.mark.parametrize("channels, resolution, bound", [(1, 28, True), (3, 32, True), (3, 32, False)])
def test_identity_hallucinators_render_the_real_images_they_start_from(monkeypatch, channels, resolution, bound):
    import genprior.synsets.haba as haba

    real = split(channels, resolution)
    start = HabaSynset(real, ipc=10, hallucinators=3, dsa="none", adversary=False, bound=False,
                       base_resolution=resolution).bases  # real images
    frame = torch.ones(resolution, resolution, dtype=torch.bool)
    frame[1:-1, 1:-1] = False
    monkeypatch.setattr(haba, "IDENTITY_JITTER", 0.0)
    exact = HabaSynset(real, ipc=10, hallucinators=3, dsa="none", adversary=False, bound=bound,
                       hallucinator_init="identity", base_resolution=resolution)
    with torch.no_grad():
        x = exact.render_all().unflatten(0, (-1, 3))  # [bases, views, c, r, r]
    lo, hi = real.images.amin((0, 2, 3)).view(-1, 1, 1), real.images.amax((0, 2, 3)).view(-1, 1, 1)
    t = (start - (hi + lo) / 2) / ((hi - lo) / 2)
    inside = ~frame & (t.abs() <= haba.PREIMAGE_REACH if bound else True)  # the ends are taken to 0.95 of the range
    for v in range(3):  # every view is its basis inside the frame; the frame is the data's mean frame
        torch.testing.assert_close(x[:, v][inside.expand_as(start)], start[inside.expand_as(start)], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(x[:, v][..., frame].mean((0, 2)), real.images[..., frame].mean((0, 2)),
                                   atol=1e-4, rtol=1e-4)
    monkeypatch.undo()
    jittered = HabaSynset(real, ipc=10, hallucinators=3, dsa="none", adversary=False, bound=bound,
                          hallucinator_init="identity", base_resolution=resolution)
    with torch.no_grad():
        y = jittered.render_all().unflatten(0, (-1, 3))
    err = (y - x).pow(2).mean().sqrt()
    assert 0 < err < 0.3 * start.std()  # near the real images, and the views of a basis differ
    assert (y[:, 0] - y[:, 1]).abs().mean() > 0.01 * start.std()
    with pytest.raises(ConfigError, match="valid: random, identity"):
        HabaSynset(real, ipc=10, hallucinators=3, hallucinator_init="zeros")


@pytest.mark.parametrize("views", ["all", "one"])
def test_the_set_step_never_moves_the_adversary_and_its_step_moves_only_itself(views):
    s = HabaSynset(split(), ipc=4, hallucinators=3, views=views)
    before_adv = {k: v.clone() for k, v in s.adversary.net.state_dict().items()}
    s.begin_step(0)
    images = s.render_all().requires_grad_(True)
    aux = s.auxiliary_loss(images, 0)
    aux.backward()
    assert all(p.grad is None for p in s.adversary.net.parameters())  # no gradient reaches the extractor
    s.push_grad(images.grad)
    assert s.bases.grad.abs().sum() > 0 and next(iter(s.hallucinators.parameters())).grad.abs().sum() > 0
    before_set = {k: v.clone() for k, v in s.state_dict().items()}
    s.end_step(0)
    assert all(torch.equal(v, s.state_dict()[k]) for k, v in before_set.items())  # the set did not move
    assert any(not torch.equal(v, s.adversary.net.state_dict()[k]) for k, v in before_adv.items())  # the extractor did
    assert not any(k.startswith("adversary") for k in s.state_dict())  # and stays out of the set's state
    assert "adversary" in s.aux_state() and "adversary_opt" in s.aux_state()


def test_the_adversary_starts_as_a_seeded_convnet_and_leaves_the_global_rng_alone():
    # HaBa's extractor is the ConvNet torch.manual_seed(derive_seed(seed, 0x4ABC)) would build
    from genprior.nets import build_net
    from genprior.rng import derive_seed

    real = split()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    s = HabaSynset(real, ipc=4, hallucinators=2, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(derive_seed(3, 0x4ABC))
    expected = build_net("convnet", real.images.shape[1], real.info.num_classes, real.images.shape[-1])
    assert all(torch.equal(v, s.adversary.net.state_dict()[k]) for k, v in expected.state_dict().items())


def test_aux_state_round_trip():
    a, b = HabaSynset(split(), ipc=4, hallucinators=2), HabaSynset(split(), ipc=4, hallucinators=2, seed=1)
    a.begin_step(0)
    a.end_step(0)
    b.load_state_dict(a.state_dict())
    b.load_aux_state(a.aux_state())
    assert all(torch.equal(v, b.adversary.net.state_dict()[k]) for k, v in a.adversary.net.state_dict().items())
    assert torch.equal(a.bases, b.bases)


def test_supcon_by_hand():
    f = torch.nn.functional.normalize(torch.tensor([[[1.0, 0.0], [1.0, 0.1]], [[0.0, 1.0], [0.1, 1.0]]]), dim=2)
    labels = torch.tensor([0, 1])
    loss = supcon(f, labels, 1.0)
    # anchor 0 (item 0 view 0): its only positive is item 0 view 1
    flat = torch.cat([f[:, 0], f[:, 1]])
    sims = flat @ flat.T
    row = torch.tensor([sims[0, 1], sims[0, 2], sims[0, 3]])
    expected_anchor0 = -(sims[0, 2] - torch.logsumexp(row, 0))
    per_anchor = []
    for i in range(4):
        others = [j for j in range(4) if j != i]
        lse = torch.logsumexp(sims[i, others], 0)
        pos = [j for j in others if labels.repeat(2)[j] == labels.repeat(2)[i]]
        per_anchor.append(-(sum(sims[i, j] - lse for j in pos) / len(pos)))
    assert torch.isclose(per_anchor[0], expected_anchor0)
    assert torch.isclose(loss, torch.stack(per_anchor).mean())


def test_supcon_at_its_temperature_by_hand():
    # two items, both views alike, one class each: every anchor has one positive (similarity 1)
    # and two negatives (0); at temperature 0.5 its loss is log(2 + e^2) - 2 (e^(1/t) = e^2).
    # A temperature multiplied instead of divided gives 0.794, none at all 0.551
    f = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    assert supcon(f, torch.tensor([0, 1]), 0.5).item() == pytest.approx(0.239545, abs=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(ipc=1, base_resolution=28), "not even one basis per class fits"),
    (dict(ipc=2, bases_per_class=5, base_resolution=28), "5 bases per class do not fit"),
    (dict(ipc=2, hallucinators=1), "hallucinators >= 2"),
    (dict(ipc=2, base_resolution=40), "above the data's 28 px"),
    (dict(ipc=10, per_class=20), "HaBa starts 36 bases per class from real images, but the smallest class"),
])
def test_bad_input_is_one_line(kwargs, match):
    kwargs = dict(kwargs)
    per_class = kwargs.pop("per_class", 40)
    with pytest.raises(ConfigError, match=match) as e:
        HabaSynset(split(num_classes=10, per_class=per_class), **kwargs)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="at least 3 px"):
        Hallucinator(1, 1, 2)


def test_the_curve_judges_the_set_the_final_judging_does(monkeypatch):
    """eval.every's points train on the exported product, bases x hallucinators in groups of views,
    not on one step's rendering (one view per basis)."""
    from types import SimpleNamespace

    from genprior import config, evaluate, run

    s = HabaSynset(split(num_classes=10), ipc=10, hallucinators=3, dsa="none", adversary=False)
    s.begin_step(0)
    seen = {}

    def judged(images, labels, *args, views=1, **kwargs):
        seen.update(images=images, labels=labels, views=views)
        return {"convnet": {"mean": 50.0}}

    monkeypatch.setattr(evaluate, "evaluate_images", judged)
    point = run._curve_point(config.compose(["haba=dm", "ipc=10"]), s, "cpu", SimpleNamespace(trackers=None), 1)
    exported, labels, meta = s.export_items()
    assert point == {"convnet": 50.0} and seen["views"] == meta["views"] == 3
    assert torch.equal(seen["images"], exported) and torch.equal(seen["labels"], labels)


def test_a_step_takes_the_auxiliary_terms_gradient_by_both_paths():
    """The adversarial term reaches the set through the rendered images and, by its second view
    rendered with a graph, directly: a step (run.distill_step) takes both, as plain autograd does."""
    import contextlib

    from genprior.run import distill_step

    def fresh():
        torch.manual_seed(0)
        return HabaSynset(split(), ipc=4, hallucinators=3)

    plain = fresh()
    plain.begin_step(0)
    images = plain.render_all().requires_grad_(True)
    plain.auxiliary_loss(images, 0).backward()  # every leaf it reaches
    plain.push_grad(images.grad)
    stepped = fresh()
    distill_step(stepped, None, 0, [], chunk=256, autocast=contextlib.nullcontext)  # no objective: the term alone
    for (name, a), b in zip(plain.named_parameters(), stepped.parameters()):
        if a.requires_grad:
            assert b.grad is not None and torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-8), name
