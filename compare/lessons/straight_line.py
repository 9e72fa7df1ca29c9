"""straight-line: the tutorials' picture. The 3s and 8s of the training set, projected on their
first two principal components, overlap; one Linear layer can only cut that plane along a
straight line, and a small ReLU network bends its boundary to fit more of the points. Without
its activation the same network is one Linear layer again (see linear-collapse), and falls back
to the line's figure."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from compare.errors import CheckError, InterruptionError
from compare.harness.arch import Architecture
from compare.insight.images import png
from compare.insight.log import add_image
from compare.insight.tensorboard_writer import SummaryWriter
from compare.lessons.base import Lesson, LessonContext, LessonReport, Row, check_classes
from compare.lessons.regions import plane_grid, regions_image
from compare.training.backend import EVALUATION_ROWS, Backend
from compare.training.build import build_backend
from compare.training.config import TrainConfig
from compare.training.optimizers import OptimizerSpec
from compare.training.threads import one_thread

DIGITS = (3, 8)  # class 0 and class 1 of the plane
FASHION_NAMES = ("dresses", "bags")  # Fashion-MNIST's classes 3 and 8
LOGGED_EVERY = 10  # steps between two points of Loss/train
MIN_IMAGES_PER_DIGIT = 100  # of each of the two digits: a cloud of points, not a handful


def class_names(dataset: str) -> tuple[str, str]:
    """What the two classes are called on ``dataset``: the 3s and 8s, or dresses and bags."""
    return FASHION_NAMES if dataset == "fashion-mnist" else (f"{DIGITS[0]}s", f"{DIGITS[1]}s")


def legend(names: tuple[str, str]) -> str:
    return (f"dots: the training {names[0]} (orange) and {names[1]} (purple); shade: the class "
            "each model answers there")


def two_digits(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The images of the two :data:`DIGITS`, x (N, pixels), and their classes (N,): 0 for the
    first digit, 1 for the second."""
    keep = np.isin(y, DIGITS)
    return x[keep], (y[keep] == DIGITS[1]).astype(np.int64)


@dataclass(frozen=True)
class Plane:
    """The first two principal components of a set of images, standardized: a point of the
    plane is p = (x - center)·componentsᵀ / scale, (N, pixels) -> (N, 2)."""

    center: np.ndarray  # (pixels,): the images' mean
    components: np.ndarray  # (2, pixels): orthonormal, the directions of largest variance
    scale: np.ndarray  # (2,): the images' standard deviation along each
    variance_kept: float  # the share of the pixels' variance along the two

    @classmethod
    def fit(cls, x: np.ndarray) -> Plane:
        """The plane of ``x`` (N, pixels): the SVD x - center = U·S·Vᵀ gives the components as
        the first rows of Vᵀ, and the spread along each as S / sqrt(N)."""
        center = x.mean(axis=0)
        _, singular, vt = np.linalg.svd(x - center, full_matrices=False)
        components = vt[:2]
        # an SVD may return a component or its negative: make its largest entry positive
        signs = np.sign(components[np.arange(2), np.abs(components).argmax(axis=1)])
        variance = singular**2
        return cls(center, components * signs[:, None], singular[:2] / np.sqrt(len(x)),
                   float(variance[:2].sum() / variance.sum()))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((x - self.center) @ self.components.T / self.scale)


def answered_classes(backend: Backend, points: np.ndarray) -> np.ndarray:
    """The class ``backend``'s network answers for each of ``points`` (N, 2): (N,), evaluated
    a thousand points at a time, so that only one slice of every layer's outputs is held."""
    return np.concatenate([
        backend.evaluate(chunk, np.zeros(len(chunk), np.int64), keep_outputs=True
                         ).outputs[-1].argmax(axis=1)
        for chunk in np.split(points, range(EVALUATION_ROWS, len(points), EVALUATION_ROWS))])


@dataclass
class Fitted:
    """One model trained by one twin on the plane's points: its figures, and the class it
    answers at each pixel of the picture (:func:`~compare.lessons.regions.plane_grid`)."""

    train_accuracy: float
    test_accuracy: float
    train_loss: float
    answers: np.ndarray


@dataclass(frozen=True)
class StraightLine(Lesson):
    name = "straight-line"
    claim = ("a straight line cannot separate the 3s from the 8s; a network with an activation "
             "bends its boundary around them")
    activation: str = "relu"  # of the network's hidden layers
    hidden: tuple[int, ...] = (64, 64)
    steps: int = 1000  # full-batch steps of SGD with momentum 0.9
    lr: float = 0.1
    margin: float = 0.005  # the network must fit this much more of the training points
    dtype = "float64"
    look_at = "SCALARS Loss/train of line and network-*, IMAGES Boundary/decision_regions"

    def run(self, context: LessonContext) -> LessonReport:
        check_classes(context, DIGITS, least=MIN_IMAGES_PER_DIGIT)
        splits = context.splits
        train_x, train_y = two_digits(splits.train_x, splits.train_y)
        test_x, test_y = two_digits(splits.test_x, splits.test_y)
        plane = Plane.fit(train_x)
        data = ((plane(train_x), train_y), (plane(test_x), test_y))
        names = class_names(context.dataset)
        context.log(f"  {names[0]} and {names[1]}: {len(train_y)} training images on their "
                    f"first two principal components ({plane.variance_kept:.1%} of the pixels' "
                    "variance)")
        network = f"network-{self.activation}"
        models = {"line": Architecture((2, 2), "none"),
                  network: Architecture((2, *self.hidden, 2), self.activation)}
        fitted = {label: {twin: self.fit(context, label, twin, arch, data)
                          for twin in context.backends} for label, arch in models.items()}
        rows = [Row(figure, label, {t: getattr(f, attribute) for t, f in by_twin.items()})
                for label, by_twin in fitted.items()
                for figure, attribute in (("training accuracy", "train_accuracy"),
                                          ("test accuracy", "test_accuracy"),
                                          ("training loss at the last step", "train_loss"))]
        line, bent = fitted["line"], fitted[network]
        holds = all(bent[t].train_accuracy - line[t].train_accuracy >= self.margin
                    for t in context.backends)
        twin = context.backends[0]
        reason = (f"one Linear layer (a straight line) fits {line[twin].train_accuracy:.1%} of "
                  f"the training {names[0]} and {names[1]}, the {models[network].spec} "
                  f"{self.activation} network {bent[twin].train_accuracy:.1%} (the claim needs "
                  f"{self.margin:.1%} more)")
        titles = {"line": "2-2: a straight line",
                  network: f"{models[network].spec} {self.activation}"}
        pictures = {f"decision-regions-{t}.png": png(regions_image(
            {f"{titles[label]}: {by_twin[t].train_accuracy:.1%}": by_twin[t].answers
             for label, by_twin in fitted.items()}, *data[0], legend(names)))
            for t in context.backends}
        return self.report(context, rows, holds, reason, pictures)

    def fit(self, context: LessonContext, label: str, twin: str, arch: Architecture,
            data: tuple[tuple[np.ndarray, np.ndarray], ...]) -> Fitted:
        """Train ``arch`` with ``twin`` on the training points of ``data`` ((train, test), each
        points (N, 2) and classes (N,)), logging to ``logdir/label/twin``."""
        (points, classes), (test_points, test_classes) = data
        config = TrainConfig(arch, OptimizerSpec.create("momentum", self.lr),
                             batch_size=len(classes), seed=context.seed, dtype=self.dtype)
        backend = build_backend(twin, config)
        started = time.perf_counter()
        with one_thread():
            losses = self.descend(backend, points, classes, context, f"{label} ({twin})")
            seconds = time.perf_counter() - started
            train, test = (backend.evaluate(points, classes),
                           backend.evaluate(test_points, test_classes))
            answers = answered_classes(backend, plane_grid())
        names = class_names(context.dataset)
        with SummaryWriter(context.logdir / label / twin) as writer:
            for step in range(LOGGED_EVERY, self.steps + 1, LOGGED_EVERY):
                writer.add_scalar("Loss/train", losses[step - 1], step)
            writer.add_scalar("Accuracy/train", train.accuracy, self.steps)
            add_image(writer, "Boundary/decision_regions", regions_image(
                {f"{label}: {train.accuracy:.1%}": answers}, points, classes, legend(names)),
                self.steps)
        context.log(f"  {label:<16} {twin:>7}: {self.steps} steps, train loss {losses[-1]:.4f}, "
                    f"training accuracy {train.accuracy:.4f}, {seconds:.1f} s")
        return Fitted(train.accuracy, test.accuracy, float(losses[-1]), answers)

    def descend(self, backend: Backend, points: np.ndarray, classes: np.ndarray,
                context: LessonContext, run: str) -> np.ndarray:
        """``steps`` steps of ``backend`` on the whole of ``points`` (N, 2), ``classes`` (N,);
        the loss before each step (steps,)."""
        batch = next(backend.loader(points, classes).batches(np.arange(len(classes)),
                                                            len(classes)))
        backend.start_epoch(self.steps)
        for step in range(1, self.steps + 1):
            backend.train_step(*batch)
            if context.stop.requested:
                raise InterruptionError(f"{run} stopped by Ctrl-C at step {step}")
        losses = backend.step_losses()
        if not np.all(np.isfinite(losses)):
            raise CheckError(f"lesson {self.name}: {run} diverged at step "
                             f"{int(np.argmin(np.isfinite(losses))) + 1}; no verdict")
        return losses
