"""The bench command runs both backends in worker processes and reports the documented row."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from compare import cli
from compare.bench.runner import BenchRow, network_label, table
from compare.cli import build_parser
from compare.cli.bench import networks_of
from tests.helpers import ARCH

ROW_KEYS = {"backend", "device", "batch_size", "epoch_seconds", "floor_seconds", "ratio_to_floor",
            "data_seconds", "peak_rss_mib", "test_accuracy", "plain_loop_seconds",
            "ratio_to_plain", "norm", "dropout", "ratio_to_plain_network"}


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
        assert (row["norm"], row["dropout"], row["ratio_to_plain_network"]) == ("none", 0, 1)
    assert captured.err.count("repeat") == 8, "2 repeats x 2 batch sizes x 2 backends, logged"


def test_bench_times_the_layers_beside_the_plain_network(data_dir: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """One repeat: each network's ratio to the plain one is the quotient of their epochs."""
    status = cli.main(["bench", "--data-dir", str(data_dir), "--arch", ARCH, "--repeats", "1",
                       "--batch-sizes", "16", "--norm", "batch", "--dropout", "0.2", "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    rows = json.loads(captured.out)["rows"]
    assert [(r["backend"], r["norm"], r["dropout"]) for r in rows] == [
        ("scratch", "none", 0), ("scratch", "batch", 0.2), ("torch", "none", 0),
        ("torch", "batch", 0.2)]
    for plain, layers in (rows[:2], rows[2:]):
        assert plain["ratio_to_plain_network"] == 1
        assert layers["ratio_to_plain_network"] == pytest.approx(
            layers["epoch_seconds"] / plain["epoch_seconds"])
        assert 0 <= layers["test_accuracy"] <= 1 and layers["plain_loop_seconds"] > 0
    assert captured.err.count(", norm batch, dropout 0.2: epoch") == 2, captured.err


def test_the_table_names_the_networks_when_there_are_several() -> None:
    row = BenchRow("scratch", "cpu", 32, 2.0, 1.0, 2.0, 0.1, 90.0, 0.9, 2.0, 1.0)
    assert "network" not in table([row])
    lines = table([row, replace(row, norm="layer", dropout=0.5, ratio_to_plain_network=1.25)]
                  ).splitlines()
    assert lines[0].split()[3] == "network" and lines[0].endswith("vs plain net")
    assert "plain" in lines[1] and lines[1].endswith(" 1.000")
    assert "norm layer, dropout 0.5" in lines[2] and lines[2].endswith(" 1.250")


@pytest.mark.parametrize(("norm", "dropout", "networks"), [
    ("none", "0", ["plain"]), ("batch", "0", ["plain", "norm batch"]),
    ("none", "0.2", ["plain", "dropout 0.2"]),
    ("layer,none", "0.3,0", ["plain", "norm layer, dropout 0.3", "norm layer",
                             "dropout 0.3"])])
def test_the_networks_are_the_plain_one_and_each_combination(norm: str, dropout: str,
                                                             networks: list[str]) -> None:
    args = build_parser().parse_args(["bench", "--norm", norm, "--dropout", dropout, "--init",
                                      "xavier", "--activation", "tanh"])
    found = networks_of(args)
    assert [network_label(arch.norm, arch.dropout) for arch in found] == networks
    assert {(arch.spec, arch.activation, arch.init) for arch in found} == {
        ("784-128-64-10", "tanh", "xavier")}


@pytest.mark.parametrize(("args", "flag"), [
    (["--backends", "jax"], "--backends"), (["--batch-sizes", "0,32"], "--batch-sizes"),
    (["--norm", "group"], "--norm"), (["--norm", "batch,batch"], "--norm"),
    (["--norm", "batch,"], "--norm"), (["--dropout", "1.5"], "--dropout"),
    (["--dropout", "nan"], "--dropout"), (["--dropout", "0.2,x"], "--dropout"),
    (["--dropout", "0.2,0.20"], "--dropout"), (["--init-std", "0.1"], "--init-std"),
    (["--norm", "none,batch", "--batch-sizes", "8,1"], "--batch-sizes 8,1 with --norm batch"),
    (["--epochs", "3"], "--epochs 3: only with --insight"),
    (["--insight", "--norm", "none,batch"], "--norm none,batch --dropout 0 with --insight"),
    (["--insight", "--norm", "batch", "--batch-sizes", "1"], "--batch-sizes 1 with --norm batch"),
    (["--insight", "--epochs", "0"], "--epochs"),
    (["--insight", "--timeout", "5"], "--timeout 5: for the epoch bench's workers"),
    (["--insight", "--batch-sizes", "32,100000"], "--batch-sizes 100000: more than the")])
def test_bench_bad_arguments(data_dir: Path, args: list[str], flag: str,
                             capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["bench", "--data-dir", str(data_dir), "--arch", ARCH, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and flag in err and err.count("\n") == 1, err


@pytest.mark.parametrize(("backends", "twins"), [("scratch", 1), ("scratch,torch", 2)])
def test_bench_insight_times_runs_with_and_without_it(data_dir: Path, backends: str, twins: int,
                                                      capsys: pytest.CaptureFixture) -> None:
    """One 1-epoch repeat per batch size: its ratio is the quotient of its two runs' seconds
    (nothing here is judged by the clock), and the runs are the network and twins asked for."""
    status = cli.main(["bench", "--insight", "--data-dir", str(data_dir), "--arch", ARCH,
                       "--repeats", "1", "--epochs", "1", "--batch-sizes", "16,32", "--backends",
                       backends, "--norm", "batch", "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    rows = json.loads(captured.out)["rows"]
    assert [row["batch_size"] for row in rows] == [16, 32]
    for row in rows:
        assert row["with_insight_seconds"] > 0 and row["without_insight_seconds"] > 0
        assert row["ratio"] == row["ratio_min"] == row["ratio_max"] == pytest.approx(
            row["with_insight_seconds"] / row["without_insight_seconds"])
    header = captured.err.splitlines()[0]
    assert f"1 epoch of {ARCH} relu, norm batch" in header, header
    assert backends.replace(",", " and ") in header, header
    assert captured.err.count("with insight") == 2, "a progress line per repeat and batch size"


def test_bench_insight_says_a_diverged_run_left_nothing_behind(
        data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """Its runs write into a temporary folder: the error names no checkpoint to go back to."""
    assert cli.main(["bench", "--insight", "--data-dir", str(data_dir), "--arch", ARCH,
                     "--repeats", "1", "--epochs", "1", "--backends", "scratch", "--lr",
                     "1e30"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: bench --insight: the run with insight at batch 32 "
                              "diverged (scratch, step "), err
    assert "checkpoint" not in err[-1], err
