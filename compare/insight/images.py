"""The pictures: NumPy arrays of numbers made into PNG images (Pillow draws and encodes).

Every function takes plain NumPy arrays, whichever twin they came from, so the same weights give
the same PNG bytes.
"""

from __future__ import annotations

import functools
import io
import math
from typing import ClassVar

import numpy as np
from PIL import Image, ImageDraw, ImageFont

NEGATIVE, ZERO, POSITIVE = (33, 102, 172), (247, 247, 247), (178, 24, 43)
"""The diverging scale: blue for a weight that wants its pixel dark, red for one that wants it
bright, near-white for a pixel the neuron ignores (ColorBrewer's RdBu ends)."""
BACKGROUND = (128, 128, 128)
TILES_PER_ROW = 8
MISTAKE_SHARE_FULL_RED = 0.1


def diverging_palette() -> list[int]:
    """256 RGB colors, flattened: index 0 is -1 (blue), 127 is 0 (white), 254 is +1 (red); index
    255 is the gray ground between tiles."""
    t = np.linspace(-1.0, 1.0, 255)[:, None]
    zero = np.array(ZERO, float)
    toward = np.where(t < 0, np.array(NEGATIVE, float), np.array(POSITIVE, float))
    colors = np.rint(zero + np.abs(t) * (toward - zero)).astype(np.uint8)
    return [*colors.ravel().tolist(), *BACKGROUND]


def png(image: np.ndarray, palette: list[int] | None = None, compress_level: int = 1) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 RGB image, or of (H, W) indices into ``palette``
    (``compress_level`` 0: stored as it is, a tenth of the time of level 1, about 4x the
    bytes)."""
    picture = Image.fromarray(image, "P" if palette else "RGB")
    if palette:
        picture.putpalette(palette)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def tile_grid(tiles: np.ndarray, ground: int | tuple[int, ...], gutter: int = 2,
              per_row: int = TILES_PER_ROW) -> np.ndarray:
    """Tiles (N, h, w) or (N, h, w, 3) of one size in rows of ``per_row``, left to right and top
    to bottom, ``gutter`` pixels apart on ``ground``."""
    count, height, width = tiles.shape[:3]
    rows, columns = math.ceil(count / per_row), min(count, per_row)
    grid = np.empty((rows * (height + gutter) + gutter, columns * (width + gutter) + gutter,
                     *tiles.shape[3:]), np.uint8)
    grid[:] = ground
    for index, tile in enumerate(tiles):
        top = gutter + (index // per_row) * (height + gutter)
        left = gutter + (index % per_row) * (width + gutter)
        grid[top : top + height, left : left + width] = tile
    return grid


def square_side(pixels: int) -> int | None:
    """The side of a square image of ``pixels`` pixels; None when there is none."""
    side = math.isqrt(pixels)
    return side if side * side == pixels else None


def neuron_tiles(weight: np.ndarray, count: int = 64, *, per_row: int = TILES_PER_ROW,
                 gutter: int = 2, full_color: float | None = None) -> np.ndarray | None:
    """The first ``count`` neurons of a first layer as images, indices into
    :func:`diverging_palette`: row j of ``weight`` (out, pixels) as a square tile, one pixel a
    weight, ``per_row`` tiles a row, ``gutter`` pixels apart. A tile is full red or blue at its
    own largest |w| (so every neuron's pattern shows), or, given ``full_color``, at that one
    value for the whole grid (clipped beyond it, so the tiles compare); None when the inputs are
    not a square image."""
    side = square_side(weight.shape[1])
    if side is None:
        return None
    rows = np.asarray(weight[:count], dtype=np.float64)
    limit = np.abs(rows).max(axis=1, keepdims=True) if full_color is None else full_color
    scaled = np.clip(rows / np.where(limit > 0, limit, 1.0), -1.0, 1.0)
    indices = np.rint((scaled + 1.0) * 127.0).astype(np.uint8)
    return tile_grid(indices.reshape(-1, side, side), ground=255, gutter=gutter, per_row=per_row)


def gray_palette() -> list[int]:
    """256 RGB grays, flattened: index i is gray level i (a palette PNG of digits encodes in half
    the time of a gray one, which PNG filters)."""
    return [level for gray in range(256) for level in (gray, gray, gray)]


def digit_mosaics(digits: np.ndarray, per_row: int) -> np.ndarray:
    """Gray digits (neurons, k, pixels), values in [0, 1], k a square: each neuron's k digits
    as one square mosaic, its first row first (white on black), the mosaics ``per_row`` a row on
    gray; gray levels, indices into :func:`gray_palette`."""
    neurons, k, pixels = digits.shape
    side, across = square_side(pixels), math.isqrt(k)
    gray = np.rint(np.clip(digits, 0, 1) * 255).astype(np.uint8)
    mosaics = (gray.reshape(neurons, across, across, side, side).transpose(0, 1, 3, 2, 4)
               .reshape(neurons, across * side, across * side))
    return tile_grid(mosaics, ground=BACKGROUND[0], per_row=per_row)


@functools.cache
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def digit_rgb(pixels: np.ndarray, scale: int) -> np.ndarray:
    """A digit's pixels (values in [0, 1], a square) as an RGB image, white on black."""
    side = math.isqrt(pixels.size)
    gray = np.rint(np.clip(pixels.reshape(side, side), 0, 1) * 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2).repeat(scale, axis=0).repeat(scale, axis=1)


def confusion_cell(share: float, correct: bool) -> tuple[int, int, int]:
    """Blue for the right answers by their share of the row; red for the mistakes, full red at
    ``MISTAKE_SHARE_FULL_RED`` of the row, so that a class's common confusions stand out."""
    if correct:
        shade = round(255 - 200 * share)
        return shade, shade, 255
    shade = round(255 - 200 * min(1.0, share / MISTAKE_SHARE_FULL_RED))
    return 255, shade, shade


CONFUSION_CELL, CONFUSION_LEFT, CONFUSION_TOP = 29, 46, 62
"""The confusion matrix's layout in pixels: a cell, the margin left of the rows (the rotated
title and the row labels) and above the columns (the headline, the title, the column labels).
Ten classes make it 342 pixels wide, about the width of TensorBoard's image card, so the card
shows it at its own size."""
BLACK, WHITE = (0, 0, 0), (255, 255, 255)


def bold_text(draw: ImageDraw.ImageDraw, position: tuple[int, int], text: str, size: int,
              anchor: str) -> None:
    """Black ``text`` thickened by a one-pixel stroke, so that it survives a browser's
    scaling."""
    draw.text(position, text, anchor=anchor, font=font(size), fill=BLACK, stroke_width=1,
              stroke_fill=BLACK)


def confusion_image(confusion: np.ndarray, headline: str = "") -> np.ndarray:
    """A confusion matrix (true class rows, predicted class columns, counts) as a heat map with
    the counts written in, the axes titled and ``headline`` above it."""
    cell, left, top, classes = CONFUSION_CELL, CONFUSION_LEFT, CONFUSION_TOP, len(confusion)
    image = Image.new("RGB", (left + classes * cell + 6, top + classes * cell + 6), WHITE)
    draw = ImageDraw.Draw(image)
    shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    for (true, predicted), count in np.ndenumerate(confusion):
        color = confusion_cell(shares[true, predicted], true == predicted)
        x, y = left + predicted * cell, top + true * cell
        draw.rectangle([x, y, x + cell - 2, y + cell - 2], fill=color)
        draw.text((x + cell // 2, y + cell // 2), str(count), anchor="mm",
                  font=font(11 if count >= 1000 else 13),
                  fill=WHITE if min(color) < 140 else BLACK)
    middle = cell // 2 - 1
    for index in range(classes):
        bold_text(draw, (left + index * cell + middle, top - 4), str(index), 14, "ms")
        bold_text(draw, (left - 6, top + index * cell + middle), str(index), 14, "rm")
    draw.text((2, 2), headline, anchor="la", font=font(15), fill=BLACK)
    draw.text((left + classes * cell // 2, 23), "predicted class", anchor="ma", font=font(15),
              fill=BLACK)
    title = Image.new("RGB", (classes * cell, 20), WHITE)
    ImageDraw.Draw(title).text((classes * cell // 2, 10), "true class", anchor="mm",
                               font=font(15), fill=BLACK)
    image.paste(title.rotate(90, expand=True), (2, top))
    return np.asarray(image)


def captioned_digits(digits: np.ndarray, captions: list[str], scale: int = 3) -> np.ndarray:
    """Digits (N, pixels) in a grid, each with its caption underneath."""
    tiles = []
    for pixels, caption in zip(digits, captions, strict=True):
        image = digit_rgb(pixels, scale)
        tile = Image.new("RGB", (max(image.shape[1], 112), image.shape[0] + 18), (255, 255, 255))
        tile.paste(Image.fromarray(image), ((tile.width - image.shape[1]) // 2, 0))
        ImageDraw.Draw(tile).text((tile.width // 2, image.shape[0] + 2), caption, anchor="mt",
                                  font=font(11), fill=(0, 0, 0))
        tiles.append(np.asarray(tile))
    return tile_grid(np.stack(tiles), ground=BACKGROUND, gutter=4)


class ProbabilityBars:
    """One row per digit: the digit, then the network's output probabilities as bars, the true
    class green, a wrong answer red. The digits and labels (all gray) are drawn once, into a
    palette image of ``SHADES`` grays; each call fills in the bars in the palette's last three
    entries, the colors."""

    BAR, GAP, HEIGHT, THUMB = 18, 4, 48, 56
    COLORS: ClassVar = {"right": (26, 150, 65), "wrong": (215, 48, 39), "other": (150, 150, 150)}
    SHADES = 256 - len(COLORS)

    def __init__(self, digits: np.ndarray, labels: np.ndarray, classes: int) -> None:
        self.labels = labels
        width = self.THUMB + 16 + classes * (self.BAR + self.GAP)
        template = Image.new("L", (width, len(digits) * (self.HEIGHT + 24)), 255)
        draw = ImageDraw.Draw(template)
        for row, pixels in enumerate(digits):
            template.paste(Image.fromarray(digit_rgb(pixels, 2)[..., 0]), (0, self.top(row)))
            for index in range(classes):
                left, bottom = self.left(index), self.top(row) + self.HEIGHT
                draw.line([left, bottom, left + self.BAR - 1, bottom],
                          fill=self.COLORS["other"][0])
                draw.text((left + self.BAR // 2, bottom + 2), str(index), anchor="mt",
                          font=font(11), fill=0)
        top = self.SHADES - 1  # gray level g is entry round(g * top / 255)
        self.template = np.rint(np.asarray(template) * (top / 255)).astype(np.uint8)
        grays = [round(entry * 255 / top) for entry in range(self.SHADES)]
        self.palette = [level for gray in grays for level in (gray, gray, gray)] + [
            channel for color in self.COLORS.values() for channel in color]
        self.color_index = {name: self.SHADES + i for i, name in enumerate(self.COLORS)}

    def top(self, row: int) -> int:
        return row * (self.HEIGHT + 24) + 4

    def left(self, index: int) -> int:
        return self.THUMB + 16 + index * (self.BAR + self.GAP)

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        """The chart for ``probabilities`` (digits, classes), as indices into ``palette``."""
        image = self.template.copy()
        for row, (p, label) in enumerate(zip(probabilities, self.labels, strict=True)):
            answer, bottom = int(np.argmax(p)), self.top(row) + self.HEIGHT
            for index, share in enumerate(p):
                kind = "right" if index == label else ("wrong" if index == answer else "other")
                left = self.left(index)
                image[bottom - round(float(share) * self.HEIGHT) : bottom,
                      left : left + self.BAR] = self.color_index[kind]
        return image
