"""LIP-Net (Ilyas & Kim, "LIP Net: Real-Time Semantic Segmentation of Person Body Parts", 2020).

Encoder: six stages S1..S6 of two SE-ResNet blocks built from dilated depthwise-separable
convolutions (SE reduction r=8); 2x2 max pooling after S1..S4 (output stride 16); dilations
1, 1, 2, 4, 8 for S1..S5 and 1 for S6 (a rate-1 conv after rate 8 touches every position, so
the gridding pattern of the dilated stack is filled in; 2 would still skip odd offsets).
Head: ASPP {1, 6, 12, 18} with image pooling, then the DeepLabv3+ decoder: ASPP x4 joined
with S3's features before its pooling (stride 4) reduced to a quarter of their channels, a 3x3
separable conv, the 1x1 classifier, and one bilinear resize to the input size (x4). The
classifier runs before the upsampling: a 1x1 conv commutes with bilinear interpolation, so the
function is the same and the upsampled tensor has 20 channels, not the decoder's width.
`LipNetConfig.decoder_stride` / `decoder_separable` give the other readings of the text (join S3
after its pooling, stride 8, as releases before 2026-12-03 did; a full 3x3 conv); both have the
same parameters, so weights of one start training of the other. `lipparse-rt bench variants`
times them.

torch only: no files, cameras or ONNX Runtime here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ImageNet statistics, RGB, for inputs scaled to 0..1.
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)


# Where the decoder can join S3: before its pooling (4) or after it (8).
DECODER_STRIDES = (4, 8)

# Four 2x2 poolings: the input's sides must be multiples of this (the output stride).
OUTPUT_STRIDE = 16


@dataclass(frozen=True)
class LipNetConfig:
    """Widths and rates of LIP-Net; the defaults give 3,977,031 parameters (paper: 3.97M)."""

    num_classes: int = 20
    widths: tuple[int, ...] = (16, 32, 64, 128, 448, 608)
    dilations: tuple[int, ...] = (1, 1, 2, 4, 8, 1)
    se_ratio: int = 8
    aspp_rates: tuple[int, ...] = (1, 6, 12, 18)
    aspp_width: int = 256
    decoder_width: int = 128
    decoder_stride: int = 4  # join S3 before its pooling (4) or after it (8)
    decoder_separable: bool = True  # the decoder's 3x3 conv: depthwise-separable or full
    dropout: float = 0.25

    def __post_init__(self) -> None:
        if len(self.widths) != 6 or len(self.dilations) != 6:
            raise ValueError("LIP-Net has six stages: give six widths and six dilations")
        if self.decoder_stride not in DECODER_STRIDES:
            raise ValueError("the decoder joins S3 at stride 8 (after its pooling) or 4 (before it)")


class Preprocess(nn.Module):
    """uint8 BGR NHWC frames -> normalised float RGB NCHW, the same in training and in ONNX."""

    def __init__(self) -> None:
        super().__init__()
        mean = torch.tensor(MEAN_RGB[::-1]).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(STD_RGB[::-1]).view(1, 3, 1, 1) * 255.0
        # Kept in BGR order; the channel flip to RGB happens once, after normalising.
        self.register_buffer("mean_bgr", mean, persistent=False)
        self.register_buffer("inv_std_bgr", 1.0 / std, persistent=False)

    def forward(self, bgr: Tensor) -> Tensor:
        x = bgr.permute(0, 3, 1, 2).float()
        x = (x - self.mean_bgr) * self.inv_std_bgr
        return x.flip(1)


class SeparableConv2d(nn.Sequential):
    """3x3 depthwise conv with dilation, then 1x1 pointwise conv (no bias: BN follows)."""

    def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
        )


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation gate (Hu et al. 2018) with reduction ratio `rd_ratio`."""

    def __init__(self, channels: int, rd_ratio: int = 8) -> None:
        super().__init__()
        hidden = max(channels // rd_ratio, 4)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class SEResBlock(nn.Module):
    """SE-ResNet block ("SER"): two separable convs, an SE gate, and a residual shortcut."""

    def __init__(self, cin: int, cout: int, dilation: int, rd_ratio: int) -> None:
        super().__init__()
        self.conv1 = SeparableConv2d(cin, cout, dilation)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = SeparableConv2d(cout, cout, dilation)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = SqueezeExcite(cout, rd_ratio)
        self.shortcut: nn.Module = nn.Identity()
        if cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.se(self.bn2(self.conv2(y)))
        return F.relu(y + self.shortcut(x))


class Stage(nn.Sequential):
    """One encoder stage: two SER blocks at one dilation rate."""

    def __init__(self, cin: int, cout: int, dilation: int, rd_ratio: int) -> None:
        super().__init__(
            SEResBlock(cin, cout, dilation, rd_ratio),
            SEResBlock(cout, cout, dilation, rd_ratio),
        )


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabv3): a 1x1 branch, separable atrous branches, image pooling."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        branches: list[nn.Module] = []
        for rate in rates:
            if rate == 1:
                branches.append(_conv_bn_relu(cin, cout))
            else:
                branches.append(
                    nn.Sequential(SeparableConv2d(cin, cout, rate), nn.BatchNorm2d(cout), nn.ReLU())
                )
        self.branches = nn.ModuleList(branches)
        # Image pooling: no BN on a 1x1 map (batch 1 at run time), a bias instead.
        self.pool = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.ReLU())
        self.project = _conv_bn_relu(cout * (len(rates) + 1), cout)

    def forward(self, x: Tensor) -> Tensor:
        feats = [branch(x) for branch in self.branches]
        pooled = self.pool(x.mean((2, 3), keepdim=True))
        feats.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        return self.project(torch.cat(feats, 1))


class Decoder(nn.Module):
    """DeepLabv3+ decoder: ASPP x2, S3 features reduced 4x, a 3x3 separable conv, the classifier."""

    def __init__(self, aspp_ch: int, low_ch: int, width: int, num_classes: int, dropout: float,
                 separable: bool = True) -> None:
        super().__init__()
        reduced = low_ch // 4
        self.reduce = _conv_bn_relu(low_ch, reduced)
        conv = SeparableConv2d(aspp_ch + reduced, width) if separable else nn.Conv2d(aspp_ch + reduced, width, 3, padding=1, bias=False)
        self.fuse = nn.Sequential(conv, nn.BatchNorm2d(width), nn.ReLU())
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, aspp: Tensor, low: Tensor) -> Tensor:
        up = F.interpolate(aspp, size=low.shape[2:], mode="bilinear", align_corners=False)
        x = self.fuse(torch.cat([up, self.reduce(low)], 1))
        return self.classifier(self.dropout(x))


class LipNet(nn.Module):
    """LIP-Net: normalised RGB NCHW in, class logits at the input size out."""

    def __init__(self, config: LipNetConfig = LipNetConfig()) -> None:
        super().__init__()
        self.config = config
        c = config
        cins = (3,) + c.widths[:-1]
        self.stages = nn.ModuleList(
            Stage(cin, cout, d, c.se_ratio) for cin, cout, d in zip(cins, c.widths, c.dilations)
        )
        self.aspp = ASPP(c.widths[5], c.aspp_width, c.aspp_rates)
        self.decoder = Decoder(c.aspp_width, c.widths[2], c.decoder_width, c.num_classes, c.dropout,
                               c.decoder_separable)

    def forward_features(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """Return the outputs of S1..S6 (S1..S4 after their pooling) and S3 before its pooling."""
        feats, s3 = [], x
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == 2:
                s3 = x
            if i < 4:
                x = F.max_pool2d(x, 2)
            feats.append(x)
        return feats, s3

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_tracing() and (x.shape[2] % OUTPUT_STRIDE or x.shape[3] % OUTPUT_STRIDE):
            raise ValueError(f"LIP-Net needs sides divisible by {OUTPUT_STRIDE}, got {tuple(x.shape[2:])}: pad the input")
        feats, s3 = self.forward_features(x)
        low = feats[2] if self.config.decoder_stride == 8 else s3
        logits = self.decoder(self.aspp(feats[5]), low)
        return F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)

    def num_params(self) -> int:
        """Return the number of parameters."""
        return sum(p.numel() for p in self.parameters())
