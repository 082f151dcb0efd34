import pytest
import torch

from genprior.errors import ConfigError
from genprior.nets import NETS, ConvNet, ViT, build_net

torch.set_num_threads(1)

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


def test_convnet_28px_feature_size():
    # 28 -> 14 -> 7 -> 3 after three 2x2 pools
    assert ConvNet(1, 10, 28).embed(torch.zeros(1, 1, 28, 28)).shape == (1, 128 * 3 * 3)
    assert ConvNet(1, 10, 28).classifier.in_features == 128 * 3 * 3


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
