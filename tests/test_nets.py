import pytest
import torch

from genprior.errors import ConfigError
from genprior.nets import NETS, ConvNet, ViT, build_net

# every net at the small resolutions; 128 px only for the nets meant for it (speed)
SHAPES = [(r, c) for r in (28, 32, 64) for c in (1, 3)]  # every resolution x channel count
CASES = [(n, r, c) for n in NETS for r, c in SHAPES]
CASES += [(n, 128, 3) for n in ("convnet_d5", "resnet18_ap", "vit")]


@pytest.mark.parametrize("name,res,ch", CASES)
def test_shapes(name, res, ch):
    torch.manual_seed(0)
    net = build_net(name, ch, 10, res)
    x = torch.randn(2, ch, res, res)
    with torch.no_grad():
        logits, feats = net(x), net.embed(x)
        again = net.classifier(feats)
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()
    assert feats.shape == (2, net.classifier.in_features)
    assert isinstance(net.classifier, torch.nn.Linear)
    torch.testing.assert_close(logits, again)  # forward really is classifier(embed(x))


@pytest.mark.parametrize("name", ["vgg11", "convnet_d5", "resnet18"])
def test_deep_instance_norm_nets_see_the_input_at_28px(name):
    # instance norm on a 1x1 map is constant; features must still depend on the image
    torch.manual_seed(0)
    net = build_net(name, 1, 10, 28)
    with torch.no_grad():
        f = net.embed(torch.randn(2, 1, 28, 28))
    assert (f[0] - f[1]).abs().max() > 1e-4


@pytest.mark.parametrize("name", ["convnet", "vit"])
def test_gradient_reaches_input(name):
    torch.manual_seed(0)
    net = build_net(name, 3, 10, 32)
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    net(x).logsumexp(1).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["convnet", "vit"])
def test_second_order_gradient_reaches_input(name):
    # DC gradient matching backpropagates through parameter gradients into the images
    torch.manual_seed(0)
    net = build_net(name, 3, 10, 32)
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(net(x), torch.tensor([1, 2]))
    grads = torch.autograd.grad(loss, list(net.parameters()), create_graph=True)
    sum(g.pow(2).sum() for g in grads).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_network():
    with pytest.raises(ConfigError, match="unknown network 'resnet99'") as e:
        build_net("resnet99", 3, 10, 32)
    assert "convnet" in str(e.value) and "vit" in str(e.value)


def test_overrides():
    assert build_net("convnet", 3, 10, 32, width=16).classifier.in_features == 16 * 4 * 4
    # a partial's preset can be overridden, and a typo is a config error
    assert build_net("convnet_d4", 3, 10, 64, depth=3).classifier.in_features == 128 * 8 * 8
    with pytest.raises(ConfigError, match="widht"):
        build_net("convnet", 3, 10, 32, widht=16)


def test_bad_choice_names_valid_options():
    with pytest.raises(ValueError) as e:
        ConvNet(3, 10, 32, norm="bogus")
    msg = str(e.value)
    assert "bogus" in msg and all(k in msg for k in ("instance", "batch", "layer", "none"))
    with pytest.raises(ValueError, match="leakyrelu"):
        ConvNet(3, 10, 32, act="tanh")
    with pytest.raises(ValueError, match="divide"):
        ViT(3, 10, 30)


def test_convnet_matches_the_reference_layer_shapes_on_28px_single_channel():
    # the DC/DSA/DM/MTT reference pads a single-channel input's first conv by 3: 28 -> 32 -> 16 -> 8 -> 4
    net = ConvNet(1, 10, 28)
    x = torch.zeros(2, 1, 28, 28)
    sizes = [m(x).shape[1:] for m in [net.features[: i + 1] for i in range(len(net.features))]]
    assert [tuple(s) for s in sizes] == [
        (128, 32, 32), (128, 32, 32), (128, 32, 32), (128, 16, 16),   # conv(pad 3), norm, relu, avgpool
        (128, 16, 16), (128, 16, 16), (128, 16, 16), (128, 8, 8),
        (128, 8, 8), (128, 8, 8), (128, 8, 8), (128, 4, 4)]
    assert net.features[0].padding == (3, 3) and net.features[4].padding == (1, 1)
    assert net.embed(x).shape == (2, 2048) and net.classifier.in_features == 2048
    # the reference's parameter shapes: conv weights [128, c, 3, 3] + bias, GroupNorm(128, 128), Linear(2048, 10)
    assert [tuple(p.shape) for p in net.parameters()] == [
        (128, 1, 3, 3), (128,), (128,), (128,), (128, 128, 3, 3), (128,), (128,), (128,),
        (128, 128, 3, 3), (128,), (128,), (128,), (10, 2048), (10,)]
    assert sum(p.numel() for p in net.parameters()) == 317_706  # 1536 + 2 x 147840 + 20490
    # RGB 32 px keeps padding 1 (32 -> 16 -> 8 -> 4); the old 28 px network stays available by name
    assert ConvNet(3, 10, 32).features[0].padding == (1, 1) and ConvNet(3, 10, 32).classifier.in_features == 2048
    assert build_net("convnet_p1", 1, 10, 28).classifier.in_features == 128 * 3 * 3


def test_net_digest_names_the_architecture_and_leaves_the_rng_alone():
    from genprior.nets import net_digest

    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    a = net_digest("convnet", 1, 10, 28)
    assert torch.equal(state, torch.random.get_rng_state())
    assert a == net_digest("convnet", 1, 10, 28) != net_digest("convnet_p1", 1, 10, 28)
    assert a != net_digest("convnet", 1, 10, 28, width=64)
    # a ViT's module tree does not show its heads: the override itself keys the digest
    assert net_digest("vit", 1, 10, 28, heads=2) != net_digest("vit", 1, 10, 28) == net_digest("vit", 1, 10, 28)


def test_construction_leaves_batchnorm_stats_alone():
    net = build_net("convnet_bn", 3, 10, 32)
    bn = net.features[1]
    assert bn.num_batches_tracked.item() == 0 and bn.running_mean.abs().sum() == 0


@pytest.mark.parametrize("name", ["convnet", "resnet18_bn", "vit"])
def test_same_seed_same_init(name):
    def make(seed):
        torch.manual_seed(seed)
        return build_net(name, 3, 10, 32).state_dict()

    a, b, c = make(0), make(0), make(1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)  # the seed matters at all


@pytest.mark.parametrize("name,padding,last_map", [
    ("alexnet", 4, (192, 4, 4)),  # DC code: padding 4 for one channel, 28 -> 32 -> 16 -> 8 -> 4
    ("vgg11", 3, (512, 1, 1)),    # DC code: padding 3 on the first conv, 28 -> 32 px, all five pools
    ("lenet", 2, (16, 5, 5)),
])
def test_one_channel_first_padding_matches_the_dc_code(name, padding, last_map):
    net = build_net(name, 1, 10, 28)
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.padding == (padding, padding)
    # the map the convolutions end at, before any global pool or flatten
    convs = {"alexnet": lambda: net.features, "vgg11": lambda: net.features[:-1], "lenet": lambda: net.conv[:-1]}[name]()
    with torch.no_grad():
        assert convs(torch.zeros(1, 1, 28, 28)).shape[1:] == last_map


def test_rgb_first_padding_matches_the_dc_code():
    # AlexNet pads RGB by 2 and LeNet by 0, so 32 px RGB ends at 192x4x4 and 16x5x5
    alex, lenet = build_net("alexnet", 3, 10, 32), build_net("lenet", 3, 10, 32)
    assert alex.classifier.in_features == 192 * 4 * 4
    assert lenet.fc[0].in_features == 16 * 5 * 5


@pytest.mark.parametrize("channels,resolution,side", [(3, 32, 4), (1, 28, 3)])
def test_resnet18_ap_flattens_its_last_map_as_the_dc_code(channels, resolution, side):
    assert build_net("resnet18_ap", channels, 10, resolution).classifier.in_features == 512 * side * side


@pytest.mark.parametrize("resolution,depth", [(28, 3), (32, 3), (64, 4), (128, 5)])
def test_convnet_depth_follows_the_resolution_as_the_reference_picks_it(resolution, depth):
    # ConvNet at 28/32 px, ConvNetD4 at 64, ConvNetD5 at 128: a 128-wide 4x4 map, 2048 features
    net = build_net("convnet", 1 if resolution == 28 else 3, 10, resolution)  # (28 px data is grayscale)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == depth
    assert net.classifier.in_features == 2048
