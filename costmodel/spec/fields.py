"""Field types of the spec format: integers-or-symbols, kernels, ratios, and the markers that tell the
engine what a field means (a channel width that scaling touches, a symbol assumption).

Integer fields take a YAML integer or a symbol name (a plain identifier); booleans, floats (even
``4.0``) and quoted numerals are refused. Symbols can be bound before validation through the
validation context (``{"bind": {"C": 16}}``), which is how ``--set`` and ``analyze(spec, C=16)`` work:
nothing is ever parsed as an expression.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, Field, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Activations a layer may name; the engine has one op per name (engine/ops.py ACTIVATION_FLOPS).
Activation = Literal["relu", "relu6", "silu", "swish", "hardswish", "gelu", "none"]
#: Gates (SE's last activation).
Gate = Literal["sigmoid", "hardsigmoid"]
#: Norms a layer may name; the engine has one op per name (engine/ops.py NORMS).
Norm = Literal["batchnorm", "groupnorm", "layernorm", "evonorm_s0", "evonorm_b0", "none"]
#: Anti-aliased downsampling of the strided conv (timm's ``aa_layer``): a fixed 3×3 blur or a 2×2 average pool.
AntiAlias = Literal["blur", "avg"]
#: How the squeeze width is rounded: floor(base × se) (torchvision) or Python's round (timm).
SERound = Literal["floor", "round"]


@cache
def _sympy_names() -> frozenset[str]:
    """The names ``from sympy import *`` brings in, which sympy's parser gives a meaning to."""
    import sympy

    return frozenset(sympy.__all__)


def symbol_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a symbol name, or None if it can.

    A name must be a plain identifier, not a Python keyword, and not a name sympy's parser already
    gives a meaning to (``E``, ``I``, ``N``, ``S``, ``beta``, …), so printed formulas parse back.
    """
    if not IDENTIFIER.match(name):
        return f"{name!r} is not a plain identifier"
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword"
    if name in _sympy_names():
        return f"{name!r} is a sympy name (pick another symbol name)"
    return None


# ------------------------------------------------------------------------------------------- markers


@dataclass(frozen=True)
class Channels:
    """Marks a field as a channel width: ``scaling.width`` scales it (spec/scaling.py)."""


@dataclass(frozen=True)
class Assume:
    """Marks an integer field whose symbol the formulas assume something of: ``odd`` or ``ne1``."""

    rule: Literal["odd", "ne1"]


def _markers(annotation: Any, metadata: list[Any]) -> list[Any]:
    found = list(metadata)
    for arg in get_args(annotation):  # Optional[...] and other unions
        if get_origin(arg) is Annotated:
            found += _markers(None, list(get_args(arg)[1:]))
    return found


@cache
def channel_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a layer model that hold channel widths (typed with a ``Channels`` marker)."""
    return tuple(
        name
        for name, f in model.model_fields.items()
        if any(isinstance(m, Channels) for m in _markers(f.annotation, f.metadata))
    )


@cache
def assumption_fields(model: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    """``(field, rule)`` for the fields of a model whose symbols the formulas assume something of."""
    out = []
    for name, f in model.model_fields.items():
        for m in _markers(f.annotation, f.metadata):
            if isinstance(m, Assume):
                out.append((name, m.rule))
    return tuple(out)


# ------------------------------------------------------------------------------------ integer fields


def _int_or_symbol(value: Any, info: ValidationInfo) -> int | str:
    """Accept a positive YAML integer or a symbol name; bind symbols from the context first."""
    ctx = info.context or {}
    bind: dict[str, int] = ctx.get("bind", {})
    if isinstance(value, str) and value in bind:
        ctx.setdefault("used", set()).add(value)
        value = bind[value]
    if isinstance(value, bool):
        raise PydanticCustomError(
            "int_or_symbol",
            "expected a positive integer or a symbol name, got the boolean {v}",
            {"v": str(value).lower()},
        )
    if isinstance(value, int):
        if value < 1:
            raise PydanticCustomError("positive", "must be a positive integer, got {v}", {"v": value})
        return value
    if isinstance(value, float):
        raise PydanticCustomError(
            "int_or_symbol",
            "must be an integer, got the float {v} (write it without a decimal point)",
            {"v": value},
        )
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit():
            raise PydanticCustomError(
                "int_or_symbol",
                "got the quoted numeral '{v}'; write the integer without quotes",
                {"v": value},
            )
        problem = symbol_name_problem(value)
        if problem:
            raise PydanticCustomError("symbol_name", "bad symbol name: {p}", {"p": problem})
        return value
    raise PydanticCustomError(
        "int_or_symbol", "expected a positive integer or a symbol name, got {t}", {"t": type(value).__name__}
    )


#: A positive integer, or the name of a positive-integer symbol.
IntOrSym = Annotated[
    int | str,
    BeforeValidator(_int_or_symbol),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": IDENTIFIER.pattern, "description": "symbol name"},
            ]
        }
    ),
]

#: A channel width (scaled by ``scaling.width``).
ChannelsField = Annotated[IntOrSym, Channels()]


def _odd_kernel(value: int | str) -> int | str:
    if isinstance(value, int) and value % 2 == 0:
        raise PydanticCustomError(
            "odd_kernel", "kernel must be odd (same padding k//2 needs an odd kernel), got {v}", {"v": value}
        )
    return value


#: A kernel size: odd unless the layer sets ``padding``; a symbolic kernel is assumed odd.
Kernel = Annotated[
    IntOrSym,
    Assume("odd"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": IDENTIFIER.pattern, "description": "symbol name (assumed odd)"},
            ],
            "description": "kernel size; odd unless padding is given (default padding k//2)",
        }
    ),
    Field(description="kernel size; odd unless padding is given (default padding k//2)"),
]
ODD_KERNEL_SCHEMA = {"type": "integer", "minimum": 1, "not": {"multipleOf": 2}}
"""The JSON Schema of an odd kernel (spec/network.py applies it where no padding is given)."""


def _padding(value: Any) -> Any:
    if value in ("same", "valid") or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise PydanticCustomError("padding", "must be same, valid or an integer ≥ 0, got {v}", {"v": repr(value)})


#: Explicit conv padding: ``same`` (TensorFlow/timm Conv2dSame: out = ceil(H/s)), ``valid`` (0) or N ≥ 0.
Padding = Annotated[
    Literal["same", "valid"] | int,
    BeforeValidator(_padding),
    WithJsonSchema({"anyOf": [{"enum": ["same", "valid"]}, {"type": "integer", "minimum": 0}]}),
]
#: An expansion ratio; a symbolic expansion is assumed ≠ 1 (an expansion conv exists).
Expansion = Annotated[IntOrSym, Assume("ne1")]


def _ratio(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("ratio", "must be a number in (0, 1], got {v!r}", {"v": value})
    if not 0 < value <= 1:
        raise PydanticCustomError("ratio", "must be in (0, 1], got {v}", {"v": value})
    return float(value)


SERatio = Annotated[
    float, BeforeValidator(_ratio), WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": 1})
]


def activation_alias(value: str | None) -> str | None:
    """``swish`` is another name of ``silu``."""
    return "silu" if value == "swish" else value


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise PydanticCustomError("positive_number", "must be a positive number, got {v}", {"v": repr(value)})
    return float(value)


PositiveFloat = Annotated[
    float, BeforeValidator(_positive_number), WithJsonSchema({"type": "number", "exclusiveMinimum": 0})
]


def _strict_divisor(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PydanticCustomError("divisor", "must be a positive integer, got {v}", {"v": repr(value)})
    return value


Divisor = Annotated[int, BeforeValidator(_strict_divisor), WithJsonSchema({"type": "integer", "minimum": 1})]


def _residual(value: Any) -> Any:
    if value == "auto" or isinstance(value, bool):
        return value
    raise PydanticCustomError("residual", "must be auto, true or false, got '{v}'", {"v": str(value)})


def _residual_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    raise PydanticCustomError("residual", "must be true or false, got '{v}'", {"v": str(value)})


Residual = Annotated[
    Literal["auto"] | bool,
    BeforeValidator(_residual),
    WithJsonSchema({"anyOf": [{"const": "auto"}, {"type": "boolean"}]}),
]
StrictResidual = Annotated[bool, BeforeValidator(_residual_bool)]


def _probability(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise PydanticCustomError("probability", "must be a number in [0, 1), got {v}", {"v": repr(value)})
    return float(value)


Probability = Annotated[float, BeforeValidator(_probability)]


@cache
def se_ratio(value: float) -> Fraction:
    """The SE ratio as an exact fraction of the decimal the user wrote (0.25 → 1/4)."""
    return Fraction(repr(value))


def is_symbol_field(annotation: Any, metadata: list[Any]) -> bool:
    """Whether a field is typed with IntOrSym (takes an integer or a symbol name)."""
    return any(isinstance(m, BeforeValidator) and m.func is _int_or_symbol for m in _markers(annotation, metadata))
