"""Faults at the command line's edges: a network that never answers, a bench parent killed, input
the terminal cannot show, a torch that cannot be imported, a closed stdout, odd flag values."""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from compare import cli
from compare.data import download as downloading
from compare.data.files import SAMPLE_DIR, DataNotFoundError, download
from compare.harness.arch import ArchError, Architecture
from tests.conftest import require_mnist
from tests.helpers import ARCH, train

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def one_error_line(err: str) -> str:
    """The single line a failed command prints, checked to be one line with no raw control
    character."""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert all(char.isprintable() for char in err[:-1]), repr(err)
    return err


# ---------------------------------------------------------------- item 5: bounded download


@pytest.fixture
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers; (its URL, the
    connections it accepted)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with server:
            while True:
                try:
                    accepted.append(server.accept()[0])
                except OSError:
                    return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/", accepted
    server.close()
    for connection in accepted:
        connection.close()


def no_network(calls: list[float | None]) -> object:
    """A stand-in for ``urlopen`` that records the timeout it was given and fails as offline."""
    def urlopen(request: object, data: object = None, timeout: float | None = None,
                **_: object) -> object:
        calls.append(timeout)
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    return urlopen


def test_download_bounds_every_socket_operation(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float | None] = []
    monkeypatch.setattr("urllib.request.urlopen", no_network(calls))
    with pytest.raises(DataNotFoundError, match="download failed: DownloadError"):
        download(tmp_path / "data", "mnist")
    assert calls and all(timeout == downloading.SILENCE_SECONDS for timeout in calls), calls
    assert not (tmp_path / "data").exists()


def test_download_offline_fails_without_importing_torchvision(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("urllib.request.urlopen", no_network([]))
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(DataNotFoundError) as info:
        download(tmp_path, "fashion-mnist")
    assert "Name or service not known" in str(info.value)
    assert "torchvision" not in str(info.value)


def test_download_deadline_ends_an_attempt_stuck_anywhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Name resolution has no socket timeout: the deadline bounds the whole attempt."""
    release = threading.Event()

    def stuck(*_: object, **__: object) -> object:
        release.wait(10)
        raise urllib.error.URLError("released")

    monkeypatch.setattr("urllib.request.urlopen", stuck)
    monkeypatch.setattr(downloading, "DEADLINE_SECONDS", 0.2)
    try:
        with pytest.raises(DataNotFoundError, match=r"not complete within 0\.2 s"):
            download(tmp_path / "data", "mnist")
    finally:
        release.set()
    assert not (tmp_path / "data").exists()


def test_download_interrupted_leaves_no_folder(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_: object, **__: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr("urllib.request.urlopen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        download(tmp_path / "data", "mnist")
    assert not (tmp_path / "data").exists()


def test_silent_network_falls_back_to_the_sample(
        silent_server: tuple[str, list[socket.socket]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    url, accepted = silent_server
    monkeypatch.setitem(downloading.MIRRORS, "MNIST", (url, url))
    monkeypatch.setattr(downloading, "SILENCE_SECONDS", 0.3)
    monkeypatch.chdir(tmp_path)
    status = cli.main(["train", "--backend", "scratch", "--arch", "784-8-10", "--epochs", "1",
                       "--batch-size", "500", "--no-insight"])
    out = capsys.readouterr().out
    assert status == 0
    assert "training on the bundled sample" in out
    assert len(accepted) == 2, "each mirror was asked and stayed silent"
    assert not (tmp_path / "data").exists()


class SampleFiles(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, directory=str(SAMPLE_DIR), **kwargs)  # type: ignore[arg-type]

    def log_message(self, *_: object) -> None:
        pass


def test_download_from_a_mirror_checks_and_moves_the_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SampleFiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sums = {path.name: hashlib.md5(path.read_bytes()).hexdigest()
            for path in SAMPLE_DIR.glob("*.gz")}
    monkeypatch.setitem(downloading.MD5, "MNIST", sums)
    monkeypatch.setitem(downloading.MIRRORS, "MNIST",
                        ("http://127.0.0.1:1/", f"http://127.0.0.1:{server.server_port}/"))
    try:
        download(tmp_path, "mnist")
    finally:
        server.shutdown()
    raw = tmp_path / "MNIST" / "raw"
    assert sorted(path.name for path in raw.iterdir()) == sorted(sums)
    assert (raw / "t10k-labels-idx1-ubyte.gz").read_bytes() == (
        SAMPLE_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()


class EndlessFile(http.server.BaseHTTPRequestHandler):
    """Answers every request with bytes that never end (no Content-Length)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        try:
            while True:
                self.wfile.write(bytes(1 << 16))
        except OSError:
            return

    def log_message(self, *_: object) -> None:
        pass


@pytest.mark.parametrize("limit", ["size", "deadline"])
def test_download_stops_reading_past_its_size_or_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str) -> None:
    """Before: a mirror that streams without end kept the download thread writing (into a
    deleted file) long after the fallback, past the deadline too."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EndlessFile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(downloading, "MAX_BYTES", 1 << 20 if limit == "size" else 1 << 40)
    deadline = time.monotonic() + (3600 if limit == "size" else 0.5)
    try:
        with pytest.raises(downloading.DownloadError,
                           match="more than 1 MiB" if limit == "size" else "not complete"):
            downloading.fetch_one(f"http://127.0.0.1:{server.server_port}/f", tmp_path / "f",
                                  "0" * 32, deadline)
    finally:
        server.shutdown()


# ---------------------------------------------------------------- item 7: bench parent killed

PARENT = """
import sys
from compare.bench.runner import Workers
from compare.bench.worker import BenchConfig
from compare.harness.arch import Architecture

config = BenchConfig(sys.argv[1], "mnist", (Architecture.parse(sys.argv[2]),), "float32", 0.1, 0,
                     "cpu")
workers = Workers(config, ["scratch"], 60)
workers.ask("scratch", send=False)
print(workers.processes["scratch"].pid, flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_bench_workers_end_quietly_when_the_parent_dies(data_dir: Path, signum: int) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(data_dir), ARCH], env=ENV,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())  # loaded, waiting for a request
    parent.send_signal(signum)
    parent.wait()
    err = parent.stderr.read()  # to the end: until the worker, which shares it, has exited too
    parent.stdin.close()
    parent.stdout.close()
    assert err == "", err
    assert not running(worker)


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting for a parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


# ---------------------------------------------------------------- item 10: user errors


@pytest.mark.parametrize("spec", ["784-²-10", "784-١٢٨-10", "784-12.8-10"])
def test_arch_accepts_only_ascii_digits(spec: str) -> None:
    with pytest.raises(ArchError, match="--arch"):
        Architecture.parse(spec)


@pytest.mark.parametrize("command", [["parity"], ["train", "--backend", "scratch"]])
def test_arch_with_a_superscript_is_a_user_error(command: list[str], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    assert cli.main([*command, "--arch", "784-²-10", "--logdir", str(tmp_path / "runs")]
                    if command[0] == "train" else [*command, "--arch", "784-²-10"]) == 2
    assert "--arch" in one_error_line(capsys.readouterr().err)


def test_logdir_not_utf8_is_refused_before_anything_is_made(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    logdir = os.fsdecode(bytes(tmp_path) + b"/runs-\xff")
    status, _, err = train(data_dir, logdir, capsys=capsys)  # type: ignore[arg-type]
    assert status == 2
    assert "--logdir" in one_error_line(err) and "UTF-8" in err
    assert os.listdir(tmp_path) == []


def test_run_name_the_terminal_cannot_show_still_trains(data_dir: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "compare", "train", "--backend", "scratch", "--data-dir",
         str(data_dir), "--arch", ARCH, "--epochs", "1", "--logdir", str(tmp_path / "runs"),
         "--run-name", "é"], env={**ENV, "PYTHONIOENCODING": "ascii"}, capture_output=True,
        text=True, encoding="ascii", errors="strict")
    assert result.returncode == 0, result.stderr
    assert "\\xe9" in result.stdout
    assert list((tmp_path / "runs" / "é" / "scratch").glob("checkpoint.*"))


@pytest.mark.parametrize("command", [
    ["train", "--backend", "torch"], ["parity"], ["bench", "--backends", "torch"]])
def test_torch_missing_is_one_line(command: list[str], data_dir: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    data = ["--data-dir", str(data_dir), "--arch", ARCH] if command[0] != "parity" else []
    assert cli.main([*command, *data]) == 2
    assert one_error_line(capsys.readouterr().err).startswith("error: torch cannot be imported")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("raised", [
    "OSError('libtorch_cpu.so: failed to map segment from shared object')", "MemoryError()"])
def test_broken_torch_is_named_not_the_file_it_failed_on(raised: str, tmp_path: Path) -> None:
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(f"raise {raised}\n")
    result = subprocess.run([sys.executable, "-m", "compare", "parity"], capture_output=True,
                            text=True, env={**ENV, "PYTHONPATH": f"{tmp_path}:{ROOT}"})
    assert result.returncode == 2
    err = one_error_line(result.stderr)
    assert err.startswith(f"error: torch cannot be imported: {raised.partition('(')[0]}"), err


# ---------------------------------------------------------------- item 12: smaller


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_weight_decay_that_diverges_names_its_flag(optimizer: str, data_dir: Path,
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    status, _, err = train(data_dir, tmp_path / "runs", "--weight-decay", "1e308",
                           "--optimizer", optimizer, capsys=capsys)
    assert status == 2
    assert one_error_line(err).startswith("error: --weight-decay 1e+308:"), err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", ["a\nb", "red\x1b[31m", "tab\there"])
def test_run_name_with_control_characters_is_refused(name: str, data_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    status = cli.main(["train", "--data-dir", str(data_dir), "--arch", ARCH,
                       "--logdir", str(tmp_path / "runs"), "--run-name", name])
    assert status == 2
    assert "--run-name" in one_error_line(capsys.readouterr().err)


def test_error_lines_escape_control_characters_of_user_input(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    logdir = tmp_path / "a\nb\x1b[2J"
    logdir.write_text("")
    status, _, err = train(data_dir, logdir, capsys=capsys)
    assert status == 2
    assert "a\\nb\\x1b[2J: the name holds control characters" in one_error_line(err)
    assert logdir.is_file(), "nothing made in its place"


def test_dangling_symlink_logdir_is_named(data_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "runs").symlink_to(tmp_path / "gone")
    status, _, err = train(data_dir, tmp_path / "runs", capsys=capsys)
    assert status == 2
    assert "symbolic link" in one_error_line(err) and "gone" in err


def test_batch_larger_than_the_training_set_is_one_batch(data_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    status, results, err = train(data_dir, tmp_path / "runs", "--batch-size", str(10**12),
                                 "--backend", "scratch", capsys=capsys)
    assert status == 0, err
    assert results[0]["test_accuracy"] >= 0


def test_closed_stdout_does_not_stop_training(data_dir: Path, tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head -1` once head has exited: every write fails with EPIPE
    result = subprocess.run(
        [sys.executable, "-m", "compare", "train", "--backend", "both", "--data-dir",
         str(data_dir), "--arch", ARCH, "--epochs", "3", "--logdir", str(tmp_path),
         "--run-name", "run"], env=ENV, stdout=write_end, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for backend in ("scratch", "torch"):
        assert list((tmp_path / "run" / backend).glob("checkpoint.*"))
        assert list((tmp_path / "run" / backend).glob("events.out.tfevents.*"))


def test_stdout_closed_from_the_start_does_not_stop_training(data_dir: Path,
                                                              tmp_path: Path) -> None:
    """``compare train ... >&-``: no stdout at all (Python's ``sys.stdout`` is None)."""
    result = subprocess.run(
        [sys.executable, "-m", "compare", "train", "--backend", "scratch", "--data-dir",
         str(data_dir), "--arch", ARCH, "--epochs", "2", "--logdir", str(tmp_path),
         "--run-name", "run"], env=ENV, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: os.close(1))
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "run" / "scratch").glob("*.summary")), "the run did not finish"


@pytest.mark.parametrize(("args", "flag"), [
    (["--timeout", "1e-300"], "--timeout"), (["--timeout", "0.1"], "--timeout"),
    (["--batch-sizes", "512,512"], "--batch-sizes"),
    (["--batch-sizes", "8,16,8"], "--batch-sizes")])
def test_bench_flags_that_mean_nothing_are_refused(args: list[str], flag: str, data_dir: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    status = cli.main(["bench", "--data-dir", str(data_dir), "--arch", ARCH, "--repeats", "1",
                       "--backends", "scratch", *args])
    assert status == 2
    assert one_error_line(capsys.readouterr().err).startswith(f"error: {flag} ")


# ---------------------------------------------------------------- item 13: help, tests' data


def test_help_says_the_console_script_name(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(sys, "argv", ["/venv/bin/mlp-twins", "--help"])
    with pytest.raises(SystemExit):
        cli.main()
    assert capsys.readouterr().out.startswith("usage: mlp-twins ")


@pytest.mark.parametrize("command", [[], ["train"], ["bench"], ["parity"], ["lesson"],
                                     ["evaluate"]])
def test_help_shows_no_markup(command: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        cli.main([*command, "--help"])
    assert "``" not in capsys.readouterr().out


def test_skip_message_says_what_the_real_data_tests_need(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception) as info:
        require_mnist(tmp_path / "absent")
    message = str(info.value)
    assert str(tmp_path / "absent") in message
    assert "MNIST/raw" in message and "README" in message
