"""Minimal TensorBoard event-file writer that needs neither PyTorch nor TensorFlow.

It is built only on the ``tensorboard`` pip package, whose protocol buffers describe the
summaries. The public API mirrors ``torch.utils.tensorboard.SummaryWriter`` so that the NumPy
and the PyTorch runs log the same way, with one difference: :meth:`SummaryWriter.add_hparams`
writes into the run folder itself instead of a new sub-folder.

:class:`EventFile` writes the file itself, in TensorBoard's record format, as ``tensorboard``'s
``EventFileWriter`` does but in the calling thread. Every record carries a CRC32C checksum:
``tensorboard`` computes it in pure Python, which made the checksum of one image cost more than
drawing it, so the file takes ``google-crc32c``'s C implementation (the same checksum, see the
tests) and no module of ``tensorboard`` is patched.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

import google_crc32c
import numpy as np
from tensorboard.compat.proto import (
    event_pb2,
    summary_pb2,
    tensor_pb2,
    tensor_shape_pb2,
    types_pb2,
)
from tensorboard.compat.proto.histogram_pb2 import HistogramProto
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalar_metadata
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.text import metadata as text_metadata

HParamValue = float | int | str | bool
FILE_NUMBERS = itertools.count()
"""Tells apart the event files one process opens in one second."""


def masked_crc32c(data: bytes) -> int:
    """The record checksum of the TFRecord format: CRC32C, rotated and offset ("masked")."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class EventFile:
    """One event file in ``folder``, named as TensorBoard's writers name theirs (``filename_suffix``
    last), each event written as a TFRecord: its length, the length's checksum, the serialized
    event and its checksum (little-endian)."""

    def __init__(self, folder: Path, filename_suffix: str = "") -> None:
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{next(FILE_NUMBERS)}{filename_suffix}")
        self.path = folder / name
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def write(self, event: event_pb2.Event) -> None:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._file.write(header + struct.pack("<I", masked_crc32c(header)) + data +
                         struct.pack("<I", masked_crc32c(data)))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _histogram_proto(values: np.ndarray, bins: int) -> HistogramProto:
    """Summarise ``values`` as a ``HistogramProto`` with ``bins`` equal-width buckets.

    ``bucket_limit[i]`` is the right edge of ``bucket[i]``; the left edge of the first
    bucket is ``min``, as TensorBoard expects.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0:
        raise ValueError("cannot log a histogram of an empty array")
    if not np.all(np.isfinite(flat)):
        raise ValueError("cannot log a histogram of values containing NaN or infinity")
    try:
        counts, edges = np.histogram(flat, bins=bins)
    except ValueError:  # a range too narrow for its magnitude (3e38 ± 0.5) has no finite bins
        counts, edges = np.array([flat.size]), np.array([flat.min(), flat.max()])
    return HistogramProto(
        min=float(flat.min()),
        max=float(flat.max()),
        num=float(flat.size),
        sum=float(flat.sum()),
        sum_squares=float(np.dot(flat, flat)),
        bucket_limit=edges[1:].tolist(),
        bucket=counts.astype(np.float64).tolist(),
    )


def _string_tensor(data: bytes) -> tensor_pb2.TensorProto:
    """Return a scalar string tensor holding ``data``."""
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(),
        string_val=[data],
    )


def _hparam_data_type(value: HParamValue) -> int:
    """Return the HParams plugin data type of a hyperparameter value."""
    if isinstance(value, bool):
        return api_pb2.DATA_TYPE_BOOL
    if isinstance(value, int | float):
        return api_pb2.DATA_TYPE_FLOAT64
    if isinstance(value, str):
        return api_pb2.DATA_TYPE_STRING
    raise TypeError(f"unsupported hyperparameter type {type(value).__name__}: {value!r}")


def _hparams_value(tag: str, data: plugin_data_pb2.HParamsPluginData) -> summary_pb2.Summary.Value:
    """Wrap HParams plugin data in a summary value, the way the HParams plugin reads it."""
    return summary_pb2.Summary.Value(
        tag=tag,
        metadata=hparams_metadata.create_summary_metadata(data),
        tensor=hparams_metadata.NULL_TENSOR,
    )


def _experiment(hparams: dict[str, HParamValue], metrics: dict[str, float], now: float
                ) -> api_pb2.Experiment:
    """The HParams plugin's description of the hyperparameters and metrics."""
    return api_pb2.Experiment(
        time_created_secs=now,
        hparam_infos=[api_pb2.HParamInfo(name=name, type=_hparam_data_type(value))
                      for name, value in hparams.items()],
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metrics],
    )


def _session_start(hparams: dict[str, HParamValue], now: float
                   ) -> plugin_data_pb2.SessionStartInfo:
    """This run's hyperparameter values."""
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=now)
    for name, value in hparams.items():
        if isinstance(value, bool):
            start.hparams[name].bool_value = value
        elif isinstance(value, str):
            start.hparams[name].string_value = value
        else:
            start.hparams[name].number_value = float(value)
    return start


def written_points(folder: Path, pattern: str = "*tfevents*") -> frozenset[tuple[str, int]]:
    """(tag, step) of every value in the event files of ``folder`` matching ``pattern`` (a
    record cut short by a killed process ends its file, as in TensorBoard)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return frozenset((value.tag, event.step) for path in sorted(folder.glob(pattern))
                     for event in EventFileLoader(str(path)).Load()
                     for value in event.summary.value)


class SummaryWriter:
    """Write scalars, histograms, images, text, hyperparameters and a custom-scalars layout to a
    TensorBoard run folder.

    Events are buffered; call :meth:`flush` to write them to the file and :meth:`close` (or use
    the writer as a context manager) when done.
    """

    def __init__(self, log_dir: str | Path, filename_suffix: str = "",
                 skip: frozenset[tuple[str, int]] = frozenset()) -> None:
        """Create ``log_dir`` (with parents) and open a new event file inside it, its name
        ending in ``filename_suffix``. Values whose (tag, step) is in ``skip`` are not written
        (a resumed run passes the :func:`written_points` of its folder: no point twice)."""
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self._naming_the_folder():
            self._writer = EventFile(self.log_dir, filename_suffix)
        self._skip = skip

    @contextmanager
    def _naming_the_folder(self) -> Iterator[None]:
        """OS errors of the writes (a full disk, a folder made read-only), with the run
        folder's name when they carry none."""
        try:
            yield
        except OSError as error:
            if error.filename is not None:
                raise
            raise OSError(error.errno, f"{error.strerror} (writing TensorBoard events)",
                          str(self.log_dir)) from error

    def _add_values(self, values: list[summary_pb2.Summary.Value], step: int) -> None:
        """Write one event holding ``values`` at ``step`` (those not written already)."""
        values = [value for value in values if (value.tag, step) not in self._skip]
        if not values:
            return
        event = event_pb2.Event(
            wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values)
        )
        with self._naming_the_folder():
            self._writer.write(event)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        """Log a scalar; TensorBoard stores it as float32."""
        self.add_scalars({tag: value}, step)

    def add_scalars(self, values: dict[str, float], step: int) -> None:
        """Log several scalars of one step in one event (each under its own tag)."""
        self._add_values([summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
                          for tag, value in values.items()], step)

    def add_histogram(self, tag: str, values: np.ndarray, step: int, bins: int = 64) -> None:
        """Log the distribution of ``values`` (any shape, float32 or float64).

        The histogram has ``bins`` equal-width buckets spanning the value range and feeds
        both the Histograms and the Distributions tab. Raises ``ValueError`` if ``values``
        is empty or contains NaN or infinity.
        """
        histo = _histogram_proto(values, bins)
        self._add_values([summary_pb2.Summary.Value(tag=tag, histo=histo)], step)

    def add_image(self, tag: str, png: bytes, height: int, width: int, step: int) -> None:
        """Log an RGB image, already encoded as PNG, for the Images tab."""
        image = summary_pb2.Summary.Image(height=height, width=width, colorspace=3,
                                          encoded_image_string=png)
        self._add_values([summary_pb2.Summary.Value(tag=tag, image=image)], step)

    def add_multiline_charts(self, charts: dict[str, str]) -> None:
        """The Custom Scalars tab's layout: one chart per entry of ``charts`` (title: a regular
        expression), each drawing every scalar whose tag matches on the same axes (one layout a
        run: a second call replaces the first)."""
        layout = layout_pb2.Layout(category=[layout_pb2.Category(title=title, chart=[
            layout_pb2.Chart(title=title, multiline=layout_pb2.MultilineChartContent(
                tag=[tag_pattern]))]) for title, tag_pattern in charts.items()])
        value = summary_pb2.Summary.Value(
            tag=custom_scalar_metadata.CONFIG_SUMMARY_TAG,
            metadata=custom_scalar_metadata.create_summary_metadata(),
            tensor=_string_tensor(layout.SerializeToString()))
        self._add_values([value], 0)

    def add_text(self, tag: str, text: str, step: int = 0) -> None:
        """Log markdown ``text`` for the Text tab."""
        value = summary_pb2.Summary.Value(
            tag=tag,
            metadata=text_metadata.create_summary_metadata(display_name=tag, description=""),
            tensor=_string_tensor(text.encode("utf-8")),
        )
        self._add_values([value], step)

    def add_hparams(
        self,
        hparams: dict[str, HParamValue],
        metrics: dict[str, float],
        step: int = 0,
    ) -> None:
        """Register this run with the HParams tab.

        Writes the HParams plugin's experiment, session-start and session-end summaries
        into this run folder, and each metric as a scalar at ``step`` (name metrics apart
        from training curves, e.g. ``"hparam/accuracy"``, or pass the last training step
        so that the curves stay clean). The HParams tab shows the latest value of each
        metric tag. Hyperparameter values must be ``bool``, ``int``, ``float`` or ``str``.
        """
        now = time.time()
        end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=now)
        plugin_data = {
            hparams_metadata.EXPERIMENT_TAG: plugin_data_pb2.HParamsPluginData(
                experiment=_experiment(hparams, metrics, now)),
            hparams_metadata.SESSION_START_INFO_TAG: plugin_data_pb2.HParamsPluginData(
                session_start_info=_session_start(hparams, now)),
            hparams_metadata.SESSION_END_INFO_TAG: plugin_data_pb2.HParamsPluginData(
                session_end_info=end),
        }
        self._add_values([_hparams_value(tag, data) for tag, data in plugin_data.items()], step)
        for tag, value in metrics.items():
            self.add_scalar(tag, value, step)

    def flush(self) -> None:
        """Write all queued events to disk."""
        with self._naming_the_folder():
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file; closing twice is harmless."""
        with self._naming_the_folder():
            self._writer.close()

    def __enter__(self) -> Self:
        """Return the writer itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the writer."""
        self.close()
