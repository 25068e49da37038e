"""The utilisation heatmap (`GET /v1/reports/heatmap?format=png`) as a picture people can read.

A pure function of the matrix and the captions, so the report handler only sets the content type
and tests can compare bytes. Pillow draws it (no matplotlib for one picture); colours come from a
sequential scale whose OKLab lightness falls linearly with utilisation, so equal steps in use look
like equal steps in colour and busy hours stand out as dark. Text uses Pillow's built-in font; where
a title holds characters it lacks (a Chinese venue name, an accented one) a system font that has
them is looked up once and used instead, and when there is none the text is drawn anyway.
"""

from __future__ import annotations

import functools
import io
import math
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from PIL import Image, ImageDraw, ImageFont

Font: TypeAlias = ImageFont.FreeTypeFont | ImageFont.ImageFont
RGB: TypeAlias = tuple[int, int, int]

DAYS = 7
HOURS = 24
WEEKDAY_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# The layout, in pixels. Cell (row, col) covers [cell_left, cell_left + CELL_WIDTH) and
# [cell_top, cell_top + CELL_HEIGHT); the pitch leaves a CELL_GAP of background between cells.
WIDTH = 1000
HEIGHT = 420
MARGIN = 20
GRID_LEFT = 60
GRID_TOP = 84
CELL_GAP = 2
CELL_PITCH_X = 35
CELL_PITCH_Y = 38
CELL_WIDTH = CELL_PITCH_X - CELL_GAP
CELL_HEIGHT = CELL_PITCH_Y - CELL_GAP
GRID_RIGHT = GRID_LEFT + HOURS * CELL_PITCH_X - CELL_GAP
GRID_BOTTOM = GRID_TOP + DAYS * CELL_PITCH_Y - CELL_GAP
COLOUR_BAR_LEFT = GRID_RIGHT + 22
COLOUR_BAR_WIDTH = 16
COLOUR_BAR_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)

BACKGROUND: RGB = (255, 255, 255)
INK: RGB = (31, 41, 55)
MUTED_INK: RGB = (100, 110, 125)
LIGHT_INK: RGB = (255, 255, 255)

TITLE_SIZE = 22
SUBTITLE_SIZE = 14
LABEL_SIZE = 13
CELL_TEXT_SIZE = 11
CELL_TEXT_PADDING = 2

# ColorBrewer YlGnBu, pale cream to navy: cream keeps an idle cell visible on the white page.
_ANCHORS: tuple[str, ...] = (
    "#ffffd9",
    "#edf8b1",
    "#c7e9b4",
    "#7fcdbb",
    "#41b6c4",
    "#1d91c0",
    "#225ea8",
    "#253494",
    "#081d58",
)
_SCALE_STEPS = 256

# Where CJK fonts live on common distributions, for machines without fontconfig's tools; the index
# picks the Simplified Chinese face of a collection.
_WELL_KNOWN_FONTS: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/wenquanyi/wqy-zenhei/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 0),
)
_FONTCONFIG_QUERIES = (":lang=zh", "sans-serif")
_FONTCONFIG_CANDIDATES_PER_QUERY = 4
# A character no font maps, so rendering it shows the font's "missing glyph" box.
_UNMAPPED = "\U0010fffd"


def cell_left(col: int) -> int:
    """The x of the first pixel of the cells of hour `col`."""
    return GRID_LEFT + col * CELL_PITCH_X


def cell_top(row: int) -> int:
    """The y of the first pixel of the cells of weekday `row` (0 is Monday)."""
    return GRID_TOP + row * CELL_PITCH_Y


def colour_for(value: float) -> RGB:
    """The scale's colour for a utilisation: pale at 0, darkest at 1; out of range is clamped."""
    return _scale()[round(_clamp(value) * (_SCALE_STEPS - 1))]


def render_heatmap_png(
    matrix: Sequence[Sequence[float]], *, title: str, subtitle: str = ""
) -> bytes:
    """Draw a 7-by-24 utilisation matrix (ISO weekday rows, venue-local hour columns) as a PNG.

    Values are clamped to [0, 1] and NaN counts as 0; any other shape is a ValueError. The same
    input gives the same bytes.
    """
    values = _validated(matrix)
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    _draw_captions(draw, title, subtitle)
    _draw_cells(draw, values)
    _draw_axes(draw)
    _draw_colour_bar(draw)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _validated(matrix: Sequence[Sequence[float]]) -> list[list[float]]:
    if len(matrix) != DAYS or any(len(row) != HOURS for row in matrix):
        widths = sorted({len(row) for row in matrix})
        raise ValueError(
            f"a heatmap needs {DAYS} rows (weekdays) of {HOURS} values (hours), "
            f"got {len(matrix)} rows of {widths}"
        )
    return [[_clamp(float(value)) for value in row] for row in matrix]


def _clamp(value: float) -> float:
    if math.isnan(value):
        return 0.0
    return min(max(value, 0.0), 1.0)


def _draw_captions(draw: ImageDraw.ImageDraw, title: str, subtitle: str) -> None:
    width = WIDTH - 2 * MARGIN
    title_font = _font_for(title, TITLE_SIZE)
    # The built-in font has one weight; a hair of outline makes it read as a heading.
    draw.text(
        (MARGIN, 18),
        _fitted(title, title_font, width),
        fill=INK,
        font=title_font,
        stroke_width=0.4,
        stroke_fill=INK,
    )
    if subtitle:
        # Stops short of the colour bar's caption, which sits just below its line on the right.
        room = GRID_RIGHT - MARGIN
        font = _font_for(subtitle, SUBTITLE_SIZE)
        draw.text((MARGIN, 50), _fitted(subtitle, font, room), fill=MUTED_INK, font=font)


def _draw_cells(draw: ImageDraw.ImageDraw, values: list[list[float]]) -> None:
    font = _default_font(CELL_TEXT_SIZE)
    room = CELL_WIDTH - 2 * CELL_TEXT_PADDING
    for row, hours in enumerate(values):
        for col, value in enumerate(hours):
            x, y = cell_left(col), cell_top(row)
            fill = colour_for(value)
            draw.rectangle((x, y, x + CELL_WIDTH - 1, y + CELL_HEIGHT - 1), fill=fill)
            percent = round(value * 100)
            if percent == 0:
                continue  # a page of "0%" hides the busy hours; the pale cell already says it
            # Drop the sign before dropping the number when a cell is too narrow for both.
            label = next(
                (text for text in (f"{percent}%", str(percent)) if font.getlength(text) <= room),
                None,
            )
            if label is not None:
                centre = (x + CELL_WIDTH / 2, y + CELL_HEIGHT / 2)
                draw.text(centre, label, fill=_ink_on(fill), font=font, anchor="mm")


def _draw_axes(draw: ImageDraw.ImageDraw) -> None:
    font = _default_font(LABEL_SIZE)
    for row, label in enumerate(WEEKDAY_LABELS):
        y = cell_top(row) + CELL_HEIGHT / 2
        draw.text((GRID_LEFT - 8, y), label, fill=INK, font=font, anchor="rm")
    labels = [f"{hour:02d}" for hour in range(HOURS)]
    widest = max(font.getlength(label) for label in labels)
    step = next((n for n in (1, 2, 3, 4, 6) if widest + 6 <= n * CELL_PITCH_X), 12)
    for hour in range(0, HOURS, step):
        x = cell_left(hour) + CELL_WIDTH / 2
        draw.text((x, GRID_BOTTOM + 7), labels[hour], fill=INK, font=font, anchor="mt")
    caption = "Hour of day (venue-local time)"
    centre = ((GRID_LEFT + GRID_RIGHT) / 2, GRID_BOTTOM + 28)
    draw.text(centre, caption, fill=MUTED_INK, font=_default_font(12), anchor="mt")


def _draw_colour_bar(draw: ImageDraw.ImageDraw) -> None:
    left, right = COLOUR_BAR_LEFT, COLOUR_BAR_LEFT + COLOUR_BAR_WIDTH - 1
    top, bottom = GRID_TOP, GRID_BOTTOM - 1
    span = bottom - top
    for y in range(top, bottom + 1):
        draw.line((left, y, right, y), fill=colour_for((bottom - y) / span))
    draw.rectangle((left, top, right, bottom), outline=(210, 214, 220))
    font = _default_font(12)
    for tick in COLOUR_BAR_TICKS:
        y = round(bottom - tick * span)
        draw.line((right + 1, y, right + 4, y), fill=MUTED_INK)
        draw.text((right + 8, y), f"{round(tick * 100)}%", fill=INK, font=font, anchor="lm")
    centre = ((left + right) / 2, top - 8)
    draw.text(centre, "Utilisation", fill=MUTED_INK, font=font, anchor="ms")


def _ink_on(fill: RGB) -> RGB:
    """Dark or light text, whichever contrasts more with the cell (WCAG contrast ratio)."""
    background = _relative_luminance(fill)
    dark = (background + 0.05) / (_relative_luminance(INK) + 0.05)
    light = (_relative_luminance(LIGHT_INK) + 0.05) / (background + 0.05)
    return INK if dark >= light else LIGHT_INK


def _relative_luminance(colour: RGB) -> float:
    red, green, blue = (_to_linear(channel / 255) for channel in colour)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def _fitted(text: str, font: Font, width: int) -> str:
    """The text, cut short with an ellipsis if it would run past `width` pixels."""
    if font.getlength(text) <= width:
        return text
    fits, too_long = 0, len(text)  # the longest prefix that fits, by bisection
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if font.getlength(text[:middle] + "…") <= width:
            fits = middle
        else:
            too_long = middle
    return text[:fits].rstrip() + "…"


# The colour scale.


@functools.cache
def _scale() -> tuple[RGB, ...]:
    """The anchors interpolated in OKLab, each placed where lightness falls linearly from 0 to 1."""
    labs = [_oklab(_hex(anchor)) for anchor in _ANCHORS]
    lightest, darkest = labs[0][0], labs[-1][0]
    positions = [(lightest - lab[0]) / (lightest - darkest) for lab in labs]
    colours: list[RGB] = []
    for step in range(_SCALE_STEPS):
        t = step / (_SCALE_STEPS - 1)
        i = next(i for i in range(1, len(labs)) if t <= positions[i] or i == len(labs) - 1)
        share = (t - positions[i - 1]) / (positions[i] - positions[i - 1])
        lab = tuple(a + (b - a) * share for a, b in zip(labs[i - 1], labs[i], strict=True))
        colours.append(_from_oklab((lab[0], lab[1], lab[2])))
    return tuple(colours)


def _hex(code: str) -> RGB:
    return (int(code[1:3], 16), int(code[3:5], 16), int(code[5:7], 16))


def _to_linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def _from_linear(channel: float) -> int:
    channel = min(max(channel, 0.0), 1.0)
    encoded = channel * 12.92 if channel <= 0.0031308 else 1.055 * channel ** (1 / 2.4) - 0.055
    return round(encoded * 255)


def _oklab(colour: RGB) -> tuple[float, float, float]:
    # Björn Ottosson's OKLab (https://bottosson.github.io/posts/oklab/).
    r, g, b = (_to_linear(channel / 255) for channel in colour)
    long = math.cbrt(0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b)
    medium = math.cbrt(0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b)
    short = math.cbrt(0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b)
    return (
        0.2104542553 * long + 0.7936177850 * medium - 0.0040720468 * short,
        1.9779984951 * long - 2.4285922050 * medium + 0.4505937099 * short,
        0.0259040371 * long + 0.7827717662 * medium - 0.8086757660 * short,
    )


def _from_oklab(lab: tuple[float, float, float]) -> RGB:
    lightness, a, b = lab
    long = (lightness + 0.3963377774 * a + 0.2158037573 * b) ** 3
    medium = (lightness - 0.1055613458 * a - 0.0638541728 * b) ** 3
    short = (lightness - 0.0894841775 * a - 1.2914855480 * b) ** 3
    return (
        _from_linear(4.0767416621 * long - 3.3077115913 * medium + 0.2309699292 * short),
        _from_linear(-1.2684380046 * long + 2.6097574011 * medium - 0.3413193965 * short),
        _from_linear(-0.0041960863 * long - 0.7034186147 * medium + 1.7076147010 * short),
    )


# Fonts.


@functools.cache
def _default_font(size: int) -> Font:
    return ImageFont.load_default(size=size)


@functools.cache
def _file_font(path: str, index: int, size: int) -> Font | None:
    try:
        return ImageFont.truetype(path, size=size, index=index)
    except OSError:
        return None


def _font_for(text: str, size: int) -> Font:
    """The built-in font if it draws every character of `text`, else the system font that misses
    the fewest (none found: the built-in font, which draws boxes for what it lacks)."""
    best, best_missing = _default_font(size), _missing(None, 0, text)
    for path, index in _fallback_font_files() if best_missing else ():
        missing = _missing(path, index, text)
        font = _file_font(path, index, size)
        if font is not None and missing < best_missing:
            best, best_missing = font, missing
            if not missing:
                break
    return best


def _missing(path: str | None, index: int, text: str) -> int:
    return sum(not _draws(path, index, char) for char in set(text) if not char.isspace())


@functools.lru_cache(maxsize=4096)
def _draws(path: str | None, index: int, char: str) -> bool:
    """Whether the font has a glyph for `char`: a missing one renders as the font's box."""
    font = _default_font(32) if path is None else _file_font(path, index, 32)
    if font is None:
        return False
    return _glyph(font, char) != _glyph(font, _UNMAPPED)


def _glyph(font: Font, char: str) -> bytes:
    canvas = Image.new("L", (64, 64))
    ImageDraw.Draw(canvas).text((8, 8), char, fill=255, font=font)
    return canvas.tobytes()


@functools.cache
def _fallback_font_files() -> tuple[tuple[str, int], ...]:
    """System fonts to try for characters the built-in font lacks, best first: what fontconfig
    prefers for Chinese and for sans-serif text, then well-known paths. Looked up once."""
    found: list[tuple[str, int]] = []
    fc_match = shutil.which("fc-match")
    if fc_match is not None:
        for query in _FONTCONFIG_QUERIES:
            found.extend(_fontconfig(fc_match, query)[:_FONTCONFIG_CANDIDATES_PER_QUERY])
    found.extend(font for font in _WELL_KNOWN_FONTS if Path(font[0]).is_file())
    return tuple(dict.fromkeys(found))


def _fontconfig(fc_match: str, query: str) -> list[tuple[str, int]]:
    try:
        # Our own fixed query to fontconfig's tool, found on PATH by shutil.which.
        result = subprocess.run(  # noqa: S603
            [fc_match, "--sort", "--format", "%{file}\t%{index}\n", query],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    fonts: list[tuple[str, int]] = []
    for line in result.stdout.splitlines():
        path, _, index = line.partition("\t")
        if path and Path(path).is_file():
            fonts.append((path, int(index) if index.isdigit() else 0))
    return fonts
