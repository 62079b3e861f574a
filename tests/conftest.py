from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# One thread for torch's and BLAS's pools: on the tests' tiny tensors the hand-offs and spin-waits of a second
# thread cost more than the work (test_torch_agreement + test_networks_torch: 52 s of CPU with 2 threads, 10 s
# with 1, on a busy 2-core machine). Set before torch or numpy is imported; a value in the environment wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Commands that run torch (or numpy's threaded BLAS) must not run in a fork of a process that has started
# their thread pools: calibrate (timings) gets a fresh interpreter unless the pools are single-threaded (no
# pool is started); import runs in this process itself (no fork: torch is imported once per test session
# instead of once per command, ~20 s each on 2 cores).
_FRESH = {"calibrate"}
_IN_PROCESS = {"import"}


def _subprocess(args: tuple[str, ...], cwd: Path) -> tuple[int, str, str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "costmodel", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )
    return proc.returncode, proc.stdout, proc.stderr


def _in_process(args: tuple[str, ...], cwd: Path) -> tuple[int, str, str]:
    """``costmodel.cli.main(args)`` in this very process, in ``cwd``, with stdout and stderr captured."""
    import contextlib
    import io

    import costmodel.cli

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = costmodel.cli.main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(here)
    return code, out.getvalue(), err.getvalue()


def _vm_size() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover


def _forked(
    args: tuple[str, ...], cwd: Path, timeout: float = 120.0, memory_cap: int | None = None
) -> tuple[int, str, str]:
    """``costmodel.cli.main(args)`` in a forked child of the test process (its imports already warm), with its
    own stdout/stderr, working directory and exit status: what ``python -m costmodel`` does, without paying
    the interpreter start and imports for every case. ``memory_cap``: bytes of address space the child may
    add to what this process maps (RLIMIT_AS)."""
    import io
    import resource
    import tempfile
    import time

    import costmodel.cli

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        limit = None if memory_cap is None else _vm_size() + memory_cap
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 70
            try:
                os.chdir(cwd)
                if limit is not None:
                    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8")
                sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8")
                code = costmodel.cli.main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        end = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > end:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                pytest.fail(f"costmodel {' '.join(args)[:200]} ran over {timeout} s")
            time.sleep(0.002)
        out.seek(0)
        err.seek(0)
        return os.waitstatus_to_exitcode(status), out.read().decode(), err.read().decode()


@pytest.fixture
def run_cli():
    """Run ``costmodel ARGS`` as a user would; returns (status, stdout, stderr). Most commands run in a fork of
    the test process, import in the test process itself, calibrate with multi-threaded pools (and all, with
    COSTMODEL_TEST_SUBPROCESS=1) in ``python -m costmodel``."""

    def run(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
        where = cwd or ROOT
        fresh = args and args[0] in _FRESH and os.environ.get("OMP_NUM_THREADS") != "1"
        if os.environ.get("COSTMODEL_TEST_SUBPROCESS") or fresh:
            return _subprocess(args, where)
        if args and args[0] in _IN_PROCESS:
            return _in_process(args, where)
        return _forked(args, where)

    return run


NETWORKS = SPECS / "networks"

# torchvision 0.29.1, batch 1, each model at its own evaluation resolution (issue #3's verified table):
# name: (resolution, params = sum(p.numel()), MACs = FlopCounterMode / 2)
REFERENCE = {
    "mobilenet_v2": (224, 3_504_872, 300_774_272),
    "mobilenet_v3_large": (224, 5_483_032, 216_589_760),
    "mobilenet_v3_small": (224, 2_542_856, 56_510_400),
    "efficientnet_b0": (224, 5_288_548, 385_814_752),
    "efficientnet_b1": (240, 7_794_184, 686_802_832),
    "efficientnet_b2": (288, 9_109_994, 1_087_529_456),
    "efficientnet_b3": (300, 12_233_232, 1_827_141_392),
    "efficientnet_b4": (380, 19_341_616, 4_393_771_024),
    "efficientnet_b5": (456, 30_389_784, 10_266_384_752),
    "efficientnet_b6": (528, 43_040_704, 19_067_593_536),
    "efficientnet_b7": (600, 66_347_960, 37_745_884_192),
    "efficientnet_v2_s": (384, 21_458_488, 8_365_617_152),
    "mnasnet1_0": (224, 4_383_312, 314_415_872),
}


def edited(name: str, resolution: int | None = None, **scaling: float):
    """A shipped network spec with its input resolution and/or scaling fields changed, as a user would edit it."""
    from costmodel.spec import loader

    path = NETWORKS / f"{name}.yaml"
    data, src = loader.parse_yaml(path.read_text(), str(path))
    if resolution is not None:
        data["input"]["height"] = data["input"]["width"] = resolution
    if scaling:
        data.setdefault("scaling", {}).update(scaling)
    return loader.validate(data, src)


def small_spec(layers: list[dict[str, Any]], c: Any = 16, h: Any = 9, w: Any = None, **defaults: Any) -> Any:
    """A spec for the block tests: a c×h×w input (w = h unless given), the layers, and the defaults relu /
    batchnorm / no bias, each overridden by ``defaults``."""
    import costmodel

    return costmodel.NetworkSpec.model_validate(
        {
            "name": "t",
            "input": {"channels": c, "height": h, "width": h if w is None else w},
            "defaults": {"activation": "relu", "norm": "batchnorm", "bias": False, **defaults},
            "layers": layers,
        }
    )


def totals(s: Any) -> tuple[Any, ...]:
    """(params, buffers, MACs, output shape) of a spec, as costmodel counts them."""
    import costmodel

    r = costmodel.analyze(s)
    return r.totals["params"], r.totals["buffers"], r.totals["macs"], r.output


@contextlib.contextmanager
def saved_storages(model: Any) -> Iterator[dict[int, int]]:
    """Inside the block, every tensor autograd saves is recorded: the yielded dict maps each distinct storage
    (parameters excluded) to its bytes, so ``sum(d.values())`` is what a training step keeps for backward."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}
    keep: list[Any] = []  # the saved tensors stay alive, so no storage address is reused while recording

    def pack(t: Any) -> Any:
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            storages[st.data_ptr()] = st.nbytes()
        keep.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield storages
