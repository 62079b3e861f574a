"""The spec layer: field types, layer models, the whole-network model, the YAML loader and scaling.

Imports nothing from the rest of costmodel except ``errors``.
"""

from __future__ import annotations

from .fields import Activation, IntOrSym, se_ratio
from .layers import (
    BasicLayer,
    BottleneckLayer,
    ConvLayer,
    DropoutLayer,
    DWSepLayer,
    FusedMBConvLayer,
    Layer,
    LinearLayer,
    MBConvLayer,
    PoolLayer,
)
from .network import Defaults, Input, NetworkSpec, Scaling, layer_model, register_layer_model, symbol_uses

__all__ = [
    "Activation",
    "BasicLayer",
    "BottleneckLayer",
    "ConvLayer",
    "DWSepLayer",
    "Defaults",
    "DropoutLayer",
    "FusedMBConvLayer",
    "Input",
    "IntOrSym",
    "Layer",
    "LinearLayer",
    "MBConvLayer",
    "NetworkSpec",
    "PoolLayer",
    "Scaling",
    "layer_model",
    "register_layer_model",
    "se_ratio",
    "symbol_uses",
]
