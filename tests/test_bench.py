"""The bench command runs both backends in worker processes and reports the documented row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compare import cli
from tests.helpers import ARCH

ROW_KEYS = {"backend", "device", "batch_size", "epoch_seconds", "floor_seconds", "ratio_to_floor",
            "data_seconds", "peak_rss_mib", "test_accuracy", "plain_loop_seconds",
            "ratio_to_plain"}


def test_bench_json_rows(data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    status = cli.main(["bench", "--data-dir", str(data_dir), "--arch", ARCH, "--repeats", "2",
                       "--batch-sizes", "16,32", "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    rows = json.loads(captured.out)["rows"]
    assert [(r["backend"], r["batch_size"]) for r in rows] == [
        ("scratch", 16), ("torch", 16), ("scratch", 32), ("torch", 32)]
    for row in rows:
        assert row.keys() == ROW_KEYS
        assert row["ratio_to_floor"] == pytest.approx(row["epoch_seconds"] / row["floor_seconds"])
        assert row["data_seconds"] > 0  # timed apart from the epoch: under load it may exceed it
        assert row["peak_rss_mib"] > 0 and 0 <= row["test_accuracy"] <= 1
        assert row["plain_loop_seconds"] > 0 and row["ratio_to_plain"] > 0
    assert captured.err.count("repeat") == 8, "2 repeats x 2 batch sizes x 2 backends, logged"


@pytest.mark.parametrize(("args", "flag"), [(["--backends", "jax"], "--backends"),
                                            (["--batch-sizes", "0,32"], "--batch-sizes")])
def test_bench_bad_arguments(data_dir: Path, args: list[str], flag: str,
                             capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["bench", "--data-dir", str(data_dir), "--arch", ARCH, *args]) == 2
    assert flag in capsys.readouterr().err
