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
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

from . import names

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMERAL = re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?$")

if TYPE_CHECKING:  # the literals below are built from the name tables at run time
    Activation = str
    Gate = str
    Norm = str
else:
    #: Activations a layer may name (spec/names.py ACTIVATIONS, aliases included), and none.
    Activation = Literal[(*names.ACTIVATION_NAMES, "none")]
    #: Gates (SE's last activation; spec/names.py ACTIVATIONS with gate=True).
    Gate = Literal[names.GATE_NAMES]
    #: Norms a layer may name (spec/names.py NORMS), and none.
    Norm = Literal[(*names.NORMS, "none")]
#: Anti-aliased downsampling of the strided conv (timm's ``aa_layer``): a fixed 3×3 blur or a 2×2 average pool.
AntiAlias = Literal["blur", "avg"]
#: How the squeeze width is rounded: floor(base × se) (torchvision) or Python's round (timm).
SERound = Literal["floor", "round"]


#: The largest value of any integer field (2**31 - 1): keeps every count exact and every float finite.
MAX_INT = 2**31 - 1
#: The largest ``repeat`` of one layer.
MAX_REPEAT = 10_000
#: The largest value of a scaling factor (``scaling.width``, ``scaling.depth``, ``width_floor``).
MAX_FACTOR = 100.0


@cache
def _reserved_names() -> frozenset[str]:
    """Names sympy's parser (``parse_expr``) would not read back as a plain symbol: Python keywords, the
    builtin functions it exposes (``abs``, ``max``, ``eval``, ``print`` …) and everything ``from sympy
    import *`` brings in (``E``, ``I``, ``N``, ``S``, ``beta``, ``Symbol`` …)."""
    import builtins
    import types

    import sympy

    functions = {n for n, o in vars(builtins).items() if isinstance(o, types.BuiltinFunctionType)}
    return frozenset({*keyword.kwlist, *functions, "max", "min", *sympy.__all__})


def symbol_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a symbol name, or None if it can.

    A name must be a plain ASCII identifier of at most 64 characters that sympy's parser reads back
    as ``Symbol(name)``: not a Python keyword, not a builtin function (``abs``, ``max``, ``eval`` …)
    and not a name sympy gives a meaning to (``E``, ``I``, ``N``, ``S``, ``beta``, …), so printed
    formulas and JSON parse back. The rule is a fixed list; no user text is ever parsed.
    """
    if not IDENTIFIER.match(name):
        shown = name if len(name) <= 40 else name[:40] + "…"
        return f"{shown!r} is not a plain identifier"
    if len(name) > 64:
        return f"a symbol name is at most 64 characters, this one has {len(name)}"
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword"
    if name in _reserved_names():
        return f"{name!r} is a name sympy's parser gives a meaning to (pick another symbol name)"
    return None


def _number(value: Any) -> str:
    """A number as text for an error message: huge integers by their size, not their digits."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"an integer of about {int(abs(value).bit_length() * 0.30103) + 1:,} digits"
    return repr(value)


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
            raise PydanticCustomError("positive", "must be a positive integer, got {v}", {"v": _number(value)})
        if value > MAX_INT:
            raise PydanticCustomError(
                "too_large", "must be at most 2**31 - 1 = {m}, got {v}", {"m": f"{MAX_INT:,}", "v": _number(value)}
            )
        return value
    if isinstance(value, float):
        raise PydanticCustomError(
            "int_or_symbol",
            "must be an integer, got the float {v} (write it without a decimal point)",
            {"v": value},
        )
    if isinstance(value, str):
        text = value.strip()
        if _NUMERAL.match(text):
            raise PydanticCustomError(
                "int_or_symbol",
                "got the quoted numeral {v}; write the integer without quotes",
                {"v": repr(text if len(text) <= 40 else text[:40] + "…")},
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
                {"type": "integer", "minimum": 1, "maximum": MAX_INT},
                {"type": "string", "pattern": IDENTIFIER.pattern, "description": "symbol name"},
            ]
        }
    ),
]


def _repeat(value: int | str) -> int | str:
    if isinstance(value, int) and value > MAX_REPEAT:
        raise PydanticCustomError("repeat", "must be at most {m}, got {v}", {"m": f"{MAX_REPEAT:,}", "v": f"{value:,}"})
    return value


#: A layer's repeat count: an integer in [1, MAX_REPEAT] or a symbol.
Repeat = Annotated[IntOrSym, AfterValidator(_repeat)]


def field_limit(model: type[BaseModel], name: str) -> int:
    """The largest integer the field ``name`` of ``model`` accepts: ``MAX_REPEAT`` for a repeat count,
    ``MAX_INT`` for every other integer field (what validation refuses beyond, e.g. under ``--set``)."""
    f = model.model_fields[name]
    if any(isinstance(m, AfterValidator) and m.func is _repeat for m in _markers(f.annotation, f.metadata)):
        return MAX_REPEAT
    return MAX_INT


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
        raise PydanticCustomError("ratio", "must be a number in (0, 1], got {v}", {"v": _what(value)})
    if not 0 < value <= 1:  # also refuses nan
        raise PydanticCustomError("ratio", "must be in (0, 1], got {v}", {"v": _number(value)})
    return float(value)


def _what(value: Any) -> str:
    """A wrong-typed value for an error message: quoted numerals called so, others by type."""
    if isinstance(value, str):
        shown = repr(value if len(value) <= 40 else value[:40] + "…")
        return (
            f"the quoted numeral {shown}; write the number without quotes"
            if _NUMERAL.match(value.strip())
            else f"the text {shown}"
        )
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    return f"a {type(value).__name__}" if not isinstance(value, (int, float)) else _number(value)


SERatio = Annotated[
    float, BeforeValidator(_ratio), WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": 1})
]


def activation_alias(value: str | None) -> str | None:
    """An activation's alias (spec/names.py: ``swish`` is ``silu``) → its name."""
    return names.ALIASES.get(value, value) if value is not None else None


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("positive_number", "must be a positive number, got {v}", {"v": _what(value)})
    if not 0 < value <= MAX_FACTOR:  # also refuses nan
        raise PydanticCustomError(
            "positive_number",
            "must be a finite number in (0, {m}], got {v}",
            {"m": f"{MAX_FACTOR:g}", "v": _number(value)},
        )
    return float(value)


#: A scaling factor: a finite number in (0, MAX_FACTOR].
PositiveFloat = Annotated[
    float,
    BeforeValidator(_positive_number),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": MAX_FACTOR}),
]


def _strict_divisor(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("divisor", "must be a positive integer, got {v}", {"v": _what(value)})
    if not 1 <= value <= MAX_INT:
        raise PydanticCustomError("divisor", "must be an integer in [1, 2**31 - 1], got {v}", {"v": _number(value)})
    return value


Divisor = Annotated[
    int, BeforeValidator(_strict_divisor), WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_INT})
]


def _int_check(lo: int, hi: int) -> Any:
    """The validator of an integer field in [lo, hi] that is never a symbol: a YAML integer only — booleans,
    floats (even ``4.0``) and quoted numerals are refused, as for every other integer field."""
    shown_hi = "2**31 - 1" if hi == MAX_INT else f"{hi:,}"

    def check(value: Any) -> int:
        bad = isinstance(value, bool) or not isinstance(value, int)
        if bad or not lo <= value <= hi:
            raise PydanticCustomError(
                "strict_int",
                "must be an integer in [{lo}, {hi}], got {v}",
                {"lo": lo, "hi": shown_hi, "v": _what(value) if bad else _number(value)},
            )
        return int(value)

    return check


def _int_schema(lo: int, hi: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": lo, "maximum": hi}


#: A positive integer in [1, 2**31 - 1] that is never a symbol (heads, experts, a kind's group counts …).
Count = Annotated[int, BeforeValidator(_int_check(1, MAX_INT)), WithJsonSchema(_int_schema(1, MAX_INT))]
#: The Ghost module's ratio: an integer in [2, 2**31 - 1] (ratio 1 would leave the cheap conv no channels).
GhostRatio = Annotated[int, BeforeValidator(_int_check(2, MAX_INT)), WithJsonSchema(_int_schema(2, MAX_INT))]
#: The largest ``rep_branches`` (timm builds 3; the engine counts each branch's conv as its own op).
MAX_BRANCHES = 64
#: Re-parameterisable branches: an integer in [1, MAX_BRANCHES].
Branches = Annotated[int, BeforeValidator(_int_check(1, MAX_BRANCHES)), WithJsonSchema(_int_schema(1, MAX_BRANCHES))]
#: The most kernel groups of one MixConv (``kernels``).
MAX_KERNEL_GROUPS = 64


def _odd(value: int) -> int:
    if value % 2 == 0:
        raise PydanticCustomError(
            "odd_kernel", "kernels must be odd (same padding k//2 needs an odd kernel), got {v}", {"v": value}
        )
    return value


#: An odd kernel size in [1, 2**31 - 1] that is never a symbol (MixConv's ``kernels``).
OddKernel = Annotated[Count, AfterValidator(_odd)]

#: The largest expansion ratio given as a number (uir's ``expansion``, which may be fractional).
MAX_RATIO = 256


def _ratio_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError(
            "number", "must be a number in (0, {hi}], got {v}", {"hi": MAX_RATIO, "v": _what(value)}
        )
    if not 0 < value <= MAX_RATIO:  # also refuses nan and inf
        raise PydanticCustomError(
            "number", "must be a number in (0, {hi}], got {v}", {"hi": MAX_RATIO, "v": _number(value)}
        )
    return float(value)


#: A positive expansion ratio, an integer or a fraction, in (0, MAX_RATIO] (uir).
Ratio = Annotated[
    float,
    BeforeValidator(_ratio_number),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": MAX_RATIO}),
]


def _residual(value: Any) -> Any:
    if value == "auto" or isinstance(value, bool):
        return value
    raise PydanticCustomError("residual", "must be auto, true or false, got {v}", {"v": _what(value)})


def _residual_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    raise PydanticCustomError("residual", "must be true or false, got {v}", {"v": _what(value)})


Residual = Annotated[
    Literal["auto"] | bool,
    BeforeValidator(_residual),
    WithJsonSchema({"anyOf": [{"const": "auto"}, {"type": "boolean"}]}),
]
StrictResidual = Annotated[bool, BeforeValidator(_residual_bool)]


def _probability(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("probability", "must be a number in [0, 1), got {v}", {"v": _what(value)})
    if not 0 <= value < 1:  # also refuses nan
        raise PydanticCustomError("probability", "must be a number in [0, 1), got {v}", {"v": _number(value)})
    return float(value)


Probability = Annotated[float, BeforeValidator(_probability)]


@cache
def se_ratio(value: float) -> Fraction:
    """The SE ratio as an exact fraction of the decimal the user wrote (0.25 → 1/4)."""
    return Fraction(repr(value))


def is_symbol_field(annotation: Any, metadata: list[Any]) -> bool:
    """Whether a field is typed with IntOrSym (takes an integer or a symbol name)."""
    return any(isinstance(m, BeforeValidator) and m.func is _int_or_symbol for m in _markers(annotation, metadata))
