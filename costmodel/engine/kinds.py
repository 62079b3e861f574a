"""The registry of layer kinds: one entry per kind holds all its parts, declared together.

A kind is its spec model (``kind: Literal[...]``), its block function (the engine's dataflow of ops), its
torch builder (costmodel.torchref builds the equivalent ``nn.Module`` with it) and its import matcher(s)
(costmodel.importers reads the kind back from a traced graph with them). ``register(Model, block, torch=,
matchers=)`` adds the model to the spec's layer union and the rest to :data:`KINDS`; the network walk, the
settings text (``Model.settings``), the symbol assumptions (``Assume`` markers on fields), width scaling
(``Channels`` markers), torchref and the importer all iterate this registry and know no kind by name.

The torch builder and the matchers live in the layers above the engine (torchref, importers), which the
engine may not import: an entry holds them either as callables (a kind registered from user code, which
can import what it likes) or as lazy ``"module:function"`` references (the built-in kinds below), resolved
by :func:`resolve` when torchref or the importer first uses them. So ``import costmodel`` never imports
torch, and the engine never imports an upper layer, while each built-in kind is still one entry here.

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
    >>> missing_parts(KINDS["twice"], resolve_refs=False)
    ['torch builder', 'matcher (or an unmatched= reason)']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

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
Ref = Callable[..., Any] | str
"""A part that lives above the engine: the callable itself, or ``"package.module:function"``."""

Shape = Literal["unit", "residual", "chain", "primitive"]
SHAPES: tuple[Shape, ...] = ("unit", "residual", "chain", "primitive")
"""What a matcher consumes, in the order the importer tries the shapes at one position of the unit list
(costmodel/importers/recognise.py ``_layers``):

- ``unit``: ``fn(u) -> layer | None`` on one structural unit of a kind named in ``units`` (a Ghost module's
  concat); a unit such a matcher reads that none says is left out whole (reported);
- ``residual``: ``fn(u) -> layer | None`` on a residual unit (``x + F(x)`` or ``S(x) + F(x)``); ``post``
  says whether the matcher takes the activation after the add (ResNet's bottleneck) or wants none there;
- ``chain``: ``fn(units, residual) -> layer | None`` on a run of 5 … 1 conv / SE units (a trailing layer
  scale allowed), bare, or as the body of an identity residual no residual matcher said (``residual`` True);
- ``primitive``: ``fn(units, i, before, problems) -> (layers, units consumed) | None`` on ``units[i]`` when
  its kind is in ``units`` and no chain starting there matched (``before``: the layers found so far).
"""


@dataclass(frozen=True)
class Matcher:
    """One way the importer reads a kind back from a traced graph (costmodel.importers.recognise).

    Within a shape, matchers are tried by ascending ``priority`` (ties: registration order); the first that
    returns a layer wins. ``makes`` names other kinds the function may return (MBConv's matcher tells
    MixConv and CondConv apart by the convs it finds).
    """

    fn: Ref
    shape: Shape
    priority: int
    units: tuple[str, ...] = ()
    post: bool = False
    makes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"a matcher's shape is one of {', '.join(SHAPES)}, not {self.shape!r}")
        if self.shape in ("unit", "primitive") and not self.units:
            raise ValueError(f"a {self.shape} matcher names the unit kinds it reads (units=...)")


@dataclass(frozen=True)
class Kind:
    """One layer kind: its spec model, block function, torch builder and import matchers.

    ``torch(layer, cfg, cin, stride) -> (nn.Module, cout)`` builds the equivalent module (see
    costmodel.torchref; ``cfg.channels`` holds the output channels of the earlier named layers).
    ``matchers`` read it back in the importer; a kind the importer never emits says why in ``unmatched``.
    """

    name: str
    model: type[Layer]
    block: BlockFn
    torch: Ref | None = None
    matchers: tuple[Matcher, ...] = field(default=())
    unmatched: str | None = None


KINDS: dict[str, Kind] = {}
"""Every registered kind by name, in registration order."""


def register(
    model: type[Layer],
    block: BlockFn,
    *,
    torch: Ref | None = None,
    matchers: tuple[Matcher, ...] | list[Matcher] = (),
    unmatched: str | None = None,
) -> Kind:
    """Register a layer kind: its spec model (with ``kind: Literal[...]``), its block function and, for
    torchref and the importer, its torch builder and matchers (see :class:`Kind`). Model and block suffice
    to analyse specs; :func:`missing_parts` names what else a complete kind has."""
    if not callable(block):
        raise TypeError(f"the block function of {model.__name__} is not callable")
    tag = kind_of(model)
    if tag in KINDS:
        raise ValueError(f"a layer kind {tag!r} is registered already")
    name = register_layer_model(model)
    kind = Kind(name, model, block, torch, tuple(matchers), unmatched)
    KINDS[name] = kind
    return kind


def kind(name: str) -> Kind:
    """The registered kind called ``name``."""
    return KINDS[name]


def resolve(ref: Ref) -> Callable[..., Any]:
    """The callable a part names: itself, or ``function`` imported from ``module`` for ``"module:function"``."""
    if not isinstance(ref, str):
        return ref
    module, _, name = ref.partition(":")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise LookupError(f"{ref!r} names no function")
    return fn  # type: ignore[no-any-return]


def matchers(shape: Shape) -> list[tuple[Matcher, Kind]]:
    """Every registered matcher of ``shape`` with its kind, in the order the importer tries them."""
    found = [(m, k) for k in KINDS.values() for m in k.matchers if m.shape == shape]
    return sorted(found, key=lambda mk: mk[0].priority)


def missing_parts(k: Kind, *, resolve_refs: bool = True) -> list[str]:
    """What ``k`` lacks of a complete kind: a torch builder, a matcher or a documented reason for none
    (``unmatched=``); with ``resolve_refs`` also every lazy reference that names no function."""
    out: list[str] = []
    if k.torch is None:
        out.append("torch builder")
    made = any(k.name in m.makes for other in KINDS.values() for m in other.matchers)
    if not k.matchers and not made and not k.unmatched:
        out.append("matcher (or an unmatched= reason)")
    if resolve_refs:
        for what, ref in [("torch builder", k.torch), *(("matcher", m.fn) for m in k.matchers)]:
            if ref is None:
                continue
            try:
                resolve(ref)
            except (ImportError, LookupError) as err:
                out.append(f"{what} {ref!r}: {err}")
    return out


# ------------------------------------------------------------------------------------ the built-in kinds
# One entry per kind: model, block, torch builder (costmodel/torchref.py), matchers
# (costmodel/importers/recognise.py). The references are lazy (see the module's docstring).

_T = "costmodel.torchref:"
_R = "costmodel.importers.recognise:"


def _chain(fn: str, priority: int, makes: tuple[str, ...] = ()) -> Matcher:
    return Matcher(_R + fn, "chain", priority, makes=makes)


def _residual(fn: str, priority: int, *, post: bool = False) -> Matcher:
    return Matcher(_R + fn, "residual", priority, post=post)


def _primitive(fn: str, priority: int, *units: str) -> Matcher:
    return Matcher(_R + fn, "primitive", priority, units)


register(
    _Conv,
    blocks.conv,
    torch=_T + "_conv",
    matchers=(_chain("match_conv", 70), _primitive("prim_conv", 10, "conv")),
)
register(
    _MBConv,
    blocks.mbconv,
    torch=_T + "_mbconv",
    matchers=(_chain("match_mbconv", 30, makes=("mixconv", "condconv")),),
)
register(_Fused, blocks.fused_mbconv, torch=_T + "_fused_mbconv", matchers=(_chain("match_fused", 40),))
register(_DWSep, blocks.dwsep, torch=_T + "_dwsep", matchers=(_chain("match_dwsep", 60),))
register(
    _Basic,
    blocks.basic,
    torch=_T + "_basic",
    matchers=(_chain("match_basic", 50), _residual("match_resnet_basic", 20, post=True)),
)
register(
    _Bottleneck,
    blocks.bottleneck,
    torch=_T + "_bottleneck",
    matchers=(_residual("match_bottleneck", 10, post=True),),
)
register(_Pool, blocks.pool, torch=_T + "_pool", matchers=(_primitive("prim_pool", 20, "pool"),))
register(_Linear, blocks.linear, torch=_T + "_linear", matchers=(_primitive("prim_linear", 30, "linear"),))
register(
    _Dropout,
    blocks.dropout,
    torch=_T + "_dropout",
    unmatched="dropout is the identity at inference: a trace holds no op of it, so the importer leaves it out",
)

# The zoo's kinds (spec/layers_zoo.py, engine/blocks_zoo.py).
from ..spec.layers_zoo import CondConvLayer as _CondConv  # noqa: E402
from ..spec.layers_zoo import GhostBottleneckLayer as _GhostBottleneck  # noqa: E402
from ..spec.layers_zoo import GhostLayer as _Ghost  # noqa: E402
from ..spec.layers_zoo import MixConvLayer as _MixConv  # noqa: E402
from ..spec.layers_zoo import UIRLayer as _UIR  # noqa: E402
from . import blocks_zoo  # noqa: E402

register(_MixConv, blocks_zoo.mixconv, torch=_T + "_mixconv")  # read by mbconv's matcher (makes=)
register(
    _Ghost,
    blocks_zoo.ghost,
    torch=_T + "_ghost",
    matchers=(Matcher(_R + "match_ghost", "unit", 10, ("ghost",)),),
)
register(
    _GhostBottleneck,
    blocks_zoo.ghost_bottleneck,
    torch=_T + "_ghost_bottleneck",
    matchers=(_residual("match_ghost_bottleneck", 10),),
)
register(_UIR, blocks_zoo.uir, torch=_T + "_uir", matchers=(_chain("match_uir", 20),))
register(_CondConv, blocks_zoo.condconv, torch=_T + "_condconv")  # read by mbconv's matcher (makes=)

# PP-LCNetV2's RepDepthwiseSeparable (spec/layers_lcnet.py, engine/blocks_lcnet.py).
from ..spec.layers_lcnet import RepDWSepLayer as _RepDWSep  # noqa: E402
from . import blocks_lcnet  # noqa: E402

register(_RepDWSep, blocks_lcnet.rep_dwsep, torch=_T + "_rep_dwsep", matchers=(_chain("match_rep_dwsep", 10),))

# Attention (spec/layers_attention.py, engine/blocks_attention.py).
from ..spec.layers_attention import AttentionLayer as _Attention  # noqa: E402
from . import blocks_attention  # noqa: E402

register(
    _Attention,
    blocks_attention.attention,
    torch=_T + "_attention",
    matchers=(_residual("match_attention", 30),),
)

# RepGhostNet's kinds (spec/layers_rep.py, engine/blocks_rep.py).
from ..spec.layers_rep import RepGhostBottleneckLayer as _RepGhostBottleneck  # noqa: E402
from ..spec.layers_rep import RepGhostLayer as _RepGhost  # noqa: E402
from . import blocks_rep  # noqa: E402

register(
    _RepGhost,
    blocks_rep.repghost,
    torch=_T + "_repghost",
    unmatched="no model uses a RepGhost module outside RepGhostNet's bottleneck (repghost_bottleneck's matcher); "
    "alone its convs import as conv layers (exact in the deployed form)",
)
register(
    _RepGhostBottleneck,
    blocks_rep.repghost_bottleneck,
    torch=_T + "_repghost_bottleneck",
    matchers=(_residual("match_repghost_bottleneck", 20),),
)

# Fusion and map-shaping kinds (spec/layers_fusion.py, engine/blocks_fusion.py).
from ..spec.layers_fusion import ConcatLayer as _Concat  # noqa: E402
from ..spec.layers_fusion import FlattenLayer as _Flatten  # noqa: E402
from ..spec.layers_fusion import MaxPoolLayer as _MaxPool  # noqa: E402
from ..spec.layers_fusion import NormLayer as _NormLayer  # noqa: E402
from ..spec.layers_fusion import ResizeLayer as _Resize  # noqa: E402
from . import blocks_fusion  # noqa: E402

register(_Concat, blocks_fusion.concat, torch=_T + "_concat", matchers=(_primitive("prim_concat", 40, "catself"),))
register(
    _Resize,
    blocks_fusion.resize,
    torch=_T + "_resize",
    matchers=(_primitive("prim_resize", 50, "upsample", "avgpool"),),
)
register(_NormLayer, blocks_fusion.norm, torch=_T + "_norm_kind", matchers=(_primitive("prim_norm", 60, "norm"),))
register(
    _Flatten,
    blocks_fusion.flatten,
    torch=_T + "_flatten",
    unmatched="a reshape is no traced op: importers/core.py build() appends flatten where a pooled model "
    "returns the flat vector",
)

register(_MaxPool, blocks_fusion.maxpool, torch=_T + "_maxpool", matchers=(_primitive("prim_maxpool", 70, "maxpool"),))

# Op-level graphs (spec/layers_graph.py, engine/blocks_graph.py, engine/graph_ops.py).
from ..spec.layers_graph import GraphLayer as _Graph  # noqa: E402
from . import blocks_graph  # noqa: E402

register(
    _Graph,
    blocks_graph.graph,
    torch=_T + "_graph",
    unmatched="the importer emits graph layers itself, for what no block kind's matcher says (its fallback)",
)

_missing = sorted(set(LAYER_MODELS) - set(KINDS))
if _missing:  # a layer model registered in the spec without a block function
    raise ImportError(f"layer kinds without a block function: {', '.join(_missing)}")
