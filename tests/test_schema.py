"""The JSON Schema (costmodel schema) is as strict as the validator where JSON Schema can say it: odd
kernels, exactly one of expansion / expanded_channels and of out_channels / out_ratio; and every shipped
spec passes it. Checked with the jsonschema package when installed, and by hand on the schema dict."""

from __future__ import annotations

import json

import pytest
import yaml

import costmodel
from conftest import SPECS

SCHEMA = costmodel.NetworkSpec.model_json_schema()
BASE = {"input": {"channels": 16, "height": 8, "width": 8}}


def mbconv(**fields):
    return {**BASE, "layers": [{"kind": "mbconv", "out_channels": 16, **fields}]}


def test_schema_dict_says_the_rules():
    mb = SCHEMA["$defs"]["MBConvLayer"]
    # without an explicit padding the kernel must be odd (padding k//2); with one, any size
    assert mb["if"] == {"anyOf": [{"not": {"required": ["padding"]}}, {"properties": {"padding": {"type": "null"}}}]}
    kernel = mb["then"]["properties"]["kernel"]["anyOf"][0]
    assert kernel == {"type": "integer", "minimum": 1, "not": {"multipleOf": 2}}
    assert mb["oneOf"] == [{"required": ["expansion"]}, {"required": ["expanded_channels"]}]
    assert SCHEMA["$defs"]["ConvLayer"]["oneOf"] == [{"required": ["out_channels"]}, {"required": ["out_ratio"]}]
    assert mb["additionalProperties"] is False


BAD = {
    "even kernel": mbconv(expansion=6, kernel=4),
    "no expansion": mbconv(),
    "both expansion and expanded_channels": mbconv(expansion=6, expanded_channels=96),
    "conv with neither width": {**BASE, "layers": [{"kind": "conv"}]},
    "conv with both widths": {**BASE, "layers": [{"kind": "conv", "out_channels": 8, "out_ratio": 2}]},
    "unknown key": mbconv(expansion=6, expand=6),
    "unknown implementation library": {**mbconv(expansion=6), "implementation": "keras"},
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_schema_refuses_what_the_validator_refuses(name):
    jsonschema = pytest.importorskip("jsonschema")
    with pytest.raises(costmodel.SpecError):
        costmodel.loads(yaml.safe_dump(BAD[name]))
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(BAD[name])


def test_schema_takes_the_implementation_shorthand():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for impl in ("timm", "torch", {"library": "timm", "pad_type": "same"}):
        data = {**mbconv(expansion=6), "implementation": impl}
        costmodel.loads(yaml.safe_dump(data))  # the validator takes it
        assert validator.is_valid(data), impl


def _shipped_specs() -> list[tuple[object, dict]]:
    """(path, data) of every shipped network spec (search spaces, specs/spaces/, are their own format:
    {choice: [...]} fields, docs/spaces.md). PyYAML's C loader where it is built: the same data, 8× faster."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    files = sorted(p for p in SPECS.rglob("*.yaml") if "_tools" not in p.parts and "spaces" not in p.parts)
    assert len(files) > 100
    out = []
    for path in files:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # a safe loader
        if isinstance(data, dict) and "layers" in data:
            out.append((path, data))
    return out


def test_schema_accepts_every_shipped_spec():
    """Every shipped spec, each distinct layer validated once: JSON Schema checks the items of ``layers`` one
    by one (no array-wide rule but a minimum of one), so a layer valid in one spec is valid in every other and
    the verdict is that of validating every file whole (the slow test below), in half the time."""
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    seen: set[str] = set()
    for path, data in _shipped_specs():
        fresh = []
        for layer in data["layers"]:
            key = json.dumps(layer, sort_keys=True)
            if key not in seen:
                seen.add(key)
                fresh.append(layer)
        errors = [e.message for e in validator.iter_errors({**data, "layers": fresh or data["layers"][:1]})]
        assert errors == [], path
    assert len(seen) > 500


@pytest.mark.slow
def test_schema_accepts_every_shipped_spec_whole():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for path, data in _shipped_specs():
        errors = [e.message for e in validator.iter_errors(data)]
        assert errors == [], path
