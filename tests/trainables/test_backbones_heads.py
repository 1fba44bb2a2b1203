"""Backbone stems and heads."""

import pytest
import torch

from trainables import backbones, heads


@pytest.mark.parametrize(
    "depth,stem,size,dim",
    [
        ("resnet18", "cifar", 32, 512),
        ("resnet34", "stl", 64, 512),
        ("resnet18", "imagenet", 64, 512),
        ("resnet50", "cifar", 16, 2048),
    ],
)
def test_resnet_output_dim(depth, stem, size, dim):
    net = backbones.resnet(depth, stem, size)
    assert net.out_dim == dim
    assert net(torch.randn(2, 3, size, size)).shape == (2, dim)


def test_stems_differ_as_specified():
    cifar = backbones.resnet("resnet18", "cifar", 32).trunk
    stl = backbones.resnet("resnet18", "stl", 96).trunk
    imagenet = backbones.resnet("resnet18", "imagenet", 224).trunk
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, torch.nn.Identity)
    assert isinstance(stl.maxpool, torch.nn.MaxPool2d) and stl.maxpool.kernel_size == 2
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)


def test_auto_stem_by_resolution():
    assert [backbones.resolve_stem("auto", s) for s in (16, 32, 64, 96, 224)] == [
        "cifar",
        "cifar",
        "stl",
        "stl",
        "imagenet",
    ]
    assert backbones.resolve_stem("imagenet", 32) == "imagenet"


def test_heads_normalise_and_sum_to_one():
    h = torch.randn(5, 16)
    z = heads.ProjectionHead(16, 16, 8)(h)
    assert torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-6)
    p = heads.ClusterHead(16, 16, 3)(h)
    assert torch.allclose(p.sum(dim=1), torch.ones(5), atol=1e-6) and (p >= 0).all()
    assert heads.LinearClusterHead(16, 4)(h).shape == (5, 4)


def test_graph_convolution_is_a_times_x_times_w():
    layer = heads.GraphConvolution(4, 3)
    x, a = torch.randn(6, 4), torch.rand(6, 6)
    expected = torch.stack(
        [
            sum(a[i, j] * (layer.linear.weight @ x[j] + layer.linear.bias) for j in range(6))
            for i in range(6)
        ]
    )
    assert torch.allclose(layer(x, a), expected, atol=1e-5)
