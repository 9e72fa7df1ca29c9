"""``compare bench --insight``: what the insight logging (per-step curves, update ratios,
pictures) costs a training run.

The same ``compare.fit`` call, writing its TensorBoard events into a fresh folder, timed with and
without ``insight``, alternated in one process (with first in odd repeats, without first in
even ones) so that a slow spell of a shared machine hits both alike. A 1-epoch run of each comes
first, untimed: the first run in a process pays for imports and fonts that later runs do not.
The verdict is the median over the repeats of with / without of the same repeat (paired).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from compare.data import Splits
from compare.errors import CheckError, InterruptionError
from compare.training.config import TrainConfig


@dataclass(frozen=True)
class InsightCost:
    """The seconds of ``repeats`` runs at ``batch_size`` with and without insight, paired."""

    batch_size: int
    with_insight: list[float]
    without_insight: list[float]

    @property
    def ratios(self) -> list[float]:
        """Each repeat's run with insight over its run without, smallest first."""
        return sorted(a / b for a, b in zip(self.with_insight, self.without_insight,
                                            strict=True))

    def row(self) -> dict:
        ratios = self.ratios
        return {"batch_size": self.batch_size,
                "with_insight_seconds": statistics.median(self.with_insight),
                "without_insight_seconds": statistics.median(self.without_insight),
                "ratio": statistics.median(ratios), "ratio_min": ratios[0],
                "ratio_max": ratios[-1]}


def seconds_to_fit(splits: Splits, config: TrainConfig, backend: str, insight: bool) -> float:
    """Wall seconds of one ``compare.fit`` run writing into a temporary folder. A run that
    stops (a divergence, Ctrl-C) leaves nothing to go back to: its folder is gone."""
    from compare.training.divergence import DivergenceError
    from compare.training.fit import fit

    run = f"the run {'with' if insight else 'without'} insight at batch {config.batch_size}"
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        try:
            fit(splits, config, backend=backend, log_dir=Path(folder) / "run", insight=insight)
        except DivergenceError as error:
            raise CheckError(f"bench --insight: {run} diverged ({error.backend}, step "
                             f"{error.step}): nothing to time; try a smaller --lr") from None
        except InterruptionError:
            raise InterruptionError(f"bench --insight: stopped by Ctrl-C in {run}; nothing "
                                    "measured") from None
        return time.perf_counter() - start


def measure(splits: Splits, config: TrainConfig, backend: str, repeats: int,
            log: Callable[[str], None]) -> InsightCost:
    """``repeats`` runs of ``config`` with insight and as many without, alternated."""
    for insight in (True, False):
        seconds_to_fit(splits, replace(config, epochs=1), backend, insight)
    seconds: dict[bool, list[float]] = {True: [], False: []}
    for repeat in range(repeats):
        for insight in (True, False) if repeat % 2 == 0 else (False, True):
            seconds[insight].append(seconds_to_fit(splits, config, backend, insight))
        log(f"repeat {repeat + 1}/{repeats} batch {config.batch_size:4d}: with insight "
            f"{seconds[True][-1]:.3f} s, without {seconds[False][-1]:.3f} s")
    return InsightCost(config.batch_size, seconds[True], seconds[False])


def table(costs: list[InsightCost]) -> str:
    lines = ["batch  with s  without s  with / without (paired median)  range"]
    for cost in costs:
        row = cost.row()
        lines.append(f"{cost.batch_size:5d} {row['with_insight_seconds']:7.3f} "
                     f"{row['without_insight_seconds']:10.3f} {row['ratio']:31.3f}  "
                     f"{row['ratio_min']:.3f}-{row['ratio_max']:.3f}")
    return "\n".join(lines)
