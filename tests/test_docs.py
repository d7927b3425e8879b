"""The docs cannot drift: generated files equal their generator, every example in the README and
in the package's docstrings runs, every catalogue format is documented, and .ci/run runs exactly
the README's test command."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import numpy as np

import lowbit
from lowbit import FORMATS
from lowbit.formats.table import render_markdown

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def read(rel: str) -> str:
    return (ROOT / rel).read_text(encoding="utf-8")


def test_formats_md_is_generated_from_the_catalogue():
    assert read("docs/formats.md") == render_markdown(), (
        "docs/formats.md is stale: run `python -m lowbit.formats.table > docs/formats.md`")


def test_every_catalogue_name_is_documented():
    text = read("README.md") + "".join(p.read_text(encoding="utf-8")
                                       for p in sorted((ROOT / "docs").glob("*.md")))
    missing = [name for name in FORMATS.names() if f"`{name}`" not in text]
    assert not missing


def _fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_examples_run():
    blocks = [b for b in _fenced(README.read_text(encoding="utf-8"), "python") if ">>>" in b]
    assert len(blocks) >= 4
    parser = doctest.DocTestParser()
    test = parser.get_doctest("\n".join(blocks), {}, "README.md", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0 and runner.tries >= 15


def test_docstring_examples_run():
    """Every ``>>>`` example in the package's docstrings runs and prints what it shows."""
    import importlib
    import pkgutil
    tried, failed = 0, []
    for info in pkgutil.walk_packages(lowbit.__path__, "lowbit."):
        module = importlib.import_module(info.name)
        flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        result = doctest.testmod(module, optionflags=flags, report=False)
        tried += result.attempted
        if result.failed:
            failed.append(info.name)
    assert failed == []
    assert tried >= 100  # (the package's examples, not an empty walk)


def test_ci_runs_exactly_the_readme_test_command():
    bash = _fenced(README.read_text(encoding="utf-8"), "bash")
    assert len(bash) >= 2
    run_cmd, test_cmd = (b.strip() for b in bash[:2])
    assert run_cmd.endswith("lowbit demo") and "lowbit formats" in run_cmd
    assert "pytest" in test_cmd
    ci = read(".ci/run")
    assert ci.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in ci
    assert test_cmd in ci.splitlines()


def test_readme_starts_with_the_two_commands():
    head = README.read_text(encoding="utf-8")[:1500]
    assert head.index("pip install -q -e . &&") < head.index("python -m pytest -q")


def test_docs_links_resolve():
    for rel in ["README.md", "docs/index.md", "docs/rounding.md", "docs/formats.md",
                "docs/performance.md", "benchmarks/README.md"]:
        base = (ROOT / rel).parent
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", read(rel)):
            assert (base / target).exists(), f"{rel} links to missing {target}"


def test_index_links_every_doc():
    index = read("docs/index.md")
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md"))
               if p.name != "index.md" and f"]({p.name})" not in index]
    assert not missing, f"docs/index.md does not link {missing}"


def test_performance_md_has_the_quantisers_section():
    text = read("docs/performance.md")
    assert "\n## Quantisers\n" in text


def test_stochastic_rounding_with_few_random_bits_is_unbiased():
    # The README's example, stated as a bound. 1.1f lies nu = 0.4000000238 of the way from 1.0 to
    # 1.25 in e5m2; with N = 8 bits the probability of rounding up is floor(nu * 256) / 256 =
    # 102/256 = 0.3984. Over n = 100000 draws the standard deviation of the observed fraction is
    # sqrt(p (1 - p) / n) = 0.00155, so 0.3984 +- 0.01 is more than 6 sigma.
    x = np.full(100_000, 1.1, np.float32)
    for dtype in (np.float32, np.float64):
        for bits in (8, 16, 40):
            q = lowbit.quantize(x.astype(dtype), "e5m2", "stochastic", seed=0, random_bits=bits)
            p = np.floor(0.4000000238418579 * 2**bits) / 2**bits
            assert abs(float(np.mean(q == 1.25)) - p) < 0.01, (dtype, bits)
