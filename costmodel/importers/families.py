"""Scaling rules of the families the importer recognises, so ``--width-mult`` / ``--depth-mult`` apply to their
imported specs as the builder applies its multipliers (issue #23, item 5).

An imported spec is the model at the multipliers it was built with; how the builder would round other multipliers
is not in the trace. Where the model is a recognised family's base configuration (multipliers 1.0: the class and
the traced stem, stages, widths and head are the builder's base table), this post-pass on the spec data writes
the builder's rules and ``provenance.scaling``; every other import keeps ``scaling: unknown`` (multipliers refused).

* torchvision ``mobilenet_v2`` (``MobileNetV2``, ``width_mult``): channels ``_make_divisible(c × w, 8)``, the head
  ``_make_divisible(1280 × max(1, w), 8)`` (``width_floor: 1.0``); no depth multiplier (``provenance.scaling:
  width``: depth refused).
* torchvision ``efficientnet_b0`` (``EfficientNet`` of ``MBConv`` blocks; B1–B7 are its ``width_mult`` /
  ``depth_mult``): channels ``_make_divisible(c × w, 8)``, each MBConv's expanded width ``_make_divisible(in × t,
  8)`` (``expanded_divisor: 8``), repeats ``ceil(n × d)`` per stage, the head 4 × its input (``out_ratio: 4``).
* torchvision ``mobilenet_v3_large`` / ``mobilenet_v3_small`` (``MobileNetV3``, ``_mobilenet_v3_conf``'s
  ``width_mult``): every table width, expanded widths included, ``adjust_channels`` = ``_make_divisible(c × w,
  8)``, so each ``expansion: t`` is written as ``expanded_channels`` (in × t; a grouped stage whose first block's
  in × t differs from its copies' out × t is split), the last conv ``6 ×`` its input (``out_ratio: 6``), the
  classifier's hidden linear ``adjust_channels(1280 | 1024)`` (``scale_width: true``), the SE squeeze
  ``_make_divisible(E // 4, 8)`` as imported; no depth multiplier (``provenance.scaling: width``).
* torchvision ``mnasnet1_0`` (``MNASNet``, ``alpha``; ``mnasnet0_5`` … are ``alpha`` 0.5 …): channels
  ``_round_to_multiple_of(c × α, 8)`` (``_get_depths``: round to the nearest multiple of 8, at least 8, one
  multiple more where that falls below 0.9 × c × α, which is make_divisible), each block's expanded width in × t
  (not rounded), the head 1280 not scaled (``scale_width: false``); no depth multiplier (``provenance.scaling:
  width``).
* timm ``mobilenetv2_100`` (``_gen_mobilenet_v2``'s ``channel_multiplier`` / ``depth_multiplier`` with
  ``fix_stem_head=False``): ``round_channels(c, m)`` = ``make_divisible(c × m, 8)`` for stem and blocks, the head
  ``max(1280, round_channels(1280, m))`` (``width_floor: 1.0``), expanded widths ``make_divisible(in × 6)`` (in ×
  6 already is a multiple of 8), repeats ``ceil(n × d)`` in every stage (first and last too: ``fix_first_last``
  is false).
* timm ``efficientnet_b0`` and its variants of the same table (``tf_efficientnet_b0``, ``efficientnet_b0_gn``, …:
  ``_gen_efficientnet``'s ``channel_multiplier`` / ``depth_multiplier``): ``round_channels(c, m)`` =
  ``make_divisible(c × m, 8)`` for stem, blocks and head (1280), repeats ``ceil(n × d)`` per stage (one arch
  string per stage: timm's ``_scale_stage_depth`` is then ceil).

* timm ``mobilenetv3_large_100`` / ``mobilenetv3_small_100`` and the ``tf_`` ports of them and of the minimal
  variants (``_gen_mobilenet_v3``'s ``channel_multiplier``, imported by name with no kwargs that change the
  builder): blocks and the last conv ``round_channels(c, m)`` = ``make_divisible(c × m, 8)``; the stem
  ``round_channels(16, m)`` only where m ≥ 0.75 (``fix_stem``), which is ``make_divisible(16 × max(1, m), 8)``
  at every m (``width_floor: 1.0``: for 0.75 ≤ m < 1 both are 16); each block's expanded width
  ``make_divisible(in × t, 8)`` of its scaled input: an integer t needs no rounding (in is a multiple of 8), a
  fractional one (``e2.5``, ``e2.3``; the small ones' ``e4.5``, ``e3.67``, none with SE) is written as ``uir``
  with ``mid_kernel`` and ``expansion: t``, whose expanded width is that rule (an inverted residual: 1×1
  expansion, k×k depthwise, 1×1 projection, count for count the same ops as the ``mbconv`` the trace reads); SE
  squeeze ``make_divisible(E × 0.25, 8)`` (``se_divisor: 8``, as imported); ``conv_head`` (1280 / 1024,
  ``num_features``) not scaled. The depth multiplier is refused (``provenance.scaling: width``): timm's
  ``_scale_stage_depth`` scales a stage's repeats as one total and splits it back over the stage's arch entries,
  and stages 1 and 3 (large) or 1 and 2 (small) are entries of different expansions, so several spec layers,
  whose repeats no per-layer rule scales as that split does (large stage 3 at d = 1.2: timm 1, 2, 2; ceil per
  layer 2, 2, 3).

Each stage must be one spec layer (stages.py grouped it) with the base repeats, else nothing is written. The
tests build the model at each multiplier and compare (tests/test_import_scaling.py).
"""

from __future__ import annotations

from typing import Any

from ..spec.scaling import make_divisible

#: the base tables: stem width, (out_channels, repeats) of each stage's layer, head width
_MOBILENET_V2 = (32, [(16, 1), (24, 2), (32, 3), (64, 4), (96, 3), (160, 3), (320, 1)], 1280)
_MNASNET_A1 = (32, [(16, 1), (24, 3), (40, 3), (80, 3), (96, 2), (192, 4), (320, 1)], 1280)
#: torchvision's MobileNetV3 tables (``_mobilenet_v3_conf`` at width_mult 1.0, no reduce_divider or dilation)
_MOBILENET_V3_LARGE = (
    16,
    [(16, 1), (24, 1), (24, 1), (40, 3), (80, 1), (80, 1), (80, 2), (112, 2), (160, 3)],
    960,
)
_MOBILENET_V3_SMALL = (16, [(16, 1), (24, 1), (24, 1), (40, 1), (40, 2), (48, 2), (96, 3)], 576)
#: timm's _gen_mobilenet_v3 at channel_multiplier 1.0: the model names it is recognised under, and the fractional
#: expansions of its arch strings by stage-table index (the tables are torchvision's: the same widths and repeats)
_TIMM_MOBILENET_V3 = frozenset(
    {
        "mobilenetv3_large_100",
        "mobilenetv3_small_100",
        "tf_mobilenetv3_large_100",
        "tf_mobilenetv3_small_100",
        "tf_mobilenetv3_large_minimal_100",
        "tf_mobilenetv3_small_minimal_100",
    }
)
_TIMM_MOBILENET_V3_FRACTIONS = {"large": {5: 2.5, 6: 2.3}, "small": {1: 4.5, 2: 3.67}}
#: the fields of a plain inverted residual (no SE, padding or anti-aliasing) the uir rewrite carries over
_PLAIN_IR = frozenset({"name", "kind", "expanded_channels", "stride", "out_channels", "activation", "repeat", "kernel"})
#: builder kwargs an import may pass without changing the scaling rules
_HARMLESS_KWARGS = frozenset({"num_classes", "drop_rate", "drop_path_rate", "in_chans"})
_EFFICIENTNET_B0 = (32, [(16, 1), (24, 2), (40, 2), (80, 3), (112, 3), (192, 4), (320, 1)], 1280)
_BLOCKS = frozenset({"mbconv", "dwsep"})


def _cls(module: Any) -> str:
    return f"{type(module).__module__}.{type(module).__name__}"


def _table(data: dict[str, Any]) -> tuple[Any, list[tuple[Any, Any]], Any] | None:
    """(stem width, [(out_channels, repeat)] of the block layers, head width) of a conv → blocks → conv head →
    pool … spec, or None for another shape."""
    layers = data["layers"]
    blocks = [i for i, layer in enumerate(layers) if layer["kind"] in _BLOCKS]
    if not blocks or layers[0]["kind"] != "conv" or blocks != list(range(1, blocks[-1] + 1)):
        return None
    head = layers[blocks[-1] + 1] if blocks[-1] + 1 < len(layers) else None
    if head is None or head["kind"] != "conv":
        return None
    stages = [(layers[i].get("out_channels"), layers[i].get("repeat", 1)) for i in blocks]
    return layers[0].get("out_channels"), stages, head.get("out_channels")


def _split_name(name: Any, reps: int) -> tuple[Any, Any]:
    """The names of a group's first block and of the rest: ``features.4-6`` → ``features.4``, ``features.5-6``;
    a whole stage ``blocks.3`` of n blocks → ``blocks.3.0``, ``blocks.3.1-(n − 1)``."""
    if not isinstance(name, str):
        return None, None
    parent, _, last = name.rpartition(".")
    a, dash, b = last.partition("-")
    if parent and dash and a.isdigit() and b.isdigit():
        nxt = int(a) + 1
        return f"{parent}.{a}", f"{parent}.{nxt}" + (f"-{b}" if nxt < int(b) else "")
    return f"{name}.0", f"{name}.1" + (f"-{reps - 1}" if reps > 2 else "")


def _absolute_expansions(data: dict[str, Any]) -> None:
    """Each mbconv's ``expansion: t`` as ``expanded_channels`` (in × t), which scales as torchvision's
    ``adjust_channels`` does (make_divisible(e × w, 8)); a group whose first block's in × t differs from the
    copies' out × t is split in two layers (the first, then the copies)."""
    out: list[dict[str, Any]] = []
    c: Any = data["input"]["channels"]
    for layer in data["layers"]:
        t = layer.get("expansion")
        if layer["kind"] == "mbconv" and isinstance(t, int):
            first = {k: v for k, v in layer.items() if k not in ("expansion", "repeat")}
            first["expanded_channels"] = c * t
            reps = layer.get("repeat", 1)
            rest_e = layer["out_channels"] * t
            if reps == 1 or rest_e == c * t:
                out.append({**first, **({"repeat": reps} if reps != 1 else {})})
            else:
                name, rest_name = _split_name(layer.get("name"), reps)
                if name is not None:
                    first["name"] = name
                rest = {k: v for k, v in first.items() if k not in ("stride", "aa", "name")}
                rest["expanded_channels"] = rest_e
                if rest_name is not None:
                    rest["name"] = rest_name
                if reps != 2:
                    rest["repeat"] = reps - 1
                out += [first, rest]
        else:
            out.append(layer)
        c = layer.get("out_channels", layer.get("out_features", c))
    data["layers"][:] = out


def _timm_mobilenet_v3(data: dict[str, Any], table: Any) -> bool:
    """Write timm's ``_gen_mobilenet_v3`` width rules (module docstring) where the spec is one of its base models
    imported by name; False (nothing written) otherwise."""
    origin = str(data["provenance"]["model"]).split(" ")
    name = origin[0].removeprefix("timm:")
    given = {kv.partition("=")[0] for kv in origin[1:]}
    if not origin[0].startswith("timm:") or name not in _TIMM_MOBILENET_V3 or not given <= _HARMLESS_KWARGS:
        return False
    variant = "small" if "small" in name else "large"
    if table != (_MOBILENET_V3_SMALL if variant == "small" else _MOBILENET_V3_LARGE):
        return False
    layers = data["layers"]
    blocks = [i for i, layer in enumerate(layers) if layer["kind"] in _BLOCKS]
    fractions = _TIMM_MOBILENET_V3_FRACTIONS[variant]
    rewritten: dict[int, dict[str, Any]] = {}
    c: Any = layers[0].get("out_channels")
    for k, i in enumerate(blocks):
        layer = layers[i]
        t = fractions.get(k)
        if layer["kind"] != "mbconv":
            return False
        if t is None:
            if not isinstance(layer.get("expansion"), int):
                return False  # an integer expansion scales exactly: in × t of a multiple of 8
        else:
            reps = layer.get("repeat", 1)
            widths = [make_divisible(c * t, 8)] + [make_divisible(layer["out_channels"] * t, 8)] * (reps - 1)
            if layer.get("expanded_channels") != widths[0] or len(set(widths)) != 1 or set(layer) - _PLAIN_IR:
                return False  # not the arch string's expansion, a group whose blocks expand differently, or SE …
            rewritten[i] = {
                "kind": "uir",
                **{f: layer[f] for f in ("name", "stride", "out_channels", "activation", "repeat") if f in layer},
                "mid_kernel": layer.get("kernel", 3),
                "expansion": t,
            }
        c = layer["out_channels"]
    for i, uir in rewritten.items():
        layers[i] = uir
    layers[0]["width_floor"] = 1.0  # the stem: fix_stem below 0.75, where make_divisible(16 × m, 8) is 16 too
    data["scaling"] = {"divisor": 8}
    data["provenance"]["scaling"] = "width"
    return True


def _head(data: dict[str, Any]) -> dict[str, Any]:
    layers = data["layers"]
    return next(layer for layer in layers[1:] if layer["kind"] == "conv")


def recognise_scaling(data: dict[str, Any], module: Any) -> None:
    """Write the family's scaling rules and ``provenance.scaling`` where ``module`` is a recognised base model."""
    cls = _cls(module)
    table = _table(data)
    if table is None:
        return
    if cls == "torchvision.models.mobilenetv2.MobileNetV2" and table == _MOBILENET_V2:
        _head(data)["width_floor"] = 1.0
        data["scaling"] = {"divisor": 8}
        data["provenance"]["scaling"] = "width"
    elif cls == "torchvision.models.efficientnet.EfficientNet" and table == _EFFICIENTNET_B0:
        if any(type(m).__name__ == "FusedMBConv" for m in module.modules()):
            return
        for layer in data["layers"]:
            if layer["kind"] == "mbconv":
                layer["expanded_divisor"] = 8
        head = _head(data)
        del head["out_channels"]
        head["out_ratio"] = 4
        data["scaling"] = {"divisor": 8}
        data["provenance"]["scaling"] = "spec"
    elif cls == "torchvision.models.mobilenetv3.MobileNetV3" and table in (_MOBILENET_V3_LARGE, _MOBILENET_V3_SMALL):
        layers = data["layers"]
        head = _head(data)
        at = next(i for i, layer in enumerate(layers) if layer is head)
        hidden = next((layer for layer in layers[at + 1 :] if layer["kind"] == "linear"), None)
        if hidden is None or head["out_channels"] != 6 * table[1][-1][0]:
            return
        _absolute_expansions(data)
        del head["out_channels"]
        head["out_ratio"] = 6
        hidden["scale_width"] = True  # last_channel = adjust_channels(1280 or 1024)
        data["scaling"] = {"divisor": 8}
        data["provenance"]["scaling"] = "width"
    elif cls == "timm.models.mobilenetv3.MobileNetV3":
        _timm_mobilenet_v3(data, table)
    elif cls == "torchvision.models.mnasnet.MNASNet" and table == _MNASNET_A1:
        _head(data)["scale_width"] = False
        data["scaling"] = {"divisor": 8}
        data["provenance"]["scaling"] = "width"
    elif cls == "timm.models.efficientnet.EfficientNet" and table == _MOBILENET_V2:
        if data.get("defaults", {}).get("activation") != "relu6":
            return
        _head(data)["width_floor"] = 1.0
        data["scaling"] = {"divisor": 8}
        data["provenance"]["scaling"] = "spec"
    elif cls == "timm.models.efficientnet.EfficientNet" and table == _EFFICIENTNET_B0:
        data["scaling"] = {"divisor": 8}
        data["provenance"]["scaling"] = "spec"
