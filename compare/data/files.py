"""Finding the four IDX files of a dataset, downloading them when asked, and the MNIST sample
bundled with the package.

Nothing here imports torch or torchvision; :func:`download` fetches the files from torchvision's
mirrors itself (:mod:`compare.data.download`), bounded in time.
"""

from __future__ import annotations

from pathlib import Path

from compare.data.idx import DataError, one_line

SAMPLE = "mnist-sample"
"""The dataset name of the bundled sample of the official MNIST files."""

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
"""Where the bundled sample's four gzipped IDX files are."""

DATASETS: dict[str, str] = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", SAMPLE: "MNIST"}
"""Dataset name (the ``--dataset`` flag) -> torchvision class and folder name."""

NUM_CLASSES = 10
"""Every dataset here has ten classes (the digits; Fashion-MNIST's ten kinds of clothing)."""

FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
"""Role -> IDX file name (without the optional ``.gz``)."""


class DataNotFoundError(DataError):
    """The files of a dataset are not where the user pointed, and could not be downloaded."""


def check_dataset(dataset: str) -> str:
    """Return the torchvision folder name for ``dataset``; DataError naming --dataset otherwise."""
    if dataset not in DATASETS:
        choices = ", ".join(DATASETS)
        raise DataError(f"--dataset {dataset!r} is not known: choose one of {choices}")
    return DATASETS[dataset]


def _candidate_dirs(data_dir: Path, dataset: str) -> list[Path]:
    """Return the folders searched for IDX files, in order: DIR/<torchvision folder>/raw, DIR."""
    return [data_dir / check_dataset(dataset) / "raw", data_dir]


def _find_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` or ``folder/name.gz``, the uncompressed one first; DataError when the
    one there is a folder."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_dir():
            raise DataError(f"{candidate}: is a folder where the IDX file {name} (or {name}.gz) "
                            "should be")
        if candidate.is_file():
            return candidate
    return None


def find_idx_files(data_dir: Path, dataset: str) -> dict[str, Path] | None:
    """Locate the four IDX files of ``dataset`` under ``data_dir``.

    Looks in ``data_dir/<torchvision folder>/raw/`` and then in ``data_dir/``; in each folder a
    file is accepted as NAME or NAME.gz (the uncompressed one wins when both exist).

    Returns:
        role -> path for all four :data:`FILES` from the first folder that holds all four,
        or None when no folder does.

    Raises:
        DataError: ``dataset`` is not one of :data:`DATASETS`, or a folder stands where one of
            the files should be.
    """
    for folder in _candidate_dirs(Path(data_dir), dataset):
        found = {role: _find_file(folder, name) for role, name in FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def not_found_text(data_dir: Path, dataset: str) -> str:
    """Sentence saying which files were looked for where."""
    folders = " and ".join(f"{folder}/" for folder in _candidate_dirs(Path(data_dir), dataset))
    names = ", ".join(FILES.values())
    return (
        f"{dataset} IDX files not found: looked for {names} (each also accepted with .gz) "
        f"in {folders}"
    )


def download(data_dir: Path, dataset: str) -> None:
    """Download ``dataset`` into ``data_dir/<torchvision folder>/raw/`` from torchvision's
    mirrors, bounded in time (see :mod:`compare.data.download`).

    Raises:
        DataNotFoundError: any failure (no network, a silent mirror, the deadline, a bad
            checksum); the message says which files were looked for where, why the download
            failed, and how to supply the files offline. Nothing is left behind.
    """
    from compare.data.download import fetch

    data_dir = Path(data_dir)
    folder = check_dataset(dataset)
    try:
        fetch(folder, data_dir / folder / "raw")
    except Exception as exc:
        offline = (
            f"To provide the files offline, copy the four IDX files into "
            f"{data_dir / folder / 'raw'}/ or {data_dir}/"
        )
        if dataset == "fashion-mnist":
            offline += (
                ", or run `apt-get install dataset-fashion-mnist` and pass "
                "`--data-dir /usr/share/datasets/fashion-mnist`"
            )
        raise DataNotFoundError(
            f"{not_found_text(data_dir, dataset)}; download failed: "
            f"{type(exc).__name__}: {one_line(exc)}. {offline}."
        ) from exc
