"""``compare lesson NAME``: one claim of the tutorials, trained by both twins, with the figures
that show it and a verdict computed from the run; ``--list`` names them all."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import compare.cli.flags as flags
from compare.cli.flags import DEFAULT_DATA_DIR, UsageError
from compare.data import DATASETS
from compare.data.files import SAMPLE

if TYPE_CHECKING:
    from compare.lessons.base import Lesson


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("lesson", help="reproduce a claim of the tutorials")
    parser.add_argument("name", nargs="?", help="the lesson (see --list)")
    parser.add_argument("--list", action="store_true", help="each lesson and its claim")
    parser.add_argument("--backend", choices=["scratch", "torch", "both"], default="both")
    parser.add_argument("--dataset", choices=list(DATASETS), default=SAMPLE,
                        help="default: the bundled MNIST sample")
    parser.add_argument("--data-dir", default=None,
                        help=f"for --dataset mnist or fashion-mnist (default {DEFAULT_DATA_DIR}/)")
    parser.add_argument("--no-download", action="store_true", help="never use the network")
    parser.add_argument("--seed", type=flags.non_negative_int, default=0)
    parser.add_argument("--logdir", default="runs")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (with --list: the names and claims)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from compare.lessons import LESSONS

    if args.list:
        if args.name is not None:
            raise UsageError(f"lesson --list lists every lesson: leave out {args.name!r}")
        claims = {name: lesson.claim for name, lesson in LESSONS.items()}
        width = max(map(len, claims))
        print(flags.strict_json(claims) if args.json else
              "\n".join(f"{name:<{width}}  {claim}" for name, claim in claims.items()))
        return 0
    if args.name is None:
        raise UsageError(f"lesson: name a lesson ({', '.join(LESSONS)}) or give --list")
    if args.name not in LESSONS:
        raise UsageError(f"lesson {args.name!r}: choose one of {', '.join(LESSONS)} (--list "
                         "says what each shows)")
    if args.dataset == SAMPLE and args.data_dir is not None:
        raise UsageError(f"--dataset {SAMPLE} is bundled with the program: leave out --data-dir")
    flags.check_logdir(args.logdir)
    return teach(LESSONS[args.name], args)


def teach(lesson: Lesson, args: argparse.Namespace) -> int:
    from compare.data import load_splits
    from compare.harness.arch import parse_dtype
    from compare.lessons import runner
    from compare.lessons.base import LessonContext

    out = flags.output(args)
    splits = None
    if lesson.uses_data:
        splits = load_splits(Path(args.data_dir or DEFAULT_DATA_DIR), args.dataset,
                             seed=args.seed, dtype=parse_dtype(lesson.dtype),
                             download_missing=not args.no_download)
    backends = ["scratch", "torch"] if args.backend == "both" else [args.backend]
    report = runner.teach(lesson, LessonContext(
        lesson.name, backends, splits, args.dataset, Path(args.logdir), args.seed,
        log=lambda line: print(line, file=out, flush=True)))
    print(flags.strict_json(report.to_json()) if args.json else "\n" + report.table())
    return 0
