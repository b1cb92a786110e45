"""Building blocks shared by the vid2vid generators and discriminators: norm layers and the ResnetBlock.

Every block is a plain nn.Sequential whose layer order (padding, conv, norm, activation) is that of the
original vid2vid networks, so a Sequential index here is the index the original checkpoints use.
"""

from torch import nn

NORMS = ("batch", "instance")


def check_norm(norm):
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def norm_layer(norm, channels):
    """BatchNorm2d (affine), or InstanceNorm2d without affine parameters but with running statistics, as
    in the original get_norm_layer: its checkpoints carry running_mean/var for instance norm too."""
    check_norm(norm)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=True)


def conv7_block(in_channels, out_channels, norm):
    """ReflectionPad(3) -> Conv7 -> norm -> ReLU: the first layer of every encoder."""
    return [
        nn.ReflectionPad2d(3),
        nn.Conv2d(in_channels, out_channels, kernel_size=7, padding=0),
        norm_layer(norm, out_channels),
        nn.ReLU(True),
    ]


def down_block(in_channels, out_channels, norm):
    """Conv3 stride 2 -> norm -> ReLU: halves H and W."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1),
        norm_layer(norm, out_channels),
        nn.ReLU(True),
    ]


def up_block(in_channels, out_channels, norm):
    """ConvTranspose3 stride 2 (output_padding 1) -> norm -> ReLU: doubles H and W exactly."""
    return [
        nn.ConvTranspose2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1, output_padding=1),
        norm_layer(norm, out_channels),
        nn.ReLU(True),
    ]


def head(in_channels, out_channels, activation=None):
    """ReflectionPad(3) -> Conv7 [-> activation]: the output layers (image, flow, weight)."""
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, out_channels, kernel_size=7, padding=0)]
    if activation is not None:
        layers.append(activation)
    return nn.Sequential(*layers)


class ResnetBlock(nn.Module):
    """x + (ReflPad1, Conv3, norm, ReLU, ReflPad1, Conv3, norm)(x)."""

    def __init__(self, channels, norm="batch"):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            norm_layer(norm, channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            norm_layer(norm, channels),
        )

    def forward(self, x):
        return x + self.body(x)


def resnet_blocks(channels, count, norm):
    return [ResnetBlock(channels, norm) for _ in range(count)]
