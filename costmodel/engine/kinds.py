"""The registry of layer kinds: each kind is its spec model plus its block function, registered once.

``register(Model, block)`` adds the model to the spec's layer union and the block to the engine; the
network walk, the settings text (``Model.settings``), the symbol assumptions (``Assume`` markers on
fields), width scaling (``Channels`` markers) and the torch reference (``torch=``, or
costmodel.torchref's own builders for the shipped kinds) all find a kind from here.

    >>> from typing import Literal
    >>> from costmodel.spec.layers import ConvLike
    >>> class Twice(ConvLike):
    ...     kind: Literal["twice"]
    >>> def twice(layer, a):
    ...     f = Flow(a.inp)
    ...     conv_unit(f, a, "first", layer.out_channels, layer.kernel, a.stride)
    ...     conv_unit(f, a, "second", layer.out_channels, layer.kernel)
    ...     return f
    >>> _ = register(Twice, twice)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..spec.layers import BasicLayer as _Basic
from ..spec.layers import BottleneckLayer as _Bottleneck
from ..spec.layers import ConvLayer as _Conv
from ..spec.layers import DropoutLayer as _Dropout
from ..spec.layers import DWSepLayer as _DWSep
from ..spec.layers import FusedMBConvLayer as _Fused
from ..spec.layers import Layer, kind_of
from ..spec.layers import LinearLayer as _Linear
from ..spec.layers import MBConvLayer as _MBConv
from ..spec.layers import PoolLayer as _Pool
from ..spec.network import LAYER_MODELS, register_layer_model
from . import blocks
from .blocks import BlockArgs, Flow

BlockFn = Callable[[Any, BlockArgs], Flow]


@dataclass(frozen=True)
class Kind:
    """One layer kind: its spec model, its block function and, optionally, its torch reference builder.

    ``torch(layer, cfg, cin, stride) -> (nn.Module, cout)`` builds the equivalent module (see
    costmodel.torchref); kinds without one are built by torchref's own table or refused there.
    """

    name: str
    model: type[Layer]
    block: BlockFn
    torch: Callable[..., Any] | None = None


KINDS: dict[str, Kind] = {}
"""Every registered kind by name."""


def register(model: type[Layer], block: BlockFn, *, torch: Callable[..., Any] | None = None) -> Kind:
    """Register a layer kind: its spec model (with ``kind: Literal[...]``) and its block function."""
    if not callable(block):
        raise TypeError(f"the block function of {model.__name__} is not callable")
    tag = kind_of(model)
    if tag in KINDS:
        raise ValueError(f"a layer kind {tag!r} is registered already")
    name = register_layer_model(model)
    kind = Kind(name, model, block, torch)
    KINDS[name] = kind
    return kind


def kind(name: str) -> Kind:
    """The registered kind called ``name``."""
    return KINDS[name]


for _model, _block in (
    (_Conv, blocks.conv),
    (_MBConv, blocks.mbconv),
    (_Fused, blocks.fused_mbconv),
    (_DWSep, blocks.dwsep),
    (_Basic, blocks.basic),
    (_Bottleneck, blocks.bottleneck),
    (_Pool, blocks.pool),
    (_Linear, blocks.linear),
    (_Dropout, blocks.dropout),
):
    register(_model, _block)

# The zoo's kinds (spec/layers_zoo.py, engine/blocks_zoo.py); torchref builds them in its _ZOO table.
from ..spec.layers_zoo import CondConvLayer as _CondConv  # noqa: E402
from ..spec.layers_zoo import GhostBottleneckLayer as _GhostBottleneck  # noqa: E402
from ..spec.layers_zoo import GhostLayer as _Ghost  # noqa: E402
from ..spec.layers_zoo import MixConvLayer as _MixConv  # noqa: E402
from ..spec.layers_zoo import UIRLayer as _UIR  # noqa: E402
from . import blocks_zoo  # noqa: E402

_ZOO_KINDS: tuple[tuple[type[Layer], BlockFn], ...] = (
    (_MixConv, blocks_zoo.mixconv),
    (_Ghost, blocks_zoo.ghost),
    (_GhostBottleneck, blocks_zoo.ghost_bottleneck),
    (_UIR, blocks_zoo.uir),
    (_CondConv, blocks_zoo.condconv),
)
for _zoo_model, _zoo_block in _ZOO_KINDS:
    register(_zoo_model, _zoo_block)

# PP-LCNetV2's RepDepthwiseSeparable (spec/layers_lcnet.py, engine/blocks_lcnet.py); torchref's _ZOO builds it.
from ..spec.layers_lcnet import RepDWSepLayer as _RepDWSep  # noqa: E402
from . import blocks_lcnet  # noqa: E402

register(_RepDWSep, blocks_lcnet.rep_dwsep)

# Attention (spec/layers_attention.py, engine/blocks_attention.py); torchref builds it in its _ZOO table.
from ..spec.layers_attention import AttentionLayer as _Attention  # noqa: E402
from . import blocks_attention  # noqa: E402

register(_Attention, blocks_attention.attention)

# RepGhostNet's kinds (spec/layers_rep.py, engine/blocks_rep.py); torchref builds them in its _ZOO table.
from ..spec.layers_rep import RepGhostBottleneckLayer as _RepGhostBottleneck  # noqa: E402
from ..spec.layers_rep import RepGhostLayer as _RepGhost  # noqa: E402
from . import blocks_rep  # noqa: E402

register(_RepGhost, blocks_rep.repghost)
register(_RepGhostBottleneck, blocks_rep.repghost_bottleneck)

# Fusion and map-shaping kinds (spec/layers_fusion.py, engine/blocks_fusion.py); torchref builds them itself.
from ..spec.layers_fusion import ConcatLayer as _Concat  # noqa: E402
from ..spec.layers_fusion import FlattenLayer as _Flatten  # noqa: E402
from ..spec.layers_fusion import NormLayer as _NormLayer  # noqa: E402
from ..spec.layers_fusion import ResizeLayer as _Resize  # noqa: E402
from . import blocks_fusion  # noqa: E402

register(_Concat, blocks_fusion.concat)
register(_Resize, blocks_fusion.resize)
register(_NormLayer, blocks_fusion.norm)
register(_Flatten, blocks_fusion.flatten)

_missing = sorted(set(LAYER_MODELS) - set(KINDS))
if _missing:  # a layer model registered in the spec without a block function
    raise ImportError(f"layer kinds without a block function: {', '.join(_missing)}")
