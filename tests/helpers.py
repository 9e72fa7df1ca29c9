"""What the test modules share besides fixtures: IDX writers, a training runner, and one
comparison helper per kind of check, each naming the tolerance it applied."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from compare import cli
from compare.data import FILES
from compare.harness import tolerance
from compare.harness.parity import Row
from compare.harness.twins import StateDict

SHARED_SUBSET = Path(__file__).resolve().parents[2] / "shared/data/mnist-subset"
"""Real MNIST digits beside the project on development machines; tests that use it skip without."""

IMAGE_SIDE = 8
ARCH = f"{IMAGE_SIDE * IMAGE_SIDE}-16-10"
"""The network the training tests train on the ``data_dir`` fixture's 8x8 images."""


# ---------------------------------------------------------------- comparisons


def assert_rows_ok(rows: list[Row], dtype: np.dtype | str, context: str = "") -> None:
    """Layer parity: fail listing every row out of tolerance, naming the tolerance applied."""
    bad = [r for r in rows if not r.ok]
    if bad:
        tol = tolerance.for_dtype(np.dtype(dtype))
        listing = "\n".join(f"  {r.section} {r.layer} {r.tensor}: max abs {r.max_abs_error:.3e}, "
                            f"rel {r.rel_error:.3e}" for r in bad)
        raise AssertionError(f"{context}: {len(bad)} rows outside tolerance ({tol.name}; "
                             f"{tolerance.FINITE_DIFFERENCES.name}):\n{listing}")


def assert_lockstep_close(diffs: list[float], limit: float, context: str) -> None:
    """Optimizer lockstep: the weights' relative difference after every step stays under
    ``limit``; the message names the first step over it."""
    over = [step for step, diff in enumerate(diffs, start=1) if not diff <= limit]
    assert not over, (f"{context}: after step {over[0]} the weights differ by "
                      f"{diffs[over[0] - 1]:.3e} relative, over the limit {limit:g} "
                      f"(max|a-b|/max|b|, float64)")


def assert_states_close(state: StateDict, reference: StateDict, context: str) -> None:
    """Two state dicts hold the same weights to the float64 limit."""
    rel = tolerance.state_rel_diff(state, reference)
    assert rel <= tolerance.FLOAT64_MAX_REL, f"{context}: {rel:.2e} apart; {tolerance.FLOAT64.name}"


# ---------------------------------------------------------------- IDX files


def idx_bytes(array: np.ndarray) -> bytes:
    """Return the IDX encoding of a uint8 array (header + C-order payload)."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    """Write ``array`` as an IDX file at ``path`` (gzipped, at ``path`` + ".gz", when gz)."""
    raw = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def write_dataset(folder: Path, arrays: dict[str, np.ndarray], *, gz: bool = False
                  ) -> dict[str, Path]:
    """Write the four IDX files (arrays keyed like FILES) into ``folder``; return role -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    return {role: write_idx(folder / FILES[role], arr, gz=gz) for role, arr in arrays.items()}


def learnable_images(n: int, rng: np.random.Generator, templates: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images, each its class's template plus noise, and their labels (uint8)."""
    labels = rng.integers(0, len(templates), n)
    noisy = templates[labels] + rng.normal(0, 40, (n, *templates.shape[1:]))
    return np.clip(noisy, 0, 255).astype(np.uint8), labels.astype(np.uint8)


# ---------------------------------------------------------------- training runs


def train(data_dir: Path, logdir: Path, *extra: str, capsys: pytest.CaptureFixture
          ) -> tuple[int, list[dict], str]:
    """Run ``compare train --json`` in process on the ``data_dir`` fixture's 8x8 images; (exit
    status, result objects, stderr)."""
    args = ["train", "--data-dir", str(data_dir), "--arch", ARCH, "--epochs", "2",
            "--batch-size", "32", "--lr", "0.1", "--val-size", "30", "--logdir", str(logdir),
            "--run-name", "run", "--json", *extra]
    status = cli.main(args)
    captured = capsys.readouterr()
    return status, [json.loads(line) for line in captured.out.splitlines()], captured.err


def events(folder: Path) -> EventAccumulator:
    """Every event TensorBoard reads from ``folder``, without down-sampling."""
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0,
                                                               "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator
