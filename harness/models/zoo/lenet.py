"""LeNet-5 as LeCun et al. (1998) describe it: trainable subsampling, the C3 connection table,
the scaled tanh squashing function and a Euclidean RBF output layer.

Every layer of the paper is one leaf module named after it (``c1``, ``s2``, ``c3``, ``s4``,
``c5``, ``f6``, ``output``), so a per-layer profile lines up with the paper's table of trainable
parameters and connections. Only the weights the paper trains are parameters: C3 holds the 60
connected 5x5 kernels of Table I and nothing else (1,516 parameters, not 2,416).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.models.registry import register_model

REFERENCE = (
    "LeCun, Bottou, Bengio, Haffner. Gradient-based learning applied to document recognition. "
    "Proceedings of the IEEE 86(11):2278-2324, 1998"
)

# Table I of the paper: the S2 maps (0-5) each C3 map (0-15) is connected to.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    # maps 0-5: three adjacent S2 maps
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    # maps 6-11: four adjacent S2 maps
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    # maps 12-14: four non-adjacent S2 maps
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    # map 15: all six
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip


class ScaledTanh(nn.Module):
    """The paper's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (Appendix A)."""

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.amplitude = amplitude
        self.slope = slope

    def forward(self, x: Tensor) -> Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4f}"


class Subsampling(nn.Module):
    """LeNet's trainable 2x2 subsampling: each unit sums its 4 inputs, multiplies the sum by one
    trainable coefficient per map and adds one trainable bias per map (2 parameters per map).

    It runs as a depthwise convolution whose 2x2 kernel is the coefficient repeated, so a
    dispatch-level MAC counter sees 4 multiply-adds per output unit, as the paper counts them.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        kernel = self.weight.view(self.channels, 1, 1, 1).expand(self.channels, 1, 2, 2)
        return F.conv2d(x, kernel, self.bias, stride=2, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size=2, stride=2"


class SparseConv2d(nn.Module):
    """A convolution where output map k sees only the input maps ``table[k]``.

    Only connected kernels are parameters (``weight_k`` of shape (1, len(table[k]), K, K)) plus
    one bias per output map; the forward is one convolution per output map, concatenated.
    """

    def __init__(
        self, table: tuple[tuple[int, ...], ...], in_channels: int, kernel_size: int
    ) -> None:
        super().__init__()
        self.table = table
        self.in_channels = in_channels
        self.out_channels = len(table)
        self.kernel_size = kernel_size
        for k, inputs in enumerate(table):
            weight = torch.empty(1, len(inputs), kernel_size, kernel_size)
            self.register_parameter(f"weight_{k}", nn.Parameter(weight))
        self.bias = nn.Parameter(torch.empty(self.out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in +-2.4 / fan_in, the initialisation of the paper's Appendix C."""
        for k, inputs in enumerate(self.table):
            bound = 2.4 / (len(inputs) * self.kernel_size**2)
            nn.init.uniform_(getattr(self, f"weight_{k}"), -bound, bound)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        maps = [
            F.conv2d(x[:, list(inputs)], getattr(self, f"weight_{k}"), self.bias[k : k + 1])
            for k, inputs in enumerate(self.table)
        ]
        return torch.cat(maps, dim=1)

    def extra_repr(self) -> str:
        connections = sum(len(t) for t in self.table)
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"connected_pairs={connections}"
        )


def rbf_centers(num_classes: int = 10, features: int = 84) -> Tensor:
    """A deterministic +1/-1 code per class, (num_classes, features).

    The paper's RBF centres are 7x12 bitmaps of the characters, drawn by hand; this uses rows
    1..num_classes of the Sylvester-Hadamard (Walsh) matrix instead: w_ij = (-1)^popcount(i & j),
    which is equally fixed, +1/-1 valued and makes the codes well separated.
    """
    rows = [
        [1.0 if bin((i + 1) & j).count("1") % 2 == 0 else -1.0 for j in range(features)]
        for i in range(num_classes)
    ]
    return torch.tensor(rows)


class EuclideanRBF(nn.Module):
    """Output layer of LeNet-5: y_i = sum_j (x_j - w_ij)^2 with fixed (untrained) centres w.

    The centres are a buffer (see ``rbf_centers``), not a parameter. The distance is computed as
    ||x||^2 - 2 x W^T + ||w||^2 so that the matrix product is visible to a MAC counter.
    """

    def __init__(self, in_features: int = 84, num_classes: int = 10) -> None:
        super().__init__()
        self.in_features = in_features
        self.num_classes = num_classes
        self.register_buffer("centers", rbf_centers(num_classes, in_features))

    def forward(self, x: Tensor) -> Tensor:
        centers: Tensor = self.centers
        return (
            x.pow(2).sum(dim=1, keepdim=True) - 2.0 * (x @ centers.t()) + centers.pow(2).sum(dim=1)
        )

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.num_classes}, fixed=True"


class LeNet5(nn.Sequential):
    """LeNet-5 on a 1x32x32 input: C1-S2-C3-S4-C5-F6-RBF, scaled tanh after each of C1..F6.

    The paper's "sigmoid squashing function" is the scaled tanh of Section II-B / Appendix A,
    applied after every layer up to F6, subsampling layers included.
    """

    def __init__(self) -> None:
        super().__init__(
            OrderedDict(
                [
                    ("c1", nn.Conv2d(1, 6, kernel_size=5)),  # 6@28x28
                    ("c1_act", ScaledTanh()),
                    ("s2", Subsampling(6)),  # 6@14x14
                    ("s2_act", ScaledTanh()),
                    ("c3", SparseConv2d(C3_TABLE, in_channels=6, kernel_size=5)),  # 16@10x10
                    ("c3_act", ScaledTanh()),
                    ("s4", Subsampling(16)),  # 16@5x5
                    ("s4_act", ScaledTanh()),
                    ("c5", nn.Conv2d(16, 120, kernel_size=5)),  # 120@1x1
                    ("c5_act", ScaledTanh()),
                    ("flatten", nn.Flatten()),
                    ("f6", nn.Linear(120, 84)),
                    ("f6_act", ScaledTanh()),
                    ("output", EuclideanRBF(84, 10)),
                ]
            )
        )


@register_model(
    "lenet5",
    input_shape=(1, 32, 32),
    # C5 needs a 5x5 S4 map; 31x31 gives 27 -> 13 -> 9 -> 4 and C5 fails; 32 and 33 give 1x1
    # at C5 and F6 takes exactly 120 features, so 32 is the smallest (and the usual) input.
    min_input_shape=(1, 32, 32),
    family="lenet",
    description="LeNet-5 (1998): trainable subsampling, C3 connection table, RBF output",
    reference=REFERENCE,
)
def lenet5() -> LeNet5:
    """LeNet-5 as in the paper (60,000 trainable parameters)."""
    return LeNet5()
