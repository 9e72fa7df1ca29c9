"""The from-scratch twin stays from scratch; the command line behaves."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from compare import cli
from compare.harness import tolerance


def run(*code_or_args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *code_or_args], capture_output=True, text=True, check=False
    )


def test_import_scratch_leaves_torch_out() -> None:
    result = run(
        "-c", "import sys, scratch; scratch.mlp((4, 3, 2)); print('torch' in sys.modules)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_parity_cli_json() -> None:
    result = run(
        "-m",
        "compare",
        "parity",
        "--arch",
        "784-128-64-10",
        "--activation",
        "relu",
        "--dtype",
        "float64",
        "--batch-size",
        "32",
        "--seed",
        "0",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["max_rel_error"] <= 1e-12
    assert {"layer", "tensor", "max_abs_error", "rel_error"} <= report["rows"][0].keys()


def test_parity_cli_table(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["parity", "--arch", "30-8-8-8-8-8-8-8-10", "--activation", "sigmoid"]) == 0
    out = capsys.readouterr().out
    assert "14 Linear" in out and out.rstrip().splitlines()[-1].startswith("PASS")


def test_parity_cli_exits_1_when_out_of_tolerance(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    impossible = tolerance.Tolerance("impossible", max_rel=-1.0)
    monkeypatch.setattr(tolerance, "for_dtype", lambda dtype: impossible)
    assert cli.main(["parity", "--arch", "10-5-3"]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--activation", "gelu"], "--activation"),
        (["--arch", "784-x-10"], "--arch"),
        (["--arch", "784"], "--arch"),
        (["--arch", "784-0-10"], "--arch"),
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "many"], "--batch-size"),
        (["--dtype", "float16"], "--dtype"),
    ],
)
def test_parity_cli_bad_arguments_exit_2_with_one_line(args: list[str], flag: str) -> None:
    result = run("-m", "compare", "parity", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], result.stderr
