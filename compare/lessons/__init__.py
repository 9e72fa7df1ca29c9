"""Lessons: each claim of the tutorials, reproduced by both twins in one command
(``python -m compare lesson NAME``), with a verdict computed from the run."""

from compare.lessons.capacity import Overfitting, Width
from compare.lessons.collapse import LinearCollapse
from compare.lessons.cures import BatchNormVsVanishing, DropoutVsOverfitting
from compare.lessons.early_stopping import EarlyStopping
from compare.lessons.gradients import VanishingGradients
from compare.lessons.hyperparameters import BatchSize, LearningRate
from compare.lessons.initialization import Initialization
from compare.lessons.neuron import NeuronVsLayer
from compare.lessons.pattern_detector import PatternDetector
from compare.lessons.straight_line import StraightLine

LESSONS = {lesson.name: lesson for lesson in (
    LinearCollapse(), NeuronVsLayer(), VanishingGradients(), LearningRate(), BatchSize(),
    Overfitting(), Width(), DropoutVsOverfitting(), Initialization(), BatchNormVsVanishing(),
    EarlyStopping(), PatternDetector(), StraightLine())}

__all__ = ["LESSONS"]
