"""Depth as the papers count it: the most weighted layers on any path from input to output.

GoogLeNet's paper: "22 layers deep when counting only layers with parameters (or 27 layers if
we also count pooling)"; an Inception module is two layers deep (1x1 reduce -> 3x3), a residual
block as deep as its main branch (a projection shortcut runs beside it). The model is traced
with torch.fx (no compute; a meta model works) and the longest path is taken over the graph.

Weighted layers are convolutions and fully connected layers, as modules or functional calls.
Batch norm is not counted: the papers that name their depth (VGG, GoogLeNet, ResNet) count
convolutions and FC layers only, and GoogLeNet as the paper drew it had no batch norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn

WEIGHTED_MODULES: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.Linear,
)
WEIGHTED_FUNCTIONS = {F.conv1d, F.conv2d, F.conv3d, F.linear, torch.conv2d, torch.conv1d}
POOL_MODULES: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
)
POOL_FUNCTIONS = {F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d}


def weighted_depth(model: nn.Module, count_pools: bool = False) -> int:
    """Weighted layers (conv, FC; with ``count_pools`` pooling layers too) on the longest path
    from the input to the output of ``model``'s forward, traced with torch.fx."""
    graph_module = fx.symbolic_trace(model)
    modules = dict(graph_module.named_modules())
    counted_modules = WEIGHTED_MODULES + (POOL_MODULES if count_pools else ())
    counted_functions = WEIGHTED_FUNCTIONS | (POOL_FUNCTIONS if count_pools else set())
    depth: dict[fx.Node, int] = {}
    for node in graph_module.graph.nodes:  # in topological order
        before = max((depth[a] for a in node.all_input_nodes), default=0)
        if node.op == "call_module":
            own = isinstance(modules[node.target], counted_modules)
        elif node.op == "call_function":
            own = node.target in counted_functions
        else:
            own = False
        depth[node] = before + int(own)
    return max((d for node, d in depth.items() if node.op == "output"), default=0)
