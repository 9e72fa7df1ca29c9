"""Running a lesson as ``compare lesson`` and :func:`compare.run_lesson` do: its own folder under
the log directory, Ctrl-C, its pictures written beside its runs."""

from __future__ import annotations

from dataclasses import replace

from compare.data import Splits
from compare.errors import InterruptionError, UserError
from compare.lessons.base import Lesson, LessonContext, LessonReport
from compare.training.interrupt import StopRequest
from compare.training.run_dir import discard_run_dir, missing_folders, reserve_run_dir

MIN_TRAIN_IMAGES, MIN_VALIDATION_IMAGES = 2000, 200


def check_enough(splits: Splits) -> None:
    """The lessons' configurations need a few thousand training images and a validation split."""
    if len(splits.train_y) < MIN_TRAIN_IMAGES or len(splits.val_y) < MIN_VALIDATION_IMAGES:
        raise UserError(f"{splits.source['train_images']}: {len(splits.train_y)} training and "
                        f"{len(splits.val_y)} validation images; the lessons need at least "
                        f"{MIN_TRAIN_IMAGES} and {MIN_VALIDATION_IMAGES}")


def teach(lesson: Lesson, context: LessonContext) -> LessonReport:
    """Run ``lesson`` in ``context``, whose ``logdir`` is the log directory: the lesson gets a
    folder of its own there, ``lesson-<name>`` (``-2``, ``-3``... when taken), and its pictures
    are written into it. A lesson stopped by Ctrl-C raises InterruptionError; one that fails
    before writing a file leaves no folder."""
    if context.splits is not None:
        check_enough(context.splits)
    on = ("its own small problem (the dataset flags do not apply)" if context.splits is None
          else f"{context.dataset} ({len(context.splits.train_y)} training images)")
    made = missing_folders(context.logdir)
    runs = reserve_run_dir(context.logdir, f"lesson-{lesson.name}")
    context.log(f"lesson {lesson.name} on {on}, {' and '.join(context.backends)}, "
                f"{lesson.dtype}; logging to {runs}")
    with StopRequest() as stop:
        try:
            report = lesson.run(replace(context, logdir=runs, stop=stop))
        except InterruptionError as stopped:
            raise InterruptionError(f"lesson {lesson.name}: {stopped}; no verdict, the runs so "
                                    f"far are in {runs}") from None
        except BaseException:  # a lesson that wrote no file leaves no folder
            if not any(path.is_file() for path in runs.rglob("*")):
                discard_run_dir(runs, made)
            raise
    report.write_pictures()
    return report
