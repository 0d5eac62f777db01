"""The baselines of the paper's Table 1, for speed only (random weights): FCN-8s, SegNet, DeepLab v2.

torch only. Each is built as its paper describes, so the parameter count can be checked
against Table 1 and the ONNX graph does the work the original does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VGG16 = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def _vgg_block(cin: int, widths: tuple[int, ...], bn: bool) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv2d(cin, w, 3, padding=1)] + ([nn.BatchNorm2d(w)] if bn else []) + [nn.ReLU(inplace=True)]
        cin = w
    return nn.Sequential(*layers), cin


def _vgg16(bn: bool) -> nn.ModuleList:
    """The five VGG16 conv blocks (pooling is applied by the caller)."""
    blocks, cin = [], 3
    for widths in VGG16:
        block, cin = _vgg_block(cin, widths, bn)
        blocks.append(block)
    return nn.ModuleList(blocks)


class FCN8s(nn.Module):
    """FCN-8s (Long et al. 2015): VGG16, fc6/fc7 as convolutions, skips from pool3 and pool4."""

    def __init__(self, num_classes: int = 20) -> None:
        super().__init__()
        self.blocks = _vgg16(bn=False)
        self.fc6 = nn.Conv2d(512, 4096, 7, padding=3)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.drop = nn.Dropout2d(0.5)
        self.score_fr = nn.Conv2d(4096, num_classes, 1)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)
        self.up2 = nn.ConvTranspose2d(num_classes, num_classes, 4, 2, 1, bias=False)
        self.up2b = nn.ConvTranspose2d(num_classes, num_classes, 4, 2, 1, bias=False)
        self.up8 = nn.ConvTranspose2d(num_classes, num_classes, 16, 8, 4, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pools = []
        for block in self.blocks:
            x = F.max_pool2d(block(x), 2)
            pools.append(x)
        x = self.drop(F.relu(self.fc7(self.drop(F.relu(self.fc6(x))))))
        x = self.up2(self.score_fr(x)) + self.score_pool4(pools[3])
        x = self.up2b(x) + self.score_pool3(pools[2])
        return self.up8(x)


class SegNet(nn.Module):
    """SegNet (Badrinarayanan et al. 2017): VGG16-BN encoder, mirrored decoder with max-unpooling.

    Unpooling is written as a scatter of each pooled value to the position its max came from
    (ScatterElements in ONNX), which is what MaxUnpool2d computes.
    """

    def __init__(self, num_classes: int = 20) -> None:
        super().__init__()
        self.enc = _vgg16(bn=True)
        dec = []
        for i in reversed(range(5)):
            widths = VGG16[i]
            out_last = VGG16[i - 1][-1] if i > 0 else 64
            mirrored = tuple(widths[:-1]) + (out_last,)
            block, _ = _vgg_block(widths[-1], mirrored, bn=True)
            dec.append(block)
        self.dec = nn.ModuleList(dec)
        self.classifier = nn.Conv2d(64, num_classes, 3, padding=1)

    @staticmethod
    def _unpool(x: Tensor, idx: Tensor, size: torch.Size) -> Tensor:
        n, c, h, w = x.shape
        out = x.new_zeros(n, c, size[2] * size[3])
        return out.scatter(2, idx.flatten(2), x.flatten(2)).view(n, c, size[2], size[3])

    def forward(self, x: Tensor) -> Tensor:
        stack = []
        for block in self.enc:
            x = block(x)
            size = x.shape
            x, idx = F.max_pool2d(x, 2, return_indices=True)
            stack.append((idx, size))
        for block in self.dec:
            idx, size = stack.pop()
            x = block(self._unpool(x, idx, size))
        return self.classifier(x)


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, stride: int, dilation: int) -> None:
        super().__init__()
        cout = mid * 4
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (self.down(x) if self.down is not None else x))


class DeepLabV2(nn.Module):
    """DeepLab v2 (Chen et al. 2017): ResNet-101, output stride 8 (dilation 2 and 4), ASPP-L 6/12/18/24."""

    def __init__(self, num_classes: int = 20) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for mid, n, stride, dil in ((64, 3, 1, 1), (128, 4, 2, 1), (256, 23, 1, 2), (512, 3, 1, 4)):
            blocks = []
            for i in range(n):
                blocks.append(_Bottleneck(cin, mid, stride if i == 0 else 1, dil))
                cin = mid * 4
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        self.aspp = nn.ModuleList(nn.Conv2d(2048, num_classes, 3, padding=r, dilation=r) for r in (6, 12, 18, 24))

    def forward(self, x: Tensor) -> Tensor:
        f = self.layers(self.stem(x))
        y = sum(branch(f) for branch in self.aspp)
        return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)
