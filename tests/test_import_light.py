"""Importing lowbit compiles nothing and needs neither numba nor torch; quantize needs numba only
when it is called."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)


def test_import_without_numba_and_torch():
    result = _run("""
        import sys
        sys.modules["numba"] = None   # any import of numba now raises ImportError
        sys.modules["torch"] = None
        import lowbit, lowbit.formats
        from lowbit.formats import round_exact, FORMATS
        assert float(round_exact(464.0, FORMATS["e4m3fn"])) == 448.0
        assert float(lowbit.FORMATS["e2m1fn"].max) == 6.0
        assert "numba" not in {m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}
        try:
            lowbit.quantize([1.0], "e4m3fn")
        except ImportError as e:
            print("IMPORT-ERROR-ON-CALL", e)
        else:
            raise SystemExit("quantize worked without numba?")
    """)
    assert result.returncode == 0, result.stderr
    assert "IMPORT-ERROR-ON-CALL" in result.stdout


def test_import_loads_no_numba_no_torch_and_compiles_nothing():
    result = _run("""
        import sys
        import lowbit, lowbit.formats
        print(sorted(m for m in ("numba", "torch", "llvmlite", "ml_dtypes", "hypothesis")
                     if m in sys.modules))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_testing_oracles_need_no_hypothesis():
    result = _run("""
        import sys
        sys.modules["hypothesis"] = None
        sys.modules["numba"] = None
        from lowbit.testing.oracles import round_exact, neighbours, same_values
        from lowbit import FORMATS
        print(neighbours(5.0, FORMATS["e2m1fn"]))
    """)
    assert result.returncode == 0, result.stderr
    assert "Fraction(4, 1), Fraction(6, 1)" in result.stdout
