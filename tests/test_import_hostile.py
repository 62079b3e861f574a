"""costmodel import on hostile input (issue #24's import / ONNX / user-code items, #23 item 5, #22's recorder
crashes): each case gives a correct answer or one ``costmodel: error:`` line with exit status 2, nothing on
stdout, no traceback.

Models are built here (tiny torch modules written into a temporary directory, ONNX graphs built with
``onnx.helper``); expected figures are torch's own (``sum(p.numel())``, ``FlopCounterMode`` / 2) or hand
arithmetic written beside them.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import costmodel
from costmodel.cli import main
from costmodel.importers.sources import MAX_INPUT_SIZE, parse_input, parse_kwargs, printable

ROOT = Path(__file__).resolve().parent.parent


def _cli(capsys, *args):
    status = main(list(args))
    cap = capsys.readouterr()
    return status, cap.out, cap.err


def _refused(status, out, err, *words):
    assert (status, out) == (2, ""), err
    assert err.startswith("costmodel: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


# ------------------------------------------------------------------------------------ the grammars

BIG = "9" * 5000


def test_huge_integers_in_input_and_kwargs_are_refused(capsys):
    with pytest.raises(costmodel.UsageError, match="65,536"):
        parse_input(f"3x{BIG}x3")
    with pytest.raises(costmodel.UsageError, match="at most 65,536"):
        parse_input("3x1000000000x1000000000")
    assert parse_input(f"3x{MAX_INPUT_SIZE}x1") == (3, MAX_INPUT_SIZE, 1)
    with pytest.raises(costmodel.UsageError, match="at most 65,536"):
        parse_input(f"3x{MAX_INPUT_SIZE + 1}x1")
    with pytest.raises(costmodel.UsageError, match="5,000 digits"):
        parse_kwargs(f"n={BIG}")
    with pytest.raises(costmodel.UsageError, match="finite"):
        parse_kwargs("drop_rate=1e999")
    with pytest.raises(costmodel.UsageError, match="characters"):
        parse_kwargs("a=" + "x" * 20_000)
    # through the CLI: one line, before anything is imported or built
    _refused(*_cli(capsys, "import", "timm:mobilenetv3_small_050", "--input", f"3x{BIG}x3"), "--input")
    _refused(*_cli(capsys, "import", "timm:mobilenetv3_small_050", "--kwargs", f"n={BIG}"), "--kwargs n")
    _refused(*_cli(capsys, "import", "timm:x", "--input", "3x1000000000x1000000000"), "65,536")


def test_kwargs_are_literals_never_evaluated():
    got = parse_kwargs("a=__import__('os').system('touch /tmp/x'),b=[1],c={},d=1+1,e=0x10")
    assert got == {"a": "__import__('os').system('touch /tmp/x')", "b": "[1]", "c": "{}", "d": "1+1", "e": "0x10"}
    assert all(type(v) is str for v in got.values())


@pytest.mark.parametrize(
    "kwarg",
    [
        "checkpoint_path=/etc/passwd",
        "pretrained=true",
        "pretrained_cfg=x",
        "pretrained_cfg_overlay=x",
        "cache_dir=/tmp",
        "weights=DEFAULT",
        "weights_backbone=DEFAULT",
        "model_file=a.pt",
        "load_checkpoint=true",
        "state_dir=/tmp",
    ],
)
def test_kwargs_that_load_files_or_weights_are_refused_by_name(capsys, kwarg):
    """Refused before anything is built (a timm name that does not exist would be refused after the name
    check; these use a real one, but the refusal comes first, so no timm model is built either)."""
    pytest.importorskip("torch")
    from costmodel.importers import sources

    for source in ("timm:mobilenetv3_small_050", "torchvision:mobilenet_v2"):
        lib = source.split(":")[0]
        if lib == "timm":
            pytest.importorskip("timm")
        else:
            pytest.importorskip("torchvision")
        with pytest.raises(costmodel.UsageError, match="refused"):
            sources.load_module(source, parse_kwargs(kwarg))


def test_ordinary_kwargs_are_passed_on():
    """drop_path_rate holds 'path' but loads nothing: it reaches timm (its blocks get DropPath)."""
    pytest.importorskip("timm")
    from costmodel.importers import sources

    model, size, _ = sources.load_module("timm:mobilenetv3_small_050", parse_kwargs("drop_path_rate=0.1,num_classes=7"))
    assert model.num_classes == 7 and size == (3, 224, 224)
    assert any(type(m).__name__ == "DropPath" for m in model.modules())


def test_timm_kwargs_errors_of_any_type_are_one_line(capsys):
    pytest.importorskip("timm")
    # KeyError (an unknown activation name), AssertionError (an unknown pool type), TypeError
    for kw, word in (("act_layer=zzz", "KeyError"), ("global_pool=zzz", "Invalid pool"), ("block_args=3", "TypeError")):
        _refused(*_cli(capsys, "import", "timm:mobilenetv3_small_050", "--kwargs", kw), word)


# ----------------------------------------------------------------------------------- user code

USER = '''
import sys
import torch
from torch import nn


class ECA(nn.Module):
    """Efficient channel attention: a 1-d conv over the pooled channels (timm's EcaModule)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3, padding=1, bias=False)

    def forward(self, x):
        y = x.mean((2, 3)).unsqueeze(1)
        y = torch.sigmoid(self.conv(y)).squeeze(1)
        return x * y[:, :, None, None]


def eca():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), ECA(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.a = nn.Conv2d(8, 8, 1)
        self.b = nn.Conv2d(8, 8, 1)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(self.a(self.stem(x)))


def tied():
    return Tied()


class Exits(nn.Module):
    def __init__(self, where):
        super().__init__()
        self.where = where
        self.c = nn.Conv2d(3, 4, 3)
        if where == "init":
            sys.exit(0)

    def forward(self, x):
        if self.where == "forward":
            raise SystemExit(0)
        return self.c(x)


def exit_init():
    return Exits("init")


def exit_forward():
    return Exits("forward")


class Named(nn.Module):
    def __init__(self, name):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.add_module(name, nn.Sequential(nn.Conv2d(8, 8, 3), nn.Mish()))
        self.n = name

    def forward(self, x):
        return getattr(self, self.n)(self.stem(x))


def evil_name():
    return Named("x\\ncostmodel: error: forged\\x1b[31m")


class Cfg(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)
        self.pretrained_cfg = {"input_size": size}

    def forward(self, x):
        return self.c(x)


def cfg_garbage():
    return Cfg("abc")


def cfg_huge():
    return Cfg((3, 10**9, 10**9))


def cfg_ok():
    return Cfg((3, 9, 7))


def seq():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3))
'''


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A directory holding the user's module (a fresh name per test: imports are cached), as the cwd."""
    pytest.importorskip("torch")
    name = f"usermods_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(USER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield name
    sys.modules.pop(name, None)


def _torch_figures(model, shape):
    import torch
    from torch.func import functional_call
    from torch.utils.flop_counter import FlopCounterMode

    subs = {n: torch.empty_like(t, device="meta") for n, t in [*model.named_parameters(), *model.named_buffers()]}
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = functional_call(model.eval(), subs, (torch.empty((1, *shape), device="meta"),))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2, tuple(y.shape[1:])


def test_sys_exit_in_the_users_constructor_or_forward_is_exit_2(user, capsys):
    _refused(*_cli(capsys, "import", f"{user}:exit_init", "--input", "3x8x8"), "exit_init()", "sys.exit(0)")
    _refused(*_cli(capsys, "import", f"{user}:exit_forward", "--input", "3x8x8"), "forward", "sys.exit(0)")


def test_garbage_or_huge_default_input_size_is_refused_or_ignored(user, capsys):
    for fn, shown in (("cfg_garbage", "'abc'"), ("cfg_huge", "1000000000")):
        _refused(*_cli(capsys, "import", f"{user}:{fn}"), "pretrained_cfg['input_size']", shown, "--input")
        status, out, err = _cli(capsys, "import", f"{user}:{fn}", "--input", "3x8x8")  # given: the cfg is not read
        # the cfg is not read: no warning, only the traced size and the coverage (#23: always said)
        assert status == 0 and "warning" not in err and "pretrained_cfg" not in err, err
        assert err.splitlines() == [
            "costmodel: traced at 3x8x8 from --input",
            "costmodel: the spec covers 100.00% of the model's MACs and 100.00% of its params",
        ]
        assert costmodel.loads(out).input.height == 8
    status, out, _ = _cli(capsys, "import", f"{user}:cfg_ok")
    spec = costmodel.loads(out)
    assert (spec.input.channels, spec.input.height, spec.input.width) == (3, 9, 7)


def test_a_module_name_with_a_newline_or_escape_forges_no_line(user, capsys, blocks_only):
    import importlib

    status, out, err = _cli(capsys, "import", f"{user}:evil_name", "--input", "3x8x8", "--partial")
    assert status == 0, err
    lines = err.splitlines()
    # the traced size first and the coverage last (#23), one line per warning between them
    assert lines[0] == "costmodel: traced at 3x8x8 from --input", err
    assert lines[-1].startswith("costmodel: the spec covers "), err
    assert all(line.startswith("costmodel: warning: ") for line in lines[1:-1]), err
    assert "\x1b" not in err and "\x1b" not in out
    report = costmodel.import_report(costmodel.import_model(f"{user}:evil_name", (3, 8, 8), partial=True))
    assert len(lines) - 1 == len(report.warnings()) == 2  # the Mish op left out, then the coverage
    spec = costmodel.loads(out)  # the written spec reads back, names escaped
    model = importlib.import_module(user).evil_name()
    params, macs, output = _torch_figures(model, (3, 8, 8))
    r = costmodel.analyze(spec)
    assert (r.totals["params"], r.totals["macs"], tuple(r.output)) == (params, macs, output)
    assert any(layer.name == "x\\ncostmodel: error: forged\\x1b[31m.0" for layer in spec.layers)


def test_numeric_module_names_are_quoted_so_the_spec_reads_back(user, capsys):
    import importlib

    status, out, err = _cli(capsys, "import", f"{user}:seq", "--input", "3x8x8")
    assert status == 0 and "warning" not in err, err
    spec = costmodel.loads(out)
    assert [layer.name for layer in spec.layers] == ["0", "3"]
    params, macs, _ = _torch_figures(importlib.import_module(user).seq(), (3, 8, 8))
    assert costmodel.analyze(spec).totals["params"] == params
    assert costmodel.analyze(spec).totals["macs"] == macs


def test_a_1d_conv_is_named_not_a_failed_forward(user, capsys, blocks_only):
    """#22: ECA's Conv1d made the recorder fail with an IndexError (w.shape[3])."""
    import importlib

    status, out, err = _cli(capsys, "import", f"{user}:eca", "--input", "3x8x8", "--partial")
    assert status == 0, err
    assert "forward pass failed" not in err and "costmodel: warning:" in err
    model = importlib.import_module(user).eca()
    params, macs, _ = _torch_figures(model, (3, 8, 8))
    report = costmodel.import_report(costmodel.import_model(f"{user}:eca", (3, 8, 8), partial=True))
    assert not report.exact and report.source["params"] == params and report.source["macs"] == macs
    # the conv1d's 3 weights and its 1·8·3 = 24 MACs are the part not covered
    assert params - report.spec["params"] == 3 and macs - report.spec["macs"] == 24


def test_tied_weights_trace_and_are_refused_not_over_counted(user, capsys, blocks_only):
    """#22: functional_call refused tied weights ('got multiple values for keys'); now the trace runs, and as the
    spec would count the shared weight once per conv (more params than torch's), the import is refused."""
    status, out, err = _cli(capsys, "import", f"{user}:tied", "--input", "3x8x8", "--partial")
    _refused(status, out, err, "b.weight is a.weight", "more params")
    # torch's count: one 8×8 1×1 weight shared by both convs (+ the stem's); the spec would hold it twice


def test_a_sympy_py_in_the_current_directory_does_not_shadow_costmodels_own(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "sympy.py").write_text("raise SystemExit('the cwd sympy.py was imported')\n")
    (tmp_path / "mymod.py").write_text(
        "from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for extra in ((), ("--symbolic-resolution",)):
        proc = subprocess.run(
            [sys.executable, "-m", "costmodel", "import", "mymod:build", "--input", "3x8x8", *extra],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        spec = costmodel.loads(proc.stdout)
        # 4 · 6 · 6 · 3 · 3 · 3 = 3,888 MACs at 8×8
        sizes = {"H": 8, "W": 8} if extra else {}
        assert costmodel.analyze(spec, **sizes).totals["macs"] == 3888


def test_flatten_then_conv_names_the_flatten_not_a_linear_layer():
    spec = textwrap.dedent(
        """
        input: {channels: 3, height: 8, width: 8}
        layers:
          - {kind: pool}
          - {kind: flatten}
          - {kind: conv, out_channels: 4}
        """
    )
    with pytest.raises(costmodel.SpecError) as err:
        costmodel.analyze(costmodel.loads(spec))
    assert "layer 1 (flatten)" in str(err.value) and "linear" not in str(err.value)


def test_printable():
    assert printable("a\nb\x1b[31m\u2028") == "a\\nb\\x1b[31m\\u2028"
    assert printable("features.3") == "features.3"


# ------------------------------------------------------------------------------------------- ONNX


needs_onnx = pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="needs the onnx package")


def _net(batch=1, group=1, wshape=(4, 3, 3, 3), clip=None, matmul_w=(4, 2), act="Relu", act_name="/act/Relu"):
    """x (batch×3×8×8) → Conv 3→4 k3 p1 → act → GlobalAveragePool → Flatten → MatMul 4→2."""
    np = pytest.importorskip("numpy")
    pytest.importorskip("onnx")
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    nodes = [h.make_node("Conv", ["x", "w"], ["c"], name="/stem/Conv", pads=[1, 1, 1, 1], group=group)]
    inits = [nh.from_array(np.ones(wshape, np.float32), "w")]
    if clip is not None:
        inits += [
            nh.from_array(np.array(clip[0], np.float32), "lo"),
            nh.from_array(np.array(clip[1], np.float32), "hi"),
        ]
        nodes.append(h.make_node("Clip", ["c", "lo", "hi"], ["r"], name="/act/Clip"))
    else:
        nodes.append(h.make_node(act, ["c"], ["r"], name=act_name))
    nodes.append(h.make_node("GlobalAveragePool", ["r"], ["p"], name="/pool/GAP"))
    nodes.append(h.make_node("Flatten", ["p"], ["f"], name="/flat/Flatten"))
    inits.append(nh.from_array(np.ones(matmul_w, np.float32), "mw"))
    nodes.append(h.make_node("MatMul", ["f", "mw"], ["y"], name="/fc/MatMul"))
    x = h.make_tensor_value_info("x", T.FLOAT, [batch, 3, 8, 8])
    g = h.make_graph(nodes, "g", [x], [h.make_tensor_value_info("y", T.FLOAT, None)], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def _save(model, path):
    import onnx

    onnx.save(model, str(path))
    return str(path)


# per image: Conv 4·8·8 · 3·3·3 = 6,912, MatMul 2 · 4 = 8
PER_IMAGE = 4 * 8 * 8 * 3 * 3 * 3 + 2 * 4


@needs_onnx
def test_onnx_batch_becomes_the_spec_batch(tmp_path, capsys):
    path = _save(_net(batch=4), tmp_path / "b4.onnx")
    spec = costmodel.from_onnx(path)
    report = costmodel.import_report(spec)
    assert spec.input.batch == 4
    assert costmodel.analyze(spec).totals["macs"] == 4 * PER_IMAGE == report.source["macs"]
    assert report.exact, report.warnings()
    status, out, err = _cli(capsys, "import", path)
    assert status == 0 and "batch: 4" in out and "25.00%" not in err
    assert costmodel.loads(out).input.batch == 4


@needs_onnx
def test_onnx_refuses_input_and_kwargs(tmp_path, capsys):
    path = _save(_net(), tmp_path / "m.onnx")
    _refused(*_cli(capsys, "import", path, "--input", "3x16x16"), "--input", "ONNX")
    _refused(*_cli(capsys, "import", path, "--kwargs", "a=1"), "--kwargs", "ONNX")


@needs_onnx
@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"group": 0}, ("Conv '/stem/Conv'", "group 0")),
        ({"clip": ([0, 0], [6, 6])}, ("Clip '/act/Clip'", "scalars")),
        ({"matmul_w": (4,)}, ("MatMul '/fc/MatMul'", "2-d")),
    ],
)
def test_damaged_onnx_graphs_are_refused_naming_the_node(tmp_path, capsys, kw, words):
    path = _save(_net(**kw), tmp_path / "bad.onnx")
    _refused(*_cli(capsys, "import", path), *words)


@needs_onnx
def test_onnx_rank2_conv_weight_and_dims_without_data(tmp_path, capsys):
    from onnx import TensorProto as T
    from onnx import helper as h

    m = _net(wshape=(4, 27))
    m.graph.value_info.append(h.make_tensor_value_info("c", T.FLOAT, [1, 4, 8, 8]))  # so inference does not stop it
    _refused(*_cli(capsys, "import", _save(m, tmp_path / "r2.onnx")), "Conv '/stem/Conv'", "4-d")
    m = _net()
    m.graph.initializer[0].ClearField("raw_data")  # dims 4×3×3×3, no data
    _refused(*_cli(capsys, "import", _save(m, tmp_path / "nodata.onnx")), "'w'", "Conv '/stem/Conv'")
    m = _net()
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:10]
    _refused(*_cli(capsys, "import", _save(m, tmp_path / "short.onnx")), "'w'", "432 bytes", "holds 10")


@needs_onnx
def test_onnx_external_data_is_checked_never_read_outside_the_directory(tmp_path, capsys):
    import onnx
    from onnx import TensorProto as T

    d = tmp_path / "model"
    d.mkdir()
    path = str(d / "ext.onnx")
    onnx.save(_net(), path, save_as_external_data=True, location="ext.bin", size_threshold=0)
    spec = costmodel.from_onnx(path)
    assert costmodel.analyze(spec).totals["macs"] == PER_IMAGE
    with open(d / "ext.bin", "r+b") as fh:  # short: the 4·3·3·3 · 4 = 432 bytes of w are not all there
        fh.truncate(50)
    _refused(*_cli(capsys, "import", path), "'w'", "Conv '/stem/Conv'", "432")
    (tmp_path / "secret.bin").write_bytes(b"\0" * 1000)
    for location in ("../secret.bin", str(tmp_path / "secret.bin")):
        m = _net()
        t = m.graph.initializer[0]
        t.ClearField("raw_data")
        t.data_location = T.EXTERNAL
        entry = t.external_data.add()
        entry.key, entry.value = "location", location
        _refused(*_cli(capsys, "import", _save(m, d / "out.onnx")), "not a file inside the model's directory")


@needs_onnx
def test_onnx_non_regular_files_are_refused_unread(tmp_path, capsys):
    link = tmp_path / "zero.onnx"
    link.symlink_to("/dev/zero")
    _refused(*_cli(capsys, "import", str(link)), "not a regular file")
    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)  # opening it would block: it is never opened
    _refused(*_cli(capsys, "import", str(fifo)), "not a regular file")
    (tmp_path / "dir.onnx").mkdir()
    _refused(*_cli(capsys, "import", str(tmp_path / "dir.onnx")), "not a regular file")


@needs_onnx
def test_onnx_node_names_with_newlines_forge_no_line(tmp_path, capsys):
    m = _net(act="Softsign", act_name="/a\ncostmodel: error: forged\x1b[31m/Softsign")
    path = _save(m, tmp_path / "evil\nname.onnx")
    status, out, err = _cli(capsys, "import", path, "--partial")
    assert status == 0, err
    assert "\x1b" not in out + err
    lines = err.splitlines()
    assert lines and all(line.startswith("costmodel: warning: ") for line in lines[:-1]), err
    assert lines[-1].startswith("costmodel: the spec covers "), err
    assert len(lines) == len(costmodel.import_report(costmodel.from_onnx(path)).warnings())
    spec = costmodel.loads(out)
    assert costmodel.analyze(spec).totals["macs"] == PER_IMAGE


@needs_onnx
def test_onnx_subgraphs_are_named_and_not_covered(tmp_path, capsys):
    """A conv inside an If's then_branch: named with what the branches hold, and its MACs are the model's
    but not the spec's, so coverage is below 100%."""
    np = pytest.importorskip("numpy")
    pytest.importorskip("onnx")
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    cw = nh.from_array(np.ones((4, 4, 3, 3), np.float32), "cw")
    out_t = h.make_tensor_value_info("t_out", T.FLOAT, [1, 4, 8, 8])
    then = h.make_graph(
        [h.make_node("Conv", ["r", "cw"], ["t_out"], name="/then/Conv", pads=[1] * 4)], "t", [], [out_t], [cw]
    )
    out_e = h.make_tensor_value_info("e_out", T.FLOAT, [1, 4, 8, 8])
    other = h.make_graph([h.make_node("Identity", ["r"], ["e_out"], name="/else/Id")], "e", [], [out_e])
    m = _net()
    nodes = list(m.graph.node)
    m.graph.initializer.append(nh.from_array(np.array(True), "cond"))
    branch = h.make_node("If", ["cond"], ["r2"], name="/blk/If", then_branch=then, else_branch=other)
    nodes[2].input[0] = "r2"
    del m.graph.node[:]
    m.graph.node.extend([*nodes[:2], branch, *nodes[2:]])
    path = _save(m, tmp_path / "if.onnx")
    report = costmodel.import_report(costmodel.from_onnx(path))
    then_macs = 4 * 8 * 8 * 4 * 3 * 3  # 9,216: the larger branch
    assert report.source["macs"] == PER_IMAGE + then_macs
    assert report.source["params"] == 4 * 3 * 3 * 3 + 4 * 2 + 4 * 4 * 3 * 3
    assert not report.exact and report.coverage("macs") < 1
    status, out, err = _cli(capsys, "import", path)
    assert (status, out) == (2, "") and "first uncovered: " in err.splitlines()[-1]  # not exact: refused
    status, out, err = _cli(capsys, "import", path, "--partial")
    assert status == 0
    assert "If '/blk/If'" in err and "then_branch: 1 node (Conv)" in err and "else_branch: 1 node (Identity)" in err
    assert "100.00% of the model's MACs" not in err


def _wrapped(node, inits):
    """_net with ``node`` (reading the activation ``r``, writing ``r2``) between the activation and the pool."""
    m = _net()
    nodes = list(m.graph.node)
    m.graph.initializer.extend(inits)
    nodes[2].input[0] = "r2"
    del m.graph.node[:]
    m.graph.node.extend([*nodes[:2], node, *nodes[2:]])
    return m


def _body(name, inputs, outputs, conv, ident):
    """A subgraph with the given inputs and outputs ((name, type, dims), in ONNX's order): a 3×3 conv 4→4,
    padding 1, ``conv`` = (its input, its output) on the 1×4×8×8 map (9,216 MACs, 144 weights), and an Identity
    ``ident`` = (input, output) passing the other value through."""
    np = pytest.importorskip("numpy")
    from onnx import helper as h
    from onnx import numpy_helper as nh

    cw = nh.from_array(np.ones((4, 4, 3, 3), np.float32), f"{name}_w")
    nodes = [
        h.make_node("Conv", [conv[0], f"{name}_w"], [conv[1]], name=f"/{name}/Conv", pads=[1] * 4),
        h.make_node("Identity", [ident[0]], [ident[1]], name=f"/{name}/Id"),
    ]
    return h.make_graph(
        nodes,
        name,
        [h.make_tensor_value_info(*x) for x in inputs],
        [h.make_tensor_value_info(*x) for x in outputs],
        [cw],
    )


BODY_MACS, BODY_PARAMS = 4 * 8 * 8 * 4 * 3 * 3, 4 * 4 * 3 * 3  # 9,216 and 144


@needs_onnx
@pytest.mark.parametrize("op", ["Loop", "Scan"])
def test_onnx_loop_and_scan_are_named_and_not_covered(op, tmp_path, capsys):
    """A Loop (trip count 3) and a Scan (a 5-step sequence) whose body convolves the carried map: each is named with
    what its body holds, its MACs are the model's (× the trip count or the sequence length) but not the spec's,
    and the graph after it is read on (ONNX's inference leaves a Loop's carried shape unknown: it is the shape
    the initial value and the body's output both declare). Refused without --partial."""
    np = pytest.importorskip("numpy")
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    fmap = [1, 4, 8, 8]
    if op == "Loop":  # body inputs (iteration, cond, carried map), outputs (cond, carried map)
        body = _body(
            "body",
            [("i", T.INT64, []), ("c_in", T.BOOL, []), ("r_in", T.FLOAT, fmap)],
            [("c_out", T.BOOL, []), ("r_out", T.FLOAT, fmap)],
            ("r_in", "r_out"),
            ("c_in", "c_out"),
        )
        node = h.make_node("Loop", ["trip", "cond", "r"], ["r2"], name="/blk/Loop", body=body)
        inits = [nh.from_array(np.array(3, np.int64), "trip"), nh.from_array(np.array(True), "cond")]
        times = 3
    else:
        body = _body(  # inputs (state map, one scan element), outputs (state map, one scan output element)
            "sb",
            [("s_in", T.FLOAT, fmap), ("e", T.FLOAT, [2])],
            [("s_out", T.FLOAT, fmap), ("e_out", T.FLOAT, [2])],
            ("s_in", "s_out"),
            ("e", "e_out"),
        )
        node = h.make_node("Scan", ["r", "seq"], ["r2", "ys"], name="/blk/Scan", body=body, num_scan_inputs=1)
        inits = [nh.from_array(np.ones((5, 2), np.float32), "seq")]
        times = 5
    path = _save(_wrapped(node, inits), tmp_path / f"{op}.onnx")
    report = costmodel.import_report(costmodel.from_onnx(path))
    assert report.source["macs"] == PER_IMAGE + times * BODY_MACS  # 6,920 + 3 · 9,216 or 5 · 9,216
    # the Scan also reads the 5×2 float initializer ``seq``: 10 elements, params as every float initializer a node
    # reads (the module docstring's rule)
    assert report.source["params"] == 4 * 3 * 3 * 3 + 4 * 2 + BODY_PARAMS + (10 if op == "Scan" else 0)
    assert report.spec["macs"] == PER_IMAGE and not report.exact
    status, out, err = _cli(capsys, "import", path)
    assert (status, out) == (2, "") and "first uncovered: " in err.splitlines()[-1]
    status, out, err = _cli(capsys, "import", path, "--partial")
    assert status == 0, err
    assert f"{op} '/blk/{op}'" in err and "body: 2 nodes (Conv, Identity)" in err
    assert f"not covered: {times * BODY_MACS:,} MACs, {BODY_PARAMS} params" in err
    assert "100.00% of the model's MACs" not in err


@needs_onnx
def test_onnx_input_and_kwargs_are_refused_by_the_library_too(tmp_path):
    path = _save(_net(), tmp_path / "m.onnx")
    for kw in ({"input": (3, 16, 16)}, {"kwargs": {"a": 1}}):
        with pytest.raises(costmodel.UsageError, match="does not apply to an ONNX file"):
            costmodel.import_model(path, **kw)
    spec = costmodel.import_model(path, symbolic_resolution=True)  # applies: the H and W of the graph's input
    assert (spec.input.height, spec.input.width, spec.input.batch) == ("H", "W", 1)
    assert costmodel.analyze(spec, H=8, W=8).totals["macs"] == PER_IMAGE


def test_what_the_users_code_prints_goes_to_stderr_not_into_the_spec(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    name = f"printing_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(
        "from torch import nn\n\n"
        "class M(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        print('hello from __init__')\n"
        "        self.c = nn.Conv2d(3, 4, 3)\n\n"
        "    def forward(self, x):\n"
        "        print('hello from forward')\n"
        "        return self.c(x)\n\n"
        "def build():\n    return M()\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        status, out, err = _cli(capsys, "import", f"{name}:build", "--input", "3x8x8")
    finally:
        sys.modules.pop(name, None)
    assert status == 0
    assert "hello" not in out and "hello from __init__" in err and "hello from forward" in err
    assert costmodel.analyze(costmodel.loads(out)).totals["macs"] == 4 * 6 * 6 * 3 * 3 * 3  # 3,888


def test_convmixer_block_does_not_escape_a_stopiteration(blocks_only):
    """#22: ConvMixer's conv → GELU → BN (the norm after the act) inside a residual made match_fused read
    ``.conv`` of a norm unit: a StopIteration escaped recognise.py. Now it imports; what it cannot say is named."""
    torch = pytest.importorskip("torch")
    from torch import nn

    class Res(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x) + x

    d = 8
    model = nn.Sequential(
        nn.Conv2d(3, d, 2, stride=2),
        nn.GELU(),
        nn.BatchNorm2d(d),
        Res(nn.Sequential(nn.Conv2d(d, d, 3, groups=d, padding=1), nn.GELU(), nn.BatchNorm2d(d))),
        nn.Conv2d(d, d, 1),
        nn.GELU(),
        nn.BatchNorm2d(d),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(d, 4),
    )
    report = costmodel.import_report(costmodel.from_torch(model, (3, 8, 8)))
    params, macs, output = _torch_figures(model, (3, 8, 8))
    assert (report.source["params"], report.source["macs"], report.source["output"]) == (params, macs, output)
    assert any("residual add" in str(p) for p in report.problems)
    assert torch is not None


def test_a_stopiteration_inside_the_recogniser_is_one_usage_error(monkeypatch, blocks_only):
    pytest.importorskip("torch")
    from torch import nn

    from costmodel.importers import core

    def broken(nodes, output):
        raise StopIteration

    monkeypatch.setattr(core, "recognise", broken)
    with pytest.raises(costmodel.UsageError, match="does not handle"):
        costmodel.from_torch(nn.Sequential(nn.Conv2d(3, 4, 3)), (3, 8, 8))


@needs_onnx
def test_onnx_input_sizes_have_the_input_bound(tmp_path, capsys):
    m = _net()
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 10**9
    _refused(*_cli(capsys, "import", _save(m, tmp_path / "huge.onnx")), "65,536")


@pytest.mark.parametrize("builder", ["eca", "tied", "evil_name"])
def test_the_22_failures_import_exactly_as_op_graphs(user, builder):
    """#22: ECA's 1-D conv, tied weights (counted once, as torch does) and a module name with control characters
    import exactly as op graphs: params, MACs and output equal torch's."""
    import importlib

    spec = costmodel.import_model(f"{user}:{builder}", (3, 8, 8))  # exact, or ImportFailure (imports the module)
    model = getattr(importlib.import_module(user), builder)()
    r = costmodel.analyze(spec)
    assert (r.totals["params"], r.totals["macs"], tuple(r.output)) == _torch_figures(model, (3, 8, 8))


@pytest.fixture
def blocks_only(monkeypatch):
    """The block recogniser alone, without the op-graph fallback (#22): what it says and names by itself."""
    importer = pytest.importorskip("costmodel.importers.torch")
    monkeypatch.setattr(importer, "GRAPH_FALLBACK", False)
