"""Held-out classic ImageNet classifiers, written from scratch in plain PyTorch.

None of these architectures appears in any table of nasbench: they are not in a
search space, not in a surrogate's training data and not in a benchmark row.
They exist only to check that nasbench's accuracy estimates generalise to
networks the estimators have never seen, by comparing an estimate with the
published ImageNet-1k top-1 of the same architecture (``PUBLISHED_TOP1``).

Every factory takes no arguments and returns a randomly initialised
``nn.Module`` mapping a ``[N, 3, 224, 224]`` float tensor to ``[N, 1000]``
logits. Layer configurations follow the torchvision reference models, so each
parameter count equals torchvision's documented ``num_params``. Weights use the
usual initialisation: Kaiming-normal (fan_out, ReLU gain) for convolutions with
zero bias, BatchNorm weight 1 and bias 0, Linear weight N(0, 0.01) with zero bias.

The module imports only torch and the standard library (no torchvision).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

_ReLU = partial(nn.ReLU, inplace=True)
_ReLU6 = partial(nn.ReLU6, inplace=True)
_HSwish = partial(nn.Hardswish, inplace=True)
_SiLU = partial(nn.SiLU, inplace=True)

NUM_CLASSES = 1000


# ----------------------------------------------------------------------------
# shared pieces
# ----------------------------------------------------------------------------
def _make_divisible(value: float, divisor: int = 8) -> int:
    """Nearest multiple of ``divisor`` (at least ``divisor``), never more than 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _conv_bn(
    cin: int,
    cout: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    act: Callable[[], nn.Module] | None = None,
    bn_eps: float = 1e-5,
    bn_momentum: float = 0.1,
) -> nn.Sequential:
    """Bias-free 'same'-padded conv, BatchNorm, then an optional activation."""
    layers = [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=bn_eps, momentum=bn_momentum),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def _init_standard(model: nn.Module) -> nn.Module:
    """Kaiming-normal fan_out convs, unit/zero BatchNorm, N(0, 0.01) linears; biases zero."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)
    return model


def _assemble(features: nn.Module, pool: nn.Module, head: nn.Module) -> nn.Module:
    """features -> pool -> flatten -> head, initialised the standard way."""
    model = nn.Sequential(
        OrderedDict(features=features, pool=pool, flatten=nn.Flatten(1), head=head)
    )
    return _init_standard(model)


def _drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples of a residual branch while training."""
    if not training or prob == 0.0:
        return x
    keep = 1.0 - prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class _MaybeResidual(nn.Module):
    """``body(x) (+ x)``: the identity skip of inverted-residual style blocks."""

    def __init__(self, body: nn.Module, residual: bool, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.body = body
        self.residual = residual
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.residual:
            out = _drop_path(out, self.drop_prob, self.training) + x
        return out


class _SqueezeExcite(nn.Module):
    """Channel gating: global pool, 1x1 reduce, act, 1x1 expand, gate, rescale."""

    def __init__(self, channels: int, squeeze: int, act=nn.ReLU, gate=nn.Hardsigmoid) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = act()
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


def _mlp_head(cin: int, hidden: int, dropout: float, act=_ReLU, first_dropout: bool = True) -> nn.Sequential:
    """Two hidden fully connected layers then the classifier (AlexNet / VGG style)."""
    layers = [nn.Dropout(dropout)] if first_dropout else []
    layers += [nn.Linear(cin, hidden), act(), nn.Dropout(dropout)]
    layers += [nn.Linear(hidden, hidden), act()]
    if not first_dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, NUM_CLASSES))
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------
# AlexNet (torchvision's single-tower variant)
# ----------------------------------------------------------------------------
def alexnet() -> nn.Module:
    features = nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), _ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), _ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), _ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), _ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), _ReLU(), nn.MaxPool2d(3, 2),
    )
    head = _mlp_head(256 * 6 * 6, 4096, 0.5, first_dropout=True)
    return _assemble(features, nn.AdaptiveAvgPool2d(6), head)


# ----------------------------------------------------------------------------
# VGG: five stages of 3x3 convs (widths 64..512), each closed by a 2x2 max pool
# ----------------------------------------------------------------------------
_VGG_STAGE_WIDTHS = (64, 128, 256, 512, 512)
_VGG_CONVS_PER_STAGE = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


def _vgg(depth: int, batch_norm: bool) -> nn.Module:
    layers, cin = [], 3
    for width, repeats in zip(_VGG_STAGE_WIDTHS, _VGG_CONVS_PER_STAGE[depth]):
        for _ in range(repeats):
            layers.append(nn.Conv2d(cin, width, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(_ReLU())
            cin = width
        layers.append(nn.MaxPool2d(2, 2))
    head = _mlp_head(512 * 7 * 7, 4096, 0.5, first_dropout=False)
    return _assemble(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(7), head)


def vgg11() -> nn.Module:
    return _vgg(11, batch_norm=False)


def vgg13() -> nn.Module:
    return _vgg(13, batch_norm=False)


def vgg16() -> nn.Module:
    return _vgg(16, batch_norm=False)


def vgg19() -> nn.Module:
    return _vgg(19, batch_norm=False)


def vgg11_bn() -> nn.Module:
    return _vgg(11, batch_norm=True)


def vgg16_bn() -> nn.Module:
    return _vgg(16, batch_norm=True)


# ----------------------------------------------------------------------------
# ResNet family (v1.5: the bottleneck strides in its 3x3 conv)
# ----------------------------------------------------------------------------
def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return _conv_bn(cin, cout, 1, stride)


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(cin, planes, 3, stride, act=_ReLU), _conv_bn(planes, planes, 3)
        )
        self.shortcut = _shortcut(cin, planes, stride)
        self.act = _ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        width = int(planes * base_width / 64) * groups
        cout = planes * self.expansion
        self.body = nn.Sequential(
            _conv_bn(cin, width, 1, act=_ReLU),
            _conv_bn(width, width, 3, stride, groups=groups, act=_ReLU),
            _conv_bn(width, cout, 1),
        )
        self.shortcut = _shortcut(cin, cout, stride)
        self.act = _ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def _resnet(block, repeats: Sequence[int], groups: int = 1, base_width: int = 64) -> nn.Module:
    layers = [_conv_bn(3, 64, 7, 2, act=_ReLU), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), repeats)):
        blocks = []
        for index in range(count):
            stride = 2 if stage > 0 and index == 0 else 1
            blocks.append(block(cin, planes, stride, groups, base_width))
            cin = planes * block.expansion
        layers.append(nn.Sequential(*blocks))
    return _assemble(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), nn.Linear(cin, NUM_CLASSES))


def resnet18() -> nn.Module:
    return _resnet(_BasicBlock, (2, 2, 2, 2))


def resnet34() -> nn.Module:
    return _resnet(_BasicBlock, (3, 4, 6, 3))


def resnet50() -> nn.Module:
    return _resnet(_Bottleneck, (3, 4, 6, 3))


def resnet101() -> nn.Module:
    return _resnet(_Bottleneck, (3, 4, 23, 3))


def resnet152() -> nn.Module:
    return _resnet(_Bottleneck, (3, 8, 36, 3))


def resnext50_32x4d() -> nn.Module:
    return _resnet(_Bottleneck, (3, 4, 6, 3), groups=32, base_width=4)


def wide_resnet50_2() -> nn.Module:
    return _resnet(_Bottleneck, (3, 4, 6, 3), base_width=128)


# ----------------------------------------------------------------------------
# SqueezeNet: Fire modules (1x1 squeeze, then parallel 1x1 / 3x3 expands)
# ----------------------------------------------------------------------------
class _Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), _ReLU())
        self.expand1x1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), _ReLU())
        self.expand3x3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), _ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return torch.cat([self.expand1x1(s), self.expand3x3(s)], 1)


# "M" is a 3x3/2 ceil-mode max pool; a pair is (squeeze, expand) of one Fire module.
_SQUEEZENET_SPECS = {  # version: ((stem width, stem kernel), body)
    "1_0": ((96, 7), ("M", (16, 64), (16, 64), (32, 128), "M",
                      (32, 128), (48, 192), (48, 192), (64, 256), "M", (64, 256))),
    "1_1": ((64, 3), ("M", (16, 64), (16, 64), "M", (32, 128), (32, 128), "M",
                      (48, 192), (48, 192), (64, 256), (64, 256))),
}


def _squeezenet(version: str) -> nn.Module:
    (stem_width, stem_kernel), items = _SQUEEZENET_SPECS[version]
    layers = [nn.Conv2d(3, stem_width, stem_kernel, stride=2), _ReLU()]
    cin = stem_width
    for item in items:
        if item == "M":
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
        else:
            layers.append(_Fire(cin, *item))
            cin = 2 * item[1]
    classifier_conv = nn.Conv2d(cin, NUM_CLASSES, 1)
    head = nn.Sequential(nn.Dropout(0.5), classifier_conv, _ReLU(), nn.AdaptiveAvgPool2d(1))
    model = _init_standard(nn.Sequential(OrderedDict(
        features=nn.Sequential(*layers), head=head, flatten=nn.Flatten(1))))
    nn.init.normal_(classifier_conv.weight, 0.0, 0.01)  # the conv plays the linear's role
    return model


def squeezenet1_0() -> nn.Module:
    return _squeezenet("1_0")


def squeezenet1_1() -> nn.Module:
    return _squeezenet("1_1")


# ----------------------------------------------------------------------------
# DenseNet-BC (growth 32, bottleneck width 4 * growth, compression 0.5)
# ----------------------------------------------------------------------------
class _DenseLayer(nn.Module):
    """BN-ReLU-1x1 then BN-ReLU-3x3; returns the input with the new features appended."""

    def __init__(self, cin: int, growth: int, bn_size: int) -> None:
        super().__init__()
        mid = bn_size * growth
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), _ReLU(), nn.Conv2d(cin, mid, 1, bias=False),
            nn.BatchNorm2d(mid), _ReLU(), nn.Conv2d(mid, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


def _transition(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(cin), _ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2, 2))


def _densenet(block_sizes: Sequence[int], growth: int = 32, init_features: int = 64, bn_size: int = 4) -> nn.Module:
    layers = [
        nn.Conv2d(3, init_features, 7, 2, 3, bias=False), nn.BatchNorm2d(init_features), _ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    channels = init_features
    for index, size in enumerate(block_sizes):
        for _ in range(size):
            layers.append(_DenseLayer(channels, growth, bn_size))
            channels += growth
        if index < len(block_sizes) - 1:
            layers.append(_transition(channels, channels // 2))
            channels //= 2
    layers += [nn.BatchNorm2d(channels), _ReLU()]
    return _assemble(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), nn.Linear(channels, NUM_CLASSES))


def densenet121() -> nn.Module:
    return _densenet((6, 12, 24, 16))


def densenet169() -> nn.Module:
    return _densenet((6, 12, 32, 32))


def densenet201() -> nn.Module:
    return _densenet((6, 12, 48, 32))


# ----------------------------------------------------------------------------
# GoogLeNet (Inception v1 with BatchNorm, the deployed model: no auxiliary heads)
# ----------------------------------------------------------------------------
_gconv = partial(_conv_bn, act=_ReLU, bn_eps=1e-3)


class _Inception(nn.Module):
    """Four parallel branches concatenated on channels.

    As in torchvision's GoogLeNet (whose documented count we reproduce), the
    branch the paper gives a 5x5 conv uses a 3x3 conv.
    """

    def __init__(self, cin: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, pool_proj: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList([
            _gconv(cin, c1, 1),
            nn.Sequential(_gconv(cin, c3_reduce, 1), _gconv(c3_reduce, c3, 3)),
            nn.Sequential(_gconv(cin, c5_reduce, 1), _gconv(c5_reduce, c5, 3)),
            nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), _gconv(cin, pool_proj, 1)),
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], 1)


def googlenet() -> nn.Module:
    def pool(kernel: int = 3) -> nn.Module:
        return nn.MaxPool2d(kernel, 2, ceil_mode=True)

    features = nn.Sequential(
        _gconv(3, 64, 7, 2), pool(), _gconv(64, 64, 1), _gconv(64, 192, 3), pool(),
        _Inception(192, 64, 96, 128, 16, 32, 32),
        _Inception(256, 128, 128, 192, 32, 96, 64), pool(),
        _Inception(480, 192, 96, 208, 16, 48, 64),
        _Inception(512, 160, 112, 224, 24, 64, 64),
        _Inception(512, 128, 128, 256, 24, 64, 64),
        _Inception(512, 112, 144, 288, 32, 64, 64),
        _Inception(528, 256, 160, 320, 32, 128, 128), pool(2),
        _Inception(832, 256, 160, 320, 32, 128, 128),
        _Inception(832, 384, 192, 384, 48, 128, 128),
    )
    head = nn.Sequential(nn.Dropout(0.2), nn.Linear(1024, NUM_CLASSES))
    return _assemble(features, nn.AdaptiveAvgPool2d(1), head)


# ----------------------------------------------------------------------------
# MobileNetV2: inverted residuals with linear bottlenecks
# ----------------------------------------------------------------------------
# (expansion t, output channels c, repeats n, first stride s)
_MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                          (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _mbv2_block(cin: int, cout: int, stride: int, expansion: int) -> nn.Module:
    hidden = int(round(cin * expansion))
    layers = [] if expansion == 1 else [_conv_bn(cin, hidden, 1, act=_ReLU6)]
    layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden, act=_ReLU6), _conv_bn(hidden, cout, 1)]
    return _MaybeResidual(nn.Sequential(*layers), stride == 1 and cin == cout)


def mobilenet_v2() -> nn.Module:
    layers, cin = [_conv_bn(3, 32, 3, 2, act=_ReLU6)], 32
    for expansion, cout, repeats, stride in _MOBILENET_V2_SETTINGS:
        for index in range(repeats):
            layers.append(_mbv2_block(cin, cout, stride if index == 0 else 1, expansion))
            cin = cout
    layers.append(_conv_bn(cin, 1280, 1, act=_ReLU6))
    head = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, NUM_CLASSES))
    return _assemble(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), head)


# ----------------------------------------------------------------------------
# MobileNetV3: inverted residuals with optional squeeze-excite and hard-swish
# ----------------------------------------------------------------------------
# (kernel, expanded channels, output channels, squeeze-excite, hard-swish, stride)
_MBV3_LARGE = (
    (3, 16, 16, False, False, 1), (3, 64, 24, False, False, 2), (3, 72, 24, False, False, 1),
    (5, 72, 40, True, False, 2), (5, 120, 40, True, False, 1), (5, 120, 40, True, False, 1),
    (3, 240, 80, False, True, 2), (3, 200, 80, False, True, 1), (3, 184, 80, False, True, 1),
    (3, 184, 80, False, True, 1), (3, 480, 112, True, True, 1), (3, 672, 112, True, True, 1),
    (5, 672, 160, True, True, 2), (5, 960, 160, True, True, 1), (5, 960, 160, True, True, 1),
)
_MBV3_SMALL = (
    (3, 16, 16, True, False, 2), (3, 72, 24, False, False, 2), (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2), (5, 240, 40, True, True, 1), (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1), (5, 144, 48, True, True, 1), (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1), (5, 576, 96, True, True, 1),
)
_MBV3_BN = dict(bn_eps=1e-3, bn_momentum=0.01)


def _mbv3_block(cin: int, kernel: int, expanded: int, cout: int, use_se: bool, use_hs: bool, stride: int) -> nn.Module:
    act = _HSwish if use_hs else _ReLU
    layers = [] if expanded == cin else [_conv_bn(cin, expanded, 1, act=act, **_MBV3_BN)]
    layers.append(_conv_bn(expanded, expanded, kernel, stride, groups=expanded, act=act, **_MBV3_BN))
    if use_se:
        layers.append(_SqueezeExcite(expanded, _make_divisible(expanded // 4, 8)))
    layers.append(_conv_bn(expanded, cout, 1, **_MBV3_BN))
    return _MaybeResidual(nn.Sequential(*layers), stride == 1 and cin == cout)


def _mobilenet_v3(settings: Sequence[tuple], head_width: int) -> nn.Module:
    layers, cin = [_conv_bn(3, 16, 3, 2, act=_HSwish, **_MBV3_BN)], 16
    for kernel, expanded, cout, use_se, use_hs, stride in settings:
        layers.append(_mbv3_block(cin, kernel, expanded, cout, use_se, use_hs, stride))
        cin = cout
    last = 6 * cin
    layers.append(_conv_bn(cin, last, 1, act=_HSwish, **_MBV3_BN))
    head = nn.Sequential(
        nn.Linear(last, head_width), _HSwish(), nn.Dropout(0.2), nn.Linear(head_width, NUM_CLASSES)
    )
    return _assemble(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), head)


def mobilenet_v3_large() -> nn.Module:
    return _mobilenet_v3(_MBV3_LARGE, 1280)


def mobilenet_v3_small() -> nn.Module:
    return _mobilenet_v3(_MBV3_SMALL, 1024)


# ----------------------------------------------------------------------------
# ShuffleNetV2: channel split, two branches, concat, channel shuffle
# ----------------------------------------------------------------------------
def _channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class _ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        half = cout // 2
        self.stride = stride
        if stride > 1:  # both branches see the whole input and downsample it
            self.left = nn.Sequential(_conv_bn(cin, cin, 3, stride, groups=cin), _conv_bn(cin, half, 1, act=_ReLU))
        right_in = cin if stride > 1 else half
        self.right = nn.Sequential(
            _conv_bn(right_in, half, 1, act=_ReLU),
            _conv_bn(half, half, 3, stride, groups=half),
            _conv_bn(half, half, 1, act=_ReLU),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            kept, processed = x.chunk(2, dim=1)
            out = torch.cat([kept, self.right(processed)], 1)
        else:
            out = torch.cat([self.left(x), self.right(x)], 1)
        return _channel_shuffle(out, 2)


_SHUFFLENET_WIDTHS = {  # stage outputs and the final 1x1 conv width
    "0_5": (48, 96, 192, 1024), "1_0": (116, 232, 464, 1024),
    "1_5": (176, 352, 704, 1024), "2_0": (244, 488, 976, 2048),
}


def _shufflenet_v2(width_key: str) -> nn.Module:
    *stage_widths, final = _SHUFFLENET_WIDTHS[width_key]
    layers, cin = [_conv_bn(3, 24, 3, 2, act=_ReLU), nn.MaxPool2d(3, 2, 1)], 24
    for width, repeats in zip(stage_widths, (4, 8, 4)):
        units = [_ShuffleUnit(cin, width, 2)] + [_ShuffleUnit(width, width, 1) for _ in range(repeats - 1)]
        layers.append(nn.Sequential(*units))
        cin = width
    layers.append(_conv_bn(cin, final, 1, act=_ReLU))
    return _assemble(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), nn.Linear(final, NUM_CLASSES))


def shufflenet_v2_x0_5() -> nn.Module:
    return _shufflenet_v2("0_5")


def shufflenet_v2_x1_0() -> nn.Module:
    return _shufflenet_v2("1_0")


def shufflenet_v2_x1_5() -> nn.Module:
    return _shufflenet_v2("1_5")


def shufflenet_v2_x2_0() -> nn.Module:
    return _shufflenet_v2("2_0")


# ----------------------------------------------------------------------------
# MNASNet (B1 variant, as in torchvision), ReLU throughout, no squeeze-excite
# ----------------------------------------------------------------------------
# (kernel, first stride, expansion, repeats) of the six searched stacks
_MNASNET_STACKS = ((3, 2, 3, 3), (5, 2, 3, 3), (5, 2, 6, 3), (3, 1, 6, 2), (5, 2, 6, 4), (3, 1, 6, 1))
_MNASNET_BASE_DEPTHS = (32, 16, 24, 40, 80, 96, 192, 320)
_MNASNET_BN = dict(bn_momentum=1.0 - 0.9997)


def _mnasnet_block(cin: int, cout: int, kernel: int, stride: int, expansion: int) -> nn.Module:
    mid = cin * expansion
    body = nn.Sequential(
        _conv_bn(cin, mid, 1, act=_ReLU, **_MNASNET_BN),
        _conv_bn(mid, mid, kernel, stride, groups=mid, act=_ReLU, **_MNASNET_BN),
        _conv_bn(mid, cout, 1, **_MNASNET_BN),
    )
    return _MaybeResidual(body, stride == 1 and cin == cout)


def _mnasnet(alpha: float) -> nn.Module:
    depths = [_make_divisible(d * alpha, 8) for d in _MNASNET_BASE_DEPTHS]
    layers = [
        _conv_bn(3, depths[0], 3, 2, act=_ReLU, **_MNASNET_BN),
        _conv_bn(depths[0], depths[0], 3, groups=depths[0], act=_ReLU, **_MNASNET_BN),
        _conv_bn(depths[0], depths[1], 1, **_MNASNET_BN),
    ]
    for (kernel, stride, expansion, repeats), cin, cout in zip(_MNASNET_STACKS, depths[1:], depths[2:]):
        for index in range(repeats):
            first = index == 0
            layers.append(_mnasnet_block(cin if first else cout, cout, kernel, stride if first else 1, expansion))
    layers.append(_conv_bn(depths[-1], 1280, 1, act=_ReLU, **_MNASNET_BN))
    head = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, NUM_CLASSES))
    return _assemble(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), head)


def mnasnet0_5() -> nn.Module:
    return _mnasnet(0.5)


def mnasnet1_0() -> nn.Module:
    return _mnasnet(1.0)


# ----------------------------------------------------------------------------
# EfficientNet-B0: MBConv blocks with squeeze-excite, SiLU and stochastic depth
# ----------------------------------------------------------------------------
# (expansion, kernel, first stride, input channels, output channels, repeats)
_EFFICIENTNET_B0 = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                    (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))
_EFFICIENTNET_STOCHASTIC_DEPTH = 0.2  # drop probability of the deepest block (training only)


def _mbconv(cin: int, cout: int, kernel: int, stride: int, expansion: int, drop_prob: float) -> nn.Module:
    hidden = _make_divisible(cin * expansion, 8)
    layers = [] if hidden == cin else [_conv_bn(cin, hidden, 1, act=_SiLU)]
    layers += [
        _conv_bn(hidden, hidden, kernel, stride, groups=hidden, act=_SiLU),
        _SqueezeExcite(hidden, max(1, cin // 4), act=nn.SiLU, gate=nn.Sigmoid),
        _conv_bn(hidden, cout, 1),
    ]
    return _MaybeResidual(nn.Sequential(*layers), stride == 1 and cin == cout, drop_prob)


def efficientnet_b0() -> nn.Module:
    total = sum(spec[-1] for spec in _EFFICIENTNET_B0)
    layers, built = [_conv_bn(3, 32, 3, 2, act=_SiLU)], 0
    for expansion, kernel, stride, cin, cout, repeats in _EFFICIENTNET_B0:
        for index in range(repeats):
            first = index == 0
            drop = _EFFICIENTNET_STOCHASTIC_DEPTH * built / total  # grows linearly with depth
            layers.append(_mbconv(cin if first else cout, cout, kernel, stride if first else 1, expansion, drop))
            built += 1
    layers.append(_conv_bn(320, 1280, 1, act=_SiLU))
    head = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, NUM_CLASSES))
    return _assemble(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), head)


# ----------------------------------------------------------------------------
# registry and published accuracies
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Published:
    """A published ImageNet-1k validation top-1 (percent) and its evaluation crop size."""

    top1: float
    imgsz: int
    source: str


FACTORIES: dict[str, Callable[[], nn.Module]] = {
    fn.__name__: fn
    for fn in (
        alexnet, vgg11, vgg13, vgg16, vgg19, vgg11_bn, vgg16_bn,
        resnet18, resnet34, resnet50, resnet101, resnet152, resnext50_32x4d, wide_resnet50_2,
        squeezenet1_0, squeezenet1_1, densenet121, densenet169, densenet201, googlenet,
        mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small,
        shufflenet_v2_x0_5, shufflenet_v2_x1_0, shufflenet_v2_x1_5, shufflenet_v2_x2_0,
        mnasnet0_5, mnasnet1_0, efficientnet_b0,
    )
}

# torchvision's documented acc@1 for each model's IMAGENET1K_V1 weights (224 centre crop).
_TV_SOURCE = "torchvision model docs / weights metadata, IMAGENET1K_V1"
_TOP1 = {
    "alexnet": 56.522, "vgg11": 69.020, "vgg13": 69.928, "vgg16": 71.592, "vgg19": 72.376,
    "vgg11_bn": 70.370, "vgg16_bn": 73.360,
    "resnet18": 69.758, "resnet34": 73.314, "resnet50": 76.130, "resnet101": 77.374,
    "resnet152": 78.312, "resnext50_32x4d": 77.618, "wide_resnet50_2": 78.468,
    "squeezenet1_0": 58.092, "squeezenet1_1": 58.178,
    "densenet121": 74.434, "densenet169": 75.600, "densenet201": 76.896, "googlenet": 69.778,
    "mobilenet_v2": 71.878, "mobilenet_v3_large": 74.042, "mobilenet_v3_small": 67.668,
    "shufflenet_v2_x0_5": 60.552, "shufflenet_v2_x1_0": 69.362,
    "shufflenet_v2_x1_5": 72.996, "shufflenet_v2_x2_0": 76.230,
    "mnasnet0_5": 67.734, "mnasnet1_0": 73.456, "efficientnet_b0": 77.692,
}
# The same architectures retrained by torchvision with its new recipe (long schedule, strong
# augmentation, EMA; IMAGENET1K_V2 weights, 224 crop of a 232 resize), where such weights exist:
# the recipe check of benchmarks/accuracy_validity.py (same architecture, two recipes).
_NEW_RECIPE_SOURCE = "torchvision model docs / weights metadata, IMAGENET1K_V2 (new training recipe)"
_TOP1_NEW_RECIPE = {
    "resnet50": 80.858, "resnet101": 81.886, "resnet152": 82.284, "resnext50_32x4d": 81.198,
    "wide_resnet50_2": 81.602, "mobilenet_v2": 72.154, "mobilenet_v3_large": 75.274,
}
# The design lineage of each model, for leave-one-family-out fits that include these models
# (the ceiling analysis of benchmarks/accuracy_validity.py): a ResNeXt or a wide ResNet is
# a ResNet, a VGG with BatchNorm is a VGG.
FAMILY: dict[str, str] = {
    name: next(family for prefix, family in (
        ("alexnet", "alexnet"), ("vgg", "vgg"), ("resne", "resnet"), ("wide_resnet", "resnet"),
        ("squeezenet", "squeezenet"), ("densenet", "densenet"), ("googlenet", "googlenet"),
        ("mobilenet", "mobilenet"), ("shufflenet", "shufflenet"), ("mnasnet", "mnasnet"),
        ("efficientnet", "efficientnet")) if name.startswith(prefix))
    for name in _TOP1
}
PUBLISHED_TOP1: dict[str, Published] = {
    name: Published(top1=top1, imgsz=224, source=_TV_SOURCE) for name, top1 in _TOP1.items()
}

PUBLISHED_TOP1_NEW_RECIPE: dict[str, Published] = {
    name: Published(top1=top1, imgsz=224, source=_NEW_RECIPE_SOURCE) for name, top1 in _TOP1_NEW_RECIPE.items()
}

__all__ = ["FACTORIES", "FAMILY", "PUBLISHED_TOP1", "PUBLISHED_TOP1_NEW_RECIPE", "Published", *FACTORIES]
