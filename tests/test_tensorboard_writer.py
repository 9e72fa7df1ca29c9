"""Round-trip tests for the TensorBoard writer, read back with TensorBoard's own loader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

from compare.insight.tensorboard_writer import SummaryWriter, _histogram_proto
from compare.insight.tensorboard_writer import masked_crc32c as fast_crc

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load(log_dir: Path) -> ea.EventAccumulator:
    """Load every event in ``log_dir`` without TensorBoard's down-sampling."""
    accumulator = ea.EventAccumulator(
        str(log_dir), size_guidance={kind: 0 for kind in ea.DEFAULT_SIZE_GUIDANCE}
    )
    accumulator.Reload()
    return accumulator


def test_scalars_round_trip_as_float32(tmp_path: Path) -> None:
    """Scalars come back with their tags and steps, as the float32 of the logged value."""
    written = {0: 0.1, 1: 1.0 / 3.0, 7: 12345.678901, 100: -2.5e-7}
    with SummaryWriter(tmp_path) as writer:
        for step, value in written.items():
            writer.add_scalar("loss/train", value, step)
        writer.add_scalar("accuracy", np.float32(0.75), 3)

    acc = _load(tmp_path)
    assert sorted(acc.Tags()[ea.SCALARS]) == ["accuracy", "loss/train"]
    events = acc.Scalars("loss/train")
    assert [event.step for event in events] == list(written)
    assert [event.value for event in events] == [float(np.float32(v)) for v in written.values()]
    assert [(event.step, event.value) for event in acc.Scalars("accuracy")] == [(3, 0.75)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_histogram_round_trip(tmp_path: Path, dtype: type[np.floating]) -> None:
    """A histogram of any shape keeps its count, range, sums and bucket layout."""
    values = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(dtype)
    with SummaryWriter(tmp_path) as writer:
        writer.add_histogram("layer0/weights", values, step=2, bins=16)

    events = _load(tmp_path).Histograms("layer0/weights")
    assert [event.step for event in events] == [2]
    histo = events[0].histogram_value
    flat = values.astype(np.float64).ravel()
    assert histo.num == flat.size
    assert histo.min == flat.min()
    assert histo.max == flat.max()
    assert histo.sum == pytest.approx(flat.sum())
    assert histo.sum_squares == pytest.approx(np.sum(flat**2))
    assert len(histo.bucket) == len(histo.bucket_limit) == 16
    assert sum(histo.bucket) == flat.size
    assert histo.bucket_limit[-1] == pytest.approx(flat.max())
    assert list(histo.bucket_limit) == sorted(histo.bucket_limit)


def test_histogram_rejects_empty_and_non_finite(tmp_path: Path) -> None:
    """Empty arrays and arrays with NaN raise ValueError instead of writing junk."""
    with SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match="empty"):
            writer.add_histogram("h", np.array([]), step=0)
        with pytest.raises(ValueError, match="NaN"):
            writer.add_histogram("h", np.array([1.0, np.nan]), step=0)


def test_text_round_trip(tmp_path: Path) -> None:
    """Markdown text is stored as a UTF-8 string tensor for the text plugin."""
    text = "| param | value |\n|---|---|\n| lr | 0.01 |\n\nÜnïcödé ✓"
    with SummaryWriter(tmp_path) as writer:
        writer.add_text("config", text)
        writer.add_text("notes", "second", step=4)

    acc = _load(tmp_path)
    assert acc.SummaryMetadata("config").plugin_data.plugin_name == "text"
    config = acc.Tensors("config")
    assert [event.step for event in config] == [0]
    assert config[0].tensor_proto.string_val[0].decode("utf-8") == text
    notes = acc.Tensors("notes")
    assert [(e.step, e.tensor_proto.string_val[0]) for e in notes] == [(4, b"second")]


def test_hparams_written_into_run_folder(tmp_path: Path) -> None:
    """Hparams summaries and metric scalars land in the run folder itself, not a sub-folder."""
    hparams = {"lr": 0.01, "hidden": 128, "optimizer": "sgd", "bias": True}
    metrics = {"hparam/accuracy": 0.97, "hparam/loss": 0.08}
    with SummaryWriter(tmp_path) as writer:
        writer.add_hparams(hparams, metrics)

    assert [path.is_file() for path in tmp_path.iterdir()] == [True]
    acc = _load(tmp_path)
    content = acc.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    assert set(content) == {
        hparams_metadata.EXPERIMENT_TAG,
        hparams_metadata.SESSION_START_INFO_TAG,
        hparams_metadata.SESSION_END_INFO_TAG,
    }

    experiment = hparams_metadata.parse_experiment_plugin_data(
        content[hparams_metadata.EXPERIMENT_TAG]
    )
    assert {info.name: info.type for info in experiment.hparam_infos} == {
        "lr": api_pb2.DATA_TYPE_FLOAT64,
        "hidden": api_pb2.DATA_TYPE_FLOAT64,
        "optimizer": api_pb2.DATA_TYPE_STRING,
        "bias": api_pb2.DATA_TYPE_BOOL,
    }
    assert [info.name.tag for info in experiment.metric_infos] == list(metrics)

    start = hparams_metadata.parse_session_start_info_plugin_data(
        content[hparams_metadata.SESSION_START_INFO_TAG]
    )
    assert start.hparams["lr"].number_value == 0.01
    assert start.hparams["hidden"].number_value == 128
    assert start.hparams["optimizer"].string_value == "sgd"
    assert start.hparams["bias"].bool_value is True

    end = hparams_metadata.parse_session_end_info_plugin_data(
        content[hparams_metadata.SESSION_END_INFO_TAG]
    )
    assert end.status == api_pb2.STATUS_SUCCESS

    for tag, value in metrics.items():
        assert [(e.step, e.value) for e in acc.Scalars(tag)] == [(0, float(np.float32(value)))]


def test_hparams_rejects_unsupported_type(tmp_path: Path) -> None:
    """A hyperparameter that is not bool, int, float or str raises TypeError."""
    with SummaryWriter(tmp_path) as writer, pytest.raises(TypeError, match="list"):
        writer.add_hparams({"layers": [64, 32]}, {"hparam/loss": 1.0})  # type: ignore[dict-item]


def test_creates_nested_folder_and_close_is_idempotent(tmp_path: Path) -> None:
    """The log folder is created with parents, flush makes data readable, close twice is fine."""
    log_dir = tmp_path / "runs" / "numpy"
    writer = SummaryWriter(log_dir)
    writer.add_scalar("x", 1.0, 0)
    writer.flush()
    assert [e.value for e in _load(log_dir).Scalars("x")] == [1.0]
    writer.close()
    writer.close()


_SUBPROCESS_CODE = """
import json, sys, tempfile
import numpy as np
import compare.insight.tensorboard_writer as tbw
with tempfile.TemporaryDirectory() as log_dir:
    with tbw.SummaryWriter(log_dir) as writer:
        writer.add_scalar("loss", 1.0, 0)
        writer.add_histogram("w", np.ones(10, dtype=np.float32), 0)
        writer.add_text("note", "hi")
        writer.add_hparams({"lr": 0.1}, {"hparam/loss": 1.0})
print(json.dumps({name: name in sys.modules for name in ("torch", "tensorflow")}))
"""


def test_does_not_import_torch_or_tensorflow() -> None:
    """Importing and using the writer pulls in neither torch nor tensorflow."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_CODE],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "torch": False,
        "tensorflow": False,
    }


def test_a_histogram_of_equal_huge_values_has_one_bucket() -> None:
    """numpy cannot make 64 finite bins of 3e38 ± 0.5 (the half is lost to rounding): before,
    a resumed run with such a (finite) bias crashed after its epoch had trained."""
    proto = _histogram_proto(np.full(5, 3e38, np.float32), bins=64)
    assert list(proto.bucket) == [5.0] and proto.min == proto.max == float(np.float32(3e38))


def test_records_carry_tensorboards_own_checksum(tmp_path: Path) -> None:
    """The C checksum is the one tensorboard computes in Python, and each record of a written
    file checks out against it (length, its checksum, data, its checksum)."""
    import struct

    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    for data in (b"", b"a", bytes(range(256)) * 7):
        assert fast_crc(data) == masked_crc32c(data)
    with SummaryWriter(tmp_path) as writer:
        writer.add_scalar("loss", 1.0, 0)
    (path,) = tmp_path.glob("events.out.tfevents.*")
    content, records = path.read_bytes(), 0
    while content:
        header, (length_crc,) = content[:8], struct.unpack("<I", content[8:12])
        (length,) = struct.unpack("<Q", header)
        data, (data_crc,) = content[12:12 + length], struct.unpack(
            "<I", content[12 + length:16 + length])
        assert (length_crc, data_crc) == (masked_crc32c(header), masked_crc32c(data))
        content, records = content[16 + length:], records + 1
    assert records == 2, "the file version, then the scalar"
