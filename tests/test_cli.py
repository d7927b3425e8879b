"""The ``lowbit`` command line: formats table, demo, gemm-error dispatch and usage errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lowbit import FORMATS
from lowbit.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def row(text: str, name: str) -> list[str]:
    """The whitespace-separated cells of the table line that starts with ``name``."""
    for line in text.splitlines():
        cells = line.split()
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no line for {name!r}")


def test_formats_lists_every_catalogue_name(capsys):
    code, out, _ = run(capsys, "formats")
    assert code == 0
    first_cells = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert set(FORMATS.names()) <= first_cells


@pytest.mark.parametrize("name, cells", [
    # name, bits, e/m, bias, radix, max, min normal, min subnormal, eps, specials, overflow
    ("e4m3fn", ["8", "4/3", "7", "2", "448", "0.015625", "2^-9", "0.125", "FN", "NAN"]),
    ("e5m2", ["8", "5/2", "15", "2", "57344", "2^-14", "2^-16", "0.25", "IEEE", "INFINITY"]),
    ("e4m3fnuz", ["8", "4/3", "8", "2", "240", "0.0078125", "2^-10", "0.125", "FNUZ", "NAN"]),
    ("fp16", ["16", "5/10", "15", "2", "65504", "2^-14", "2^-24", "2^-10", "IEEE", "INFINITY"]),
    ("e2m1fn", ["4", "2/1", "1", "2", "6", "1", "0.5", "0.5", "NONE", "SATURATE"]),
    ("fp4_r4", ["4", "3/0", "7", "4", "1", "2^-12", "-", "3", "NONE", "SATURATE"]),
])
def test_formats_facts(capsys, name, cells):
    # Facts from the OCP OFP8 spec (E4M3 max 448, E5M2 max 57344), IEEE 754 binary16, the
    # Graphcore/AMD FNUZ paper (E4M3 max 240) and Sun et al. 2020 (radix-4 FP4: 4^-6 .. 4^0).
    _, out, _ = run(capsys, "formats")
    assert row(out, name)[1:] == cells


def test_formats_int_and_block_rows(capsys):
    _, out, _ = run(capsys, "formats")
    assert row(out, "int4")[1:] == ["4", "signed", "-8", "7", "1", "SATURATE"]
    assert row(out, "uint4")[3:5] == ["0", "15"]
    mxfp4 = row(out, "mxfp4")
    assert mxfp4[1:6] == ["e2m1fn", "32", "e8m0fnu", "FLOOR", "4.25"]
    assert row(out, "nvfp4")[1:6] == ["e2m1fn", "16", "ue4m3", "NVFP4", "4.4375"]


def test_formats_markdown_is_the_docs_generator(capsys):
    from lowbit.formats.table import render_markdown
    code, out, _ = run(capsys, "formats", "--markdown")
    assert code == 0
    assert out == render_markdown()
    assert "| `e4m3fn` | 8 | 4/3 | 7 | 2 | 448 |" in out


def test_demo_prints_one_line_per_format(capsys):
    code, out, _ = run(capsys, "demo")
    assert code == 0
    lines = out.splitlines()
    for name in FORMATS.names():
        hits = [ln for ln in lines if ln.split() and ln.split()[0] == name]
        assert len(hits) == 1, name
    e4m3 = row(out, "e4m3fn")
    # 3 mantissa bits: relative error of RNE is at most 2^-4 per element, so the RMS is below it
    assert 0 < float(e4m3[2]) < 2**-4
    assert row(out, "binary32")[2] == "0.000e+00"  # float32 data is exact in binary32
    # columns: name, bits, rel RMS, max err, to zero, clipped, NaN/inf, scaled RMS
    assert row(out, "mxfp8_e4m3_rceil")[5] == "0.00%"  # CEIL scale: amax / scale <= 448
    # OCP FLOOR scale maps a block's amax into [256, 512): those above 448 saturate
    assert float(row(out, "mxfp8_e4m3")[5].rstrip("%")) > 0
    assert row(out, "e8m0fnu")[-1] == "(|x|)"  # unsigned formats quantise |x|


def test_demo_is_deterministic_and_stochastic_seeded(capsys):
    _, a, _ = run(capsys, "demo", "--formats", "e5m2", "int4", "--rounding", "stochastic",
                  "--seed", "3")
    _, b, _ = run(capsys, "demo", "--formats", "e5m2", "int4", "--rounding", "stochastic",
                  "--seed", "3")
    strip = lambda s: re.sub(r"in [0-9.]+ s", "", s)  # noqa: E731
    assert strip(a) == strip(b)
    assert "seed 3" in a


def test_demo_mode_a_format_lacks_is_reported_on_its_line(capsys):
    code, out, _ = run(capsys, "demo", "--formats", "e4m3fn", "binary", "--rounding", "up")
    assert code == 0
    assert row(out, "binary")[1:3] == ["not", "available:"]
    assert float(row(out, "e4m3fn")[2]) > 0


def test_demo_unknown_format_is_a_usage_error(capsys):
    code, _, err = run(capsys, "demo", "--formats", "e4m3")
    assert code == 2
    assert "unknown format 'e4m3'" in err and "e4m3fn" in err


@pytest.mark.parametrize("argv", [[], ["bogus"], ["formats", "--nope"]])
def test_bad_usage_exits_nonzero_with_usage(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert "usage: lowbit" in err


def test_gemm_error_dispatch(capsys):
    code, out, err = run(capsys, "gemm-error", "--help")
    try:
        import lowbit.gemm_error  # noqa: F401
    except ModuleNotFoundError:
        assert code == 2 and "not available" in err
    else:
        assert code == 0 and "usage" in out.lower()
        # the whole first paragraph of the module's docstring, not its first line only
        assert "as a function of K; a table on stdout and a PNG" in " ".join(out.split())


def test_console_script_entry_point():
    # pyproject declares `lowbit = "lowbit.cli:main"`; the install puts it beside the interpreter
    script = Path(sys.executable).with_name("lowbit")
    proc = subprocess.run([str(script), "formats"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert row(proc.stdout, "e4m3fn")[5] == "448"
    proc = subprocess.run([str(script), "frobnicate"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "usage: lowbit" in proc.stderr


def test_formats_needs_neither_numba_nor_torch():
    # the table is derived from the records alone: block numba and torch, then run the command
    code = ("import sys; sys.modules['numba'] = None; sys.modules['torch'] = None\n"
            "from lowbit.cli import main; raise SystemExit(main(['formats', '--markdown']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "| `nvfp4` |" in proc.stdout
