"""The deployment view: one row per op of the int8 graph with its live bytes (the timeline), Flash, totals."""

from __future__ import annotations

from typing import Any

from ..analysis.deploy import UNOBSERVABLE_ARENA, Deployment
from .emit import Column, Table, emit


def _kib(n: int) -> str:
    return f"{n:,} B ({n / 1024:,.1f} KiB)"


def deploy_payload(d: Deployment) -> dict[str, Any]:
    """The deployment as JSON: totals, the peak and what is alive at it, the patch plan, every step."""
    out: dict[str, Any] = {
        "name": d.name,
        "runtime": d.runtime,
        "dtype": "int8",
        "include_input": d.include_input,
        "peak_bytes": d.peak_bytes if d.arena_observable else None,
        "peak_step": d.peak_step if d.arena_observable else None,
        "alive": [{"tensor": t, "bytes": b} for t, b in d.alive],
        "flash": d.flash(),
        "macs": sum(s.macs for s in d.steps),
        "steps": [
            {
                "step": s.label,
                "block": s.block,
                "ops": list(s.ops),
                "output_shape": list(s.shape),
                "in_place": s.inplace is not None,
                "live_bytes": s.live_bytes if d.arena_observable else None,
                "alive": [{"tensor": t, "bytes": b} for t, b in s.alive],
                "weight_bytes": s.weight_bytes,
                "bias_bytes": s.bias_bytes,
                "quant_bytes": s.quant_bytes,
                "const_bytes": s.const_bytes,
                "flash_bytes": s.flash_bytes,
                "macs": s.macs,
            }
            for s in d.steps
        ],
    }
    if d.runtime in ("tflm", "litert"):
        out["arena_bytes"] = d.peak_bytes
        out["buffers"] = [
            {"tensor": b.name, "bytes": b.size, "first": b.first, "last": b.last, "offset": b.offset} for b in d.buffers
        ]
    if d.patch is not None:
        p = d.patch
        out["layer_peak_bytes"] = d.layer_peak_bytes
        out["patch"] = {
            "grid": list(p.grid),
            "until": p.until,
            "peak_bytes": p.peak_bytes,
            "peak_step": p.peak_step,
            "peak_patch": list(p.peak_patch),
            "alive": [{"tensor": t, "bytes": b} for t, b in p.alive],
            "stage_macs": p.stage_macs,
            "patch_macs": p.patch_macs,
            "recomputed_macs": p.recomputed_macs,
            "output_bytes": p.output_bytes,
        }
    return out


def deploy_table(d: Deployment) -> Table:
    """One row per op: its output, live bytes (in place marked), Flash; a total row and the peak below."""
    tflm = d.runtime in ("tflm", "litert")
    cols = [
        Column("step", "op", "left"),
        Column("output_shape", "output", "left"),
        Column("live_bytes", "live [B]" if not tflm else "live buffers [B]"),
        Column("weight_bytes", "weights [B]"),
        Column("bias_bytes", "biases [B]"),
        Column("quant_bytes", "quant. params [B]"),
        Column("flash_bytes", "Flash [B]"),
        Column("macs", "MACs"),
    ]
    body: list[list[Any]] = [
        [
            s.label + (" (in place)" if s.inplace is not None else ""),
            "×".join(str(x) for x in s.shape),
            s.live_bytes if d.arena_observable else "—",
            s.weight_bytes,
            s.bias_bytes,
            s.quant_bytes,
            s.flash_bytes,
            s.macs,
        ]
        for s in d.steps
    ]
    f = d.flash()
    body.append(
        [
            "total",
            "",
            d.peak_bytes if d.arena_observable else "—",
            f["weight_bytes"],
            f["bias_bytes"],
            f["quant_bytes"],
            f["flash_bytes"],
            sum(s.macs for s in d.steps),
        ]
    )
    image = "input image counted" if d.include_input else "input image not counted"
    if d.runtime == "onnxruntime":
        title = f"{d.name}: int8 QDQ ONNX on onnxruntime (initializers: per-tensor quantization)"
        lines = [UNOBSERVABLE_ARENA]
    elif d.runtime == "litert":
        title = f"{d.name}: int8 on LiteRT's built-in kernels (TFLite arena planner; offsets aligned to 64 B)"
        lines = [
            f"arena (planned tensors and kernel temporaries): {_kib(d.peak_bytes)}, highest buffer {d.peak_step}; "
            "with the default XNNPACK delegate LiteRT's arena holds only the input and output, and XNNPACK's "
            "own workspace is not observable"
        ]
    elif tflm:
        title = f"{d.name}: int8 on TFLM (greedy memory planner; buffers rounded up to 16 B)"
        lines = [f"arena (planned tensors and scratch buffers): {_kib(d.peak_bytes)}, highest buffer {d.peak_step}"]
    else:
        title = f"{d.name}: int8 on TinyEngine (depthwise and residual add in place; {image})"
        alive = ", ".join(f"{t} {b:,} B" for t, b in d.alive)
        lines = [f"peak SRAM: {_kib(d.peak_bytes)} at {d.peak_step} (alive: {alive})"]
        if d.patch is not None:
            p = d.patch
            lines.append(
                f"patch-based {p.grid[0]}×{p.grid[1]} up to block {p.until}: patch stage peak {_kib(p.peak_bytes)} at "
                f"{p.peak_step} (patch {p.peak_patch}); per-layer peak without patches {_kib(d.layer_peak_bytes)}; "
                f"recomputed MACs {p.recomputed_macs:,} (+{100 * p.recomputed_macs / max(p.stage_macs, 1):.1f}% of "
                f"the stage's {p.stage_macs:,})"
            )
    lines.append(
        f"Flash: {_kib(f['flash_bytes'])} = weights {f['weight_bytes']:,} + biases {f['bias_bytes']:,} + "
        f"quantization parameters {f['quant_bytes']:,} + other constants {f['const_bytes']:,}"
    )
    return Table(cols, body, title, "\n".join(lines))


def render_deploy(d: Deployment, fmt: str) -> str:
    """The deployment in ``fmt`` (json: the full payload, with the TFLM buffer plan)."""
    return emit(lambda: deploy_table(d), fmt, lambda: deploy_payload(d))
