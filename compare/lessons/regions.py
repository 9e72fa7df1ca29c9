"""The straight-line lesson's picture: points of two classes in a plane, over the regions where
each model answers one class or the other."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from compare.insight.images import font

EXTENT = 3.0  # the plane drawn: [-3, 3]² in standard deviations of each coordinate
SIDE = 300  # pixels of a panel's side
TITLE = 22  # pixels above each panel
POINT_COLORS = np.array([(230, 97, 1), (94, 60, 153)], np.uint8)  # class 0 orange, 1 purple
REGION_COLORS = np.array([(253, 219, 175), (210, 206, 232)], np.uint8)  # the same, light


def plane_grid(side: int = SIDE) -> np.ndarray:
    """The centers of a panel's pixels as points (side * side, 2), row by row from the top: x
    grows to the right, y upwards, both over [-EXTENT, EXTENT]."""
    steps = (np.arange(side) + 0.5) / side * 2 * EXTENT - EXTENT
    ys, xs = np.meshgrid(steps[::-1], steps, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def panel(answers: np.ndarray, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One panel, (SIDE, SIDE, 3) RGB: the class a model answers at each pixel (answers
    (SIDE * SIDE,) 0 or 1, in :func:`plane_grid`'s order) in light colors, and ``points`` (N, 2)
    of class ``labels`` (N,) as dots in strong ones (those outside the plane drawn left out)."""
    image = REGION_COLORS[answers.reshape(SIDE, SIDE)]
    columns = np.floor((points[:, 0] + EXTENT) / (2 * EXTENT) * SIDE).astype(np.int64)
    rows = np.floor((EXTENT - points[:, 1]) / (2 * EXTENT) * SIDE).astype(np.int64)
    inside = (columns >= 0) & (columns < SIDE - 1) & (rows >= 0) & (rows < SIDE - 1)
    for row_offset in (0, 1):  # each dot 2x2 pixels
        for column_offset in (0, 1):
            image[rows[inside] + row_offset, columns[inside] + column_offset] = (
                POINT_COLORS[labels[inside]])
    return image


def regions_image(titled_answers: dict[str, np.ndarray], points: np.ndarray,
                  labels: np.ndarray, legend: str) -> np.ndarray:
    """One :func:`panel` per model, side by side, each under its title (the key), ``legend``
    underneath: (H, W, 3)."""
    gap = 10
    canvas = Image.new("RGB", (len(titled_answers) * (SIDE + gap) + gap, SIDE + 2 * TITLE),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for index, (title, answers) in enumerate(titled_answers.items()):
        left = gap + index * (SIDE + gap)
        canvas.paste(Image.fromarray(panel(answers, points, labels)), (left, TITLE))
        draw.text((left + SIDE // 2, TITLE // 2), title, anchor="mm", font=font(13),
                  fill=(0, 0, 0))
    draw.text((gap, TITLE + SIDE + TITLE // 2), legend, anchor="lm", font=font(12),
              fill=(0, 0, 0))
    return np.asarray(canvas)
