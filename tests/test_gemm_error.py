"""The gemm-error command: table, PNG, and the effects it exists to show."""

from __future__ import annotations

from lowbit import gemm_error


def test_gemm_error_shows_swamping_and_its_cure(tmp_path, capsys):
    png = tmp_path / "e.png"
    rc = gemm_error.main(["--datapath", "fp16-acc", "fp16-chunk64", "fp32-acc", "--kmin", "4",
                          "--kmax", "12", "--rows", "2", "--png", str(png)])
    assert rc == 0 and png.stat().st_size > 1000
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.split() and line.split()[0] == "4096").split()
    plain, chunked, fp32 = (float(v) for v in row[1:4])
    assert plain > 10 * chunked > 10 * fp32


def test_gemm_error_rejects_unknown_names(capsys):
    assert gemm_error.main(["--datapath", "nope", "--png", ""]) == 2
    assert gemm_error.main(["--datapath", "list"]) == 0
    assert "fp16-acc" in capsys.readouterr().out
