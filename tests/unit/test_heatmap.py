"""The utilisation heatmap picture: its size, colour scale, input checks and stable bytes."""

from __future__ import annotations

import io
import itertools
import math

import pytest
from PIL import Image

from services.booking.domain.heatmap import (
    CELL_HEIGHT,
    CELL_WIDTH,
    DAYS,
    HEIGHT,
    HOURS,
    MARGIN,
    WIDTH,
    cell_left,
    cell_top,
    colour_for,
    render_heatmap_png,
)

RGB = tuple[int, int, int]


def matrix_of(value: float, **cells: float) -> list[list[float]]:
    """A full matrix of `value`, with cells named like `r2c19` (weekday row, hour column) set."""
    matrix = [[value] * HOURS for _ in range(DAYS)]
    for name, cell_value in cells.items():
        row, col = name.removeprefix("r").split("c")
        matrix[int(row)][int(col)] = cell_value
    return matrix


def picture(matrix: list[list[float]], title: str = "Riverside Centre") -> Image.Image:
    image = Image.open(io.BytesIO(render_heatmap_png(matrix, title=title, subtitle="Sep-Nov")))
    return image.convert("RGB")


def cell_pixels(image: Image.Image, row: int, col: int) -> list[tuple[int, RGB]]:
    """How often each colour occurs in a cell, found from the module's own layout."""
    x, y = cell_left(col), cell_top(row)
    cell = image.crop((x, y, x + CELL_WIDTH, y + CELL_HEIGHT))
    counts = cell.getcolors(CELL_WIDTH * CELL_HEIGHT)
    assert counts is not None
    pixels: list[tuple[int, RGB]] = []
    for count, colour in counts:
        assert isinstance(colour, tuple)
        red, green, blue = colour
        pixels.append((count, (red, green, blue)))
    return pixels


def cell_colour(image: Image.Image, row: int, col: int) -> RGB:
    """The fill of a cell: its commonest pixel, so the percentage written on it does not count."""
    _, commonest = max(cell_pixels(image, row, col))
    return commonest


def luminance(colour: RGB) -> float:
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = colour
    return 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)


def test_heatmap_is_a_png_of_the_documented_size() -> None:
    image = Image.open(io.BytesIO(render_heatmap_png(matrix_of(0.3), title="Riverside")))

    assert image.format == "PNG"
    assert image.size == (WIDTH, HEIGHT)


def test_full_cell_is_the_darkest_end_of_the_scale_and_empty_cell_the_lightest() -> None:
    image = picture(matrix_of(0.5, r2c19=1.0, r0c3=0.0))

    full, empty, half = (
        cell_colour(image, 2, 19),
        cell_colour(image, 0, 3),
        cell_colour(image, 4, 12),
    )

    assert full == colour_for(1.0)
    assert empty == colour_for(0.0)
    assert half == colour_for(0.5)
    shades = [luminance(colour_for(step / 100)) for step in range(101)]
    assert luminance(full) == min(shades)
    assert luminance(empty) == max(shades)


def test_the_scale_darkens_steadily_as_utilisation_rises() -> None:
    shades = [luminance(colour_for(step / 20)) for step in range(21)]

    assert all(darker < lighter for lighter, darker in itertools.pairwise(shades))


def test_empty_cells_stand_out_from_the_white_page() -> None:
    assert colour_for(0.0) != (255, 255, 255)


def test_a_busy_cell_is_labelled_in_light_ink_and_a_quiet_one_in_dark() -> None:
    image = picture(matrix_of(0.0, r2c19=1.0, r3c10=0.2))

    def extremes(row: int, col: int) -> tuple[float, float]:
        shades = [luminance(colour) for _, colour in cell_pixels(image, row, col)]
        return min(shades), max(shades)

    busy_darkest, busy_lightest = extremes(2, 19)
    quiet_darkest, _ = extremes(3, 10)
    assert busy_lightest > 0.9  # white text on navy
    assert busy_darkest == pytest.approx(luminance(colour_for(1.0)))
    assert quiet_darkest < 0.1  # dark text on a pale cell


@pytest.mark.parametrize(
    "matrix",
    [
        [],
        [[0.0] * HOURS] * (DAYS - 1),
        [[0.0] * HOURS] * (DAYS + 1),
        [[0.0] * (HOURS - 1)] * DAYS,
        [[0.0] * (HOURS + 1)] * DAYS,
        [[0.0] * HOURS] * (DAYS - 1) + [[0.0] * (HOURS - 1)],
        [[0.0] * DAYS] * HOURS,
    ],
    ids=["empty", "six-days", "eight-days", "23-hours", "25-hours", "ragged", "transposed"],
)
def test_a_matrix_not_seven_by_twenty_four_is_refused(matrix: list[list[float]]) -> None:
    with pytest.raises(ValueError, match="7 rows"):
        render_heatmap_png(matrix, title="Riverside")


def test_values_outside_zero_to_one_are_clamped_and_nan_counts_as_zero() -> None:
    wild = matrix_of(0.4, r0c0=1.7, r0c1=-0.3, r0c2=math.nan, r0c3=math.inf, r0c4=-math.inf)
    tame = matrix_of(0.4, r0c0=1.0, r0c1=0.0, r0c2=0.0, r0c3=1.0, r0c4=0.0)

    assert render_heatmap_png(wild, title="Riverside") == render_heatmap_png(
        tame, title="Riverside"
    )
    image = picture(wild)
    assert cell_colour(image, 0, 0) == colour_for(1.0)
    assert cell_colour(image, 0, 1) == colour_for(0.0)
    assert cell_colour(image, 0, 2) == colour_for(0.0)


def test_same_input_gives_the_same_bytes() -> None:
    matrix = [[((day * 7 + hour * 5) % 11) / 10 for hour in range(HOURS)] for day in range(DAYS)]

    first = render_heatmap_png(matrix, title="Riverside", subtitle="1 Sep - 30 Nov 2026")
    second = render_heatmap_png(matrix, title="Riverside", subtitle="1 Sep - 30 Nov 2026")

    assert first == second


def test_the_title_is_part_of_the_picture() -> None:
    one = render_heatmap_png(matrix_of(0.2), title="Riverside")
    other = render_heatmap_png(matrix_of(0.2), title="Hillside")

    assert one != other


def test_a_chinese_title_renders_whether_or_not_a_cjk_font_is_installed() -> None:
    png = render_heatmap_png(matrix_of(0.6), title="中央图书馆 利用率", subtitle="自习室 · 九月")

    assert Image.open(io.BytesIO(png)).size == (WIDTH, HEIGHT)


def test_a_title_too_long_for_the_page_is_cut_short_inside_the_margin() -> None:
    image = picture(matrix_of(0.2), title="Riverside Community Centre and Library " * 10)

    right_margin = image.crop((WIDTH - MARGIN, 0, WIDTH, 80))
    assert right_margin.getcolors() == [(MARGIN * 80, (255, 255, 255))]
