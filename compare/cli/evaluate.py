"""``compare evaluate``: the test accuracy of a saved checkpoint, by either twin: a run's last
(``checkpoint.npz`` / ``.pt``) or, trained with ``--patience``, its best epoch's
(``checkpoint-best.npz`` / ``.pt``)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from compare.cli.flags import UsageError, resolve_device, strict_json
from compare.data.files import SAMPLE

if TYPE_CHECKING:
    from compare.training.checkpoint import Checkpoint


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("evaluate", help="test accuracy of a saved checkpoint")
    parser.add_argument("--checkpoint", required=True,
                        help="a checkpoint.npz or checkpoint.pt (the last epoch's), or a "
                             "checkpoint-best.npz or .pt (the best epoch's, with --patience)")
    parser.add_argument("--backend", choices=["scratch", "torch"], default=None,
                        help="the twin that evaluates it (default: the one that wrote it)")
    parser.add_argument("--data-dir", default=None, help="default: where it was trained from")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(run=run)


def read_checkpoint(args: argparse.Namespace) -> Checkpoint:
    """The checkpoint ``--checkpoint`` names, checked to be one of a run with a data folder
    that ``--data-dir`` may replace."""
    from compare.training import checkpoint
    from compare.training.checkpoint_writer import BEST
    from compare.training.config import is_count

    path = Path(args.checkpoint)
    last = path.with_name(f"checkpoint{path.suffix}")
    if path.name == f"{BEST}{path.suffix}" and not path.exists() and last.exists():
        raise checkpoint.CheckpointError(f"{path}: no such checkpoint file: its run was trained "
                                         f"without --patience, which keeps no {BEST}; evaluate "
                                         f"{last}, its last epoch's")
    saved = checkpoint.read(path)
    if "script" in saved.meta:
        raise checkpoint.CheckpointError(
            f"{path}: a run of {saved.meta['script']} from a script, which knows no data folder "
            "to test it on: read it with compare.training.checkpoint (read, then network) and "
            "test it on your splits")
    checkpoint.check_meta(path, saved.meta, checkpoint.DATA_KEYS)
    epoch = saved.meta.get("epoch")
    if not (epoch is None or is_count(epoch)):
        raise checkpoint.CheckpointError(f"{path}: meta 'epoch' should be a count of epochs, "
                                         f"found {epoch!r}")
    if args.data_dir is not None and saved.meta["dataset"] == SAMPLE:
        raise UsageError(f"--data-dir {args.data_dir}: {path} was trained on the bundled "
                         f"{SAMPLE}, which is never read from elsewhere: leave out --data-dir")
    return saved


def run(args: argparse.Namespace) -> int:
    from compare.cli.resume import load_run_data
    from compare.training import checkpoint
    from compare.training.build import evaluation_backend

    saved = read_checkpoint(args)
    path, epoch = saved.path, saved.meta.get("epoch")
    wants_torch = (args.backend or saved.written_by) == "torch"
    model = checkpoint.network(saved, args.backend,
                               device=resolve_device(args.device) if wants_torch else "cpu")
    splits = load_run_data(path, saved.meta, args.data_dir)
    backend = evaluation_backend(model)
    test = backend.evaluate(splits.test_x, splits.test_y)
    loss, accuracy = test.loss, test.accuracy
    if not math.isfinite(loss):
        raise checkpoint.CheckpointError(
            f"{path}: its weights give a test loss of {loss} ({saved.meta['dtype']} overflows): "
            "no accuracy to report from this checkpoint")
    result = {"checkpoint": str(path), "written_by": saved.written_by, "backend": backend.name,
              "epoch": epoch, "test_loss": loss, "test_accuracy": accuracy}
    print(strict_json(result) if args.json else
          f"{path} ({saved.written_by} checkpoint, epoch {epoch}) evaluated by "
          f"{backend.name}: test loss {loss:.4f}, test accuracy {accuracy:.4f}")
    return 0
