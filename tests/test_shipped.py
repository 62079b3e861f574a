"""Shipped specs are package data: names work from any directory, `costmodel list` shows every file, the
wheel and the sdist carry them (the slow test installs a wheel and runs the README's examples elsewhere)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from fnmatch import fnmatch
from pathlib import Path

import pytest

import costmodel
from conftest import REFERENCE, ROOT, SPECS

#: timm's own figures, measured with timm 1.0.31 (params = sum(p.numel()), MACs = FlopCounterMode / 2)
FIGURES = {
    json.loads(line)["model"]: json.loads(line)
    for line in (SPECS / "timm" / "_tools" / "figures.jsonl").read_text().splitlines()
    if line.strip()
}


def _files() -> list[str]:
    """Every shipped spec file, read from the checkout's directory tree (not from the code under test)."""
    return sorted(
        p.relative_to(ROOT).as_posix() for p in SPECS.rglob("*.yaml") if not any(x.startswith("_") for x in p.parts)
    )


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory outside the checkout."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "name", ["efficientnet_b0", "networks/efficientnet_b0", "specs/networks/efficientnet_b0.yaml", "mobilenet_v2"]
)
def test_torchvision_names_load_from_any_directory(elsewhere, name):
    assert not (elsewhere / "specs").exists()
    model = name.rsplit("/", 1)[-1].removesuffix(".yaml")
    _, params, macs = REFERENCE[model]
    r = costmodel.analyze(name)
    assert (r.totals["params"], r.totals["macs"]) == (params, macs)


def test_timm_names_reach_timm_specs_and_a_bare_name_prefers_torchvision(elsewhere):
    ref = FIGURES["mixnet_s"]["default"]
    for name in ("timm/mixnet_s", "mixnet_s", "specs/timm/mixnet_s.yaml", "timm/mixnet_s.yaml"):
        r = costmodel.analyze(name)
        assert (r.totals["params"], r.totals["macs"]) == (ref["params"], ref["macs"]), name
    # efficientnet_b0 is in networks/ and in timm/: the bare name is torchvision's (the documented order)
    assert costmodel.load("efficientnet_b0").name == "EfficientNet-B0"
    assert costmodel.load("timm/efficientnet_b0").name == "efficientnet_b0"
    assert costmodel.load("seed_mbconv").layers[0].kind == "mbconv"
    assert costmodel.analyze("seed_mbconv").totals["params"] == 408  # the README's hand count


def test_a_path_that_exists_wins_over_a_shipped_name(elsewhere):
    # a 1×1 conv 3 → 5 on 4×4, no norm, no bias: 15 params, 15·16 = 240 MACs
    (elsewhere / "mobilenet_v2").write_text(
        "input: {channels: 3, height: 4, width: 4}\n"
        "defaults: {norm: none, bias: false, activation: none}\n"
        "layers:\n  - {kind: conv, out_channels: 5, kernel: 1}\n"
    )
    r = costmodel.analyze("mobilenet_v2")
    assert (r.totals["params"], r.totals["macs"]) == (15, 240)
    assert costmodel.analyze("./mobilenet_v2").totals["params"] == 15


@pytest.mark.parametrize(
    "ref",
    ["nosuch", "timm/nosuch", "../specs/seed_mbconv.yaml", "/nonexistent/seed_mbconv.yaml", "timm/_tools/convert",
     "specs/timm/_tools/convert.py", "other/seed_mbconv", "", "timm/", "spaces/../seed_mbconv"],
)  # fmt: skip
def test_unknown_names_are_refused_by_name(elsewhere, ref):
    with pytest.raises(costmodel.SpecError, match="no such file") as err:
        costmodel.load(ref)
    assert "costmodel list" in str(err.value)


def test_spaces_load_by_name_and_are_not_network_names(elsewhere):
    assert costmodel.space("ofa_mobilenetv3").spec.name == "OFA MobileNetV3 space"
    assert costmodel.space("specs/spaces/proxylessnas.yaml").size > 1
    with pytest.raises(costmodel.SpecError, match="no such file"):
        costmodel.load("ofa_mobilenetv3")  # a bare network name is not looked up among the spaces


def test_list_shows_every_file_once_and_each_name_reaches_its_file(elsewhere):
    start = time.perf_counter()
    items = costmodel.shipped()
    assert time.perf_counter() - start < 1.0
    assert sorted(s.file for s in items) == _files()
    assert len({s.name for s in items}) == len(items)
    groups = {
        "specs": "seed",
        "networks": "network",
        "timm": "timm",
        "reference": "reference",
        "dense": "dense",
        "spaces": "space",
    }
    for s in items:
        assert s.group == groups[s.file.split("/")[-2]]
        assert s.path.read_bytes() == (ROOT / s.file).read_bytes()
        prefixed = s.group in ("timm", "reference", "dense")  # listed as DIR/NAME
        assert s.name == (f"{s.file.split('/')[-2]}/{Path(s.file).stem}" if prefixed else Path(s.file).stem)
    # the name listed is the one that loads that file (the spec's own title, read here from the file)
    for s in [x for x in items if x.group != "space"][::7]:
        title = re.search(r"^name: *(.+)$", (ROOT / s.file).read_text(), re.M)
        if title:
            assert costmodel.load(s.name).name == title.group(1).strip().strip("'\""), s.name
    assert {"efficientnet_b0", "timm/efficientnet_b0", "timm/mixnet_s", "ofa_mobilenetv3"} <= {s.name for s in items}


def test_cli_list_and_names_from_another_directory(run_cli, tmp_path):
    code, out, err = run_cli("list", "--format", "json", cwd=tmp_path)
    assert code == 0, err
    rows = json.loads(out)
    assert [r["file"] for r in rows] == [s.file for s in costmodel.shipped()]
    assert {"name": "timm/mixnet_s", "group": "timm", "file": "specs/timm/mixnet_s.yaml"} in rows
    code, out, err = run_cli("list", cwd=tmp_path)
    assert code == 0 and "| timm/efficientnet_b0 " in out and "| efficientnet_b0 " in out
    code, out, err = run_cli("table", "timm/mixnet_s", "--resolution", "193", "-f", "json", cwd=tmp_path)
    assert code == 0, err
    ref = FIGURES["mixnet_s"]["r193"]
    assert (json.loads(out)["totals"]["params"], json.loads(out)["totals"]["macs"]) == (ref["params"], ref["macs"])
    code, out, err = run_cli("table", "no_such_net", cwd=tmp_path)
    assert (code, out) == (2, "")
    assert err.strip() == (
        "costmodel: error: no_such_net: no such file, nor a shipped spec of that name (`costmodel list` shows them)"
    )


def test_the_package_data_patterns_ship_every_spec_and_no_tool():
    """What pyproject.toml's package-data globs select under costmodel/ (the wheel's spec files)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["costmodel"]
    pkg = ROOT / "costmodel"
    assert (pkg / "data" / "specs").resolve() == SPECS.resolve()
    selected = set()
    for pattern in patterns:
        selected |= {p.relative_to(pkg).as_posix() for p in pkg.glob(pattern)}
    assert sorted(f"specs/{s.removeprefix('data/specs/')}" for s in selected if s.startswith("data/specs/")) == _files()
    assert not [s for s in selected if "_tools" in s or s.endswith(".py")]
    assert any(fnmatch("costmodel.data.specs.timm._tools", x) for x in config["packages"]["find"]["exclude"])


def _readme_commands() -> list[str]:
    """The README's shell examples that name a shipped spec, without their comments."""
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("costmodel ") and "specs/" in line and "my_machine" not in line and "&&" not in line:
                out.append(line)
    return out


def _readme_python() -> str:
    return "\n".join(re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[0:1])


def test_the_readme_names_shipped_specs_in_its_examples():
    commands = _readme_commands()
    assert len(commands) >= 20
    assert any("specs/timm/" in c for c in commands) and any("specs/networks/" in c for c in commands)
    assert 'costmodel.analyze("specs/seed_mbconv.yaml")' in _readme_python()


def _copy_tree(dest: Path) -> Path:
    """The checkout's files as git tracks them (links kept as links), without build outputs."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src, dst = ROOT / rel, dest / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree, not yet committed
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif src.is_file():
            shutil.copy2(src, dst)
    return dest


@pytest.mark.slow
def test_wheel_from_sdist_runs_the_readme_from_any_directory(tmp_path, run_cli):
    """A non-editable install (sdist → wheel, as `python -m build` makes them; offline: no deps fetched, the
    test environment's packages are visible to the venv) runs every README example that names a shipped spec
    from a directory without specs/, and prints what the checkout prints; the hardware profiles come too."""
    src = _copy_tree(tmp_path / "src")
    dist = tmp_path / "dist"
    build = (
        "import sys; from setuptools import build_meta as b; "
        "print(b.build_sdist(sys.argv[1]) if sys.argv[2] == 'sdist' else b.build_wheel(sys.argv[1]))"
    )
    sdist = subprocess.run([sys.executable, "-c", build, str(dist), "sdist"], cwd=src, capture_output=True,
                           text=True, check=True).stdout.strip().splitlines()[-1]  # fmt: skip
    shutil.unpack_archive(dist / sdist, tmp_path / "unpacked")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    wheel = subprocess.run([sys.executable, "-c", build, str(dist), "wheel"], cwd=unpacked, capture_output=True,
                           text=True, check=True).stdout.strip().splitlines()[-1]  # fmt: skip
    import zipfile

    names = zipfile.ZipFile(dist / wheel).namelist()
    assert sorted(f"specs/{n.removeprefix('costmodel/data/specs/')}" for n in names if "/data/specs/" in n) == _files()
    assert not [n for n in names if "_tools" in n]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (purelib,) = (venv / "lib").glob("python*/site-packages")
    import sysconfig

    # the test environment's packages (pydantic, sympy …) after the venv's own: its .pth files are not run,
    # so an editable costmodel there stays invisible
    (purelib / "_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index", str(dist / wheel)],
                   check=True, cwd=tmp_path)  # fmt: skip
    away = tmp_path / "away"
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def installed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(venv / "bin" / "costmodel"), *args], capture_output=True, text=True, cwd=away,
                              env=env, timeout=300)  # fmt: skip

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import costmodel; print(costmodel.__file__)"],
                           capture_output=True, text=True, cwd=away, env=env, check=True).stdout  # fmt: skip
    assert str(venv) in where and str(ROOT) not in where  # the installed copy, not the checkout

    commands = [*_readme_commands(), "costmodel table efficientnet_b0", "costmodel table timm/mixnet_s",
                "costmodel table networks/mobilenet_v2", f"costmodel table {SPECS / 'seed_dwsep.yaml'}",
                "costmodel roofline seed_mbconv --hardware a100 --format json", "costmodel list --format json",
                "costmodel space ofa_mobilenetv3 --budget macs<=3e8"]  # fmt: skip
    for line in commands:
        args = shlex.split(line)[1:]
        got = installed(*args)
        assert got.returncode == 0, (line, got.stderr)
        code, want, _ = run_cli(*args)  # the checkout, from its root
        assert (code, got.stdout) == (0, want), line
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _readme_python() + "\nprint(costmodel.analyze('timm/mixnet_s').totals)"],
        capture_output=True, text=True, cwd=away, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"'params': {FIGURES['mixnet_s']['default']['params']}" in proc.stdout
