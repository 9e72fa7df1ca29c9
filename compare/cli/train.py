"""``compare train``: train scratch, torch or both on MNIST, logging to TensorBoard; or continue
a run with ``--resume``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import compare.cli.flags as flags
import compare.cli.resume as resume
from compare.cli.flags import DEFAULT_DATA_DIR, UsageError
from compare.data import DATASETS, Splits
from compare.data.files import SAMPLE, SAMPLE_DIR, DataNotFoundError
from compare.errors import InterruptionError
from compare.harness.arch import Architecture, parse_dtype
from compare.training.config import BEGINNING, SCHEDULES, Position, TrainConfig
from compare.training.optimizers import OPTIMIZER_NAMES, OptimizerSpec
from compare.training.run_dir import discard_run_dir, missing_folders, reserve_run_dir, run_lock

if TYPE_CHECKING:
    from compare.training.loop import Run


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train scratch, torch or both on MNIST")
    parser.add_argument("--backend", choices=["scratch", "torch", "both"], default="both")
    flags.add_network_flags(parser, dtype="float32")
    parser.add_argument("--epochs", type=flags.positive_int, default=10)
    parser.add_argument("--batch-size", type=flags.positive_int, default=64)
    parser.add_argument("--lr", type=flags.positive_float, default=0.1)
    parser.add_argument("--optimizer", choices=OPTIMIZER_NAMES, default="sgd")
    parser.add_argument("--momentum", type=flags.momentum_factor, default=None,
                        help="for --optimizer momentum (default 0.9)")
    parser.add_argument("--nesterov", action="store_true", help="for --optimizer momentum")
    parser.add_argument("--weight-decay", type=flags.non_negative_float, default=None,
                        help="L2 for sgd, momentum and adam, decoupled for adamw (default 0, "
                             "0.01 for adamw as in torch.optim)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="constant",
                        help="learning rate per epoch: constant, or cosine decay to 0")
    parser.add_argument("--patience", type=flags.positive_int, default=None, metavar="N",
                        help="stop once the validation loss has not improved for N epochs (of "
                             "every twin), keeping the best epoch's checkpoint-best beside the "
                             "last checkpoint")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                        help="for the torch backend; scratch always runs on the CPU")
    parser.add_argument("--data-dir", default=None,
                        help=f"dataset root or folder of IDX files (default {DEFAULT_DATA_DIR}/; "
                             f"when left out and MNIST is neither there nor downloadable, the "
                             f"bundled sample is used)")
    parser.add_argument("--dataset", choices=list(DATASETS), default="mnist")
    parser.add_argument("--no-download", action="store_true", help="never use the network")
    parser.add_argument("--val-size", type=flags.non_negative_int, default=None,
                        help="validation images carved from the training set (default 5000, "
                             "or 10%% when the training set is smaller than 50,000; "
                             "0: train on all of it and log no validation figures)")
    parser.add_argument("--logdir", default="runs")
    parser.add_argument("--run-name", type=flags.run_name, default=None)
    parser.add_argument("--no-insight", action="store_true",
                        help="log only the epoch curves: no per-step curves, neuron images, dead "
                             "units or mistakes")
    parser.add_argument("--lockstep", action="store_true",
                        help="compare the twins after every step (needs --backend both)")
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue the run in RUN_DIR with its own settings (only "
                             f"{', '.join(resume.RESUME_FLAGS)} may be given)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per backend at the end")
    parser.set_defaults(run=run, parser=parser)


def check_flags(args: argparse.Namespace) -> Architecture:
    """Every flag and combination, before any work starts; the network the flags describe."""
    arch = flags.classifier(args)
    arch.check_batch_size(args.batch_size)
    if args.lockstep and args.backend != "both":
        raise UsageError("--lockstep compares the twins step by step: it needs --backend both")
    if args.optimizer != "momentum":
        for flag, value in [("--momentum", args.momentum), ("--nesterov", args.nesterov)]:
            if value not in (None, False):
                raise UsageError(f"{flag} is a setting of --optimizer momentum, not of "
                                 f"--optimizer {args.optimizer}")
    if args.dataset == SAMPLE and args.data_dir is not None:
        raise UsageError(f"--dataset {SAMPLE} is bundled with the program: leave out --data-dir")
    flags.check_logdir(args.logdir)
    if args.data_dir is not None:
        flags.check_path("--data-dir", args.data_dir)
    check_patience(args.patience, args.val_size)
    return arch


def check_patience(patience: int | None, val_size: int | None) -> None:
    """``--patience`` watches the validation loss: refuse it when the run has no validation
    split (``val_size`` 0; None: the default size, not known before the data is read)."""
    if patience is not None and val_size == 0:
        raise UsageError(f"--patience {patience}: early stopping watches the validation loss, "
                         "but the run has no validation split (--val-size 0, or a training set "
                         "too small for the default one); pass --val-size N or leave out "
                         "--patience")


def train_config(args: argparse.Namespace, arch: Architecture, device: str) -> TrainConfig:
    given = {} if args.momentum is None else {"momentum": args.momentum}
    optimizer = OptimizerSpec.create(args.optimizer, args.lr, nesterov=args.nesterov,
                                     weight_decay=args.weight_decay, **given)
    check_weight_decay(optimizer, args.dtype)
    return TrainConfig(arch, optimizer, args.epochs, args.batch_size, args.seed, args.dtype,
                       device, args.schedule, args.patience)


def check_weight_decay(optimizer: OptimizerSpec, dtype: str) -> None:
    """Refuse a weight decay that makes training diverge by itself, whatever the data."""
    decay = optimizer.settings["weight_decay"]
    limit, why = optimizer.weight_decay_limit(dtype)
    if decay >= limit:
        raise UsageError(f"--weight-decay {decay:g}: training diverges whatever the data ({why});"
                         f" choose a weight decay below {limit:.3g}")


def load_data(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[Splits, str]:
    """The splits and the dataset they are; the bundled sample when ``--data-dir`` was left out
    and MNIST is neither in data/ nor downloadable."""
    from compare.data import load_splits

    def load(data_dir: Path, dataset: str) -> Splits:
        return load_splits(data_dir, dataset, val_size=args.val_size, seed=args.seed,
                           dtype=parse_dtype(args.dtype), download_missing=not args.no_download)

    try:
        return load(Path(args.data_dir or DEFAULT_DATA_DIR), args.dataset), args.dataset
    except DataNotFoundError:
        if args.data_dir is not None or args.dataset != "mnist":
            raise
    splits = load(SAMPLE_DIR, SAMPLE)
    log(f"mnist: not in {DEFAULT_DATA_DIR}/ and not downloadable: training on the bundled sample "
        f"of {len(splits.train_y) + len(splits.val_y)} training and {len(splits.test_y)} test "
        f"images instead (for the full set, put its IDX files in {DEFAULT_DATA_DIR}/MNIST/raw/)")
    return splits, SAMPLE


def run_meta(args: argparse.Namespace, config: TrainConfig, splits: Splits, dataset: str,
             backends: list[str]) -> dict:
    """What a checkpoint needs to rebuild the network and its data, and to continue the run."""
    data_dir = SAMPLE_DIR if dataset == SAMPLE else Path(args.data_dir or DEFAULT_DATA_DIR)
    return {**config.arch.to_meta(), "dtype": config.dtype, "dataset": dataset,
            "data_dir": str(data_dir.resolve()),
            "val_size": len(splits.val_y), "seed": config.seed, "mean": splits.mean,
            "std": splits.std,
            "sizes": f"{len(splits.train_y)} / {len(splits.val_y)} / {len(splits.test_y)}",
            "config": config.to_json(), "backends": backends, "lockstep": args.lockstep,
            "insight": not args.no_insight}


def run_name_part(arch: Architecture) -> str:
    """The activation in a run's default name, its settings' values after it: ``relu``,
    ``leaky_relu0.1``."""
    return arch.activation + "".join(f"{value:g}" for _, value in arch.activation_settings)


def run(args: argparse.Namespace) -> int:
    from compare.training.build import check_memory
    from compare.training.loop import Run
    from compare.training.twin import Twin

    if args.resume is not None:
        return continue_run(args)
    arch = check_flags(args)
    backends = ["scratch", "torch"] if args.backend == "both" else [args.backend]
    device = flags.resolve_device(args.device) if "torch" in backends else "cpu"
    config = train_config(args, arch, device)
    out = flags.output(args)
    splits, dataset = load_data(args, lambda line: print(line, file=out))
    check_memory(config, backends, len(splits.train_y))
    flags.check_input_width(arch, splits.train_x.shape[1], dataset)
    check_patience(args.patience, len(splits.val_y))
    arch.check_batch_size(args.batch_size, len(splits.train_y))
    meta = run_meta(args, config, splits, dataset, backends)
    made = missing_folders(Path(args.logdir))
    run_dir = reserve_run_dir(Path(args.logdir), args.run_name or (
        f"{dataset}-{arch.spec}-{run_name_part(arch)}-{args.optimizer}-lr{args.lr:g}"
        f"-bs{args.batch_size}-{args.dtype}-seed{args.seed}"))
    try:  # a run stopped before its first checkpoint leaves no folder behind
        with run_lock(run_dir):
            print(f"{dataset} from {splits.source['train_images'].parent}: train/val/test "
                  f"{meta['sizes']}, pixels normalized with mean {splits.mean:.4f}, std "
                  f"{splits.std:.4f}; logging to {run_dir}", file=out, flush=True)
            twins = [Twin.new(name, config, splits) for name in backends]
            return train_run(args, Run(twins, config, splits, run_dir, meta, meta["insight"],
                                       meta["lockstep"]))
    except BaseException:
        if not any(run_dir.glob("*/checkpoint.*")):
            discard_run_dir(run_dir, made)
        raise


def continue_run(args: argparse.Namespace) -> int:
    """``--resume``: the run in its folder, held by this process while it trains."""
    given = flags.given(args.parser, args.argv)
    run_dir = resume.run_folder(args, given)
    with run_lock(run_dir):
        run, start = resume.restart(args, given, run_dir)
        return train_run(args, run, start)


def train_run(args: argparse.Namespace, run: Run, start: Position = BEGINNING) -> int:
    """Train ``run`` (its folder held by the caller) from ``start``, printing its lines (and
    with ``--json`` each twin's result)."""
    from compare.training.loop import train

    out = flags.output(args)
    run.log = lambda line: print(line, file=out, flush=True)
    run.show_progress = not args.json
    try:
        histories = train(run, start)
    except InterruptionError as interrupted:
        raise InterruptionError(f"{interrupted}; resume with: {resume.resume_command(run.folder)}"
                                ) from None
    for history in histories if args.json else []:
        print(history.to_json())
    return 0
