"""The generator of the bundled test clip ``sequences/synthetic_416x240_30.y4m``.

It lives in the package so that an installed vcodec (wheel, no source tree)
can regenerate the demo clip bit for bit; ``tools/make_sequence.py`` is its
command-line front end.

416x240 (HEVC class D size), 30 frames at 30 fps, 8-bit 4:2:0, limited range,
BT.601.  A static textured background (value noise, a road with lane marks, a
block of windows) with seven rigidly moving textured objects: different sizes
and speeds, some overlapping each other, some entering or leaving the picture.
A little per-frame sensor noise keeps it from being trivially compressible.

Everything is integer arithmetic on a seeded PCG64 generator, so the output is
bit-identical on every machine (floating-point SIMD paths can differ by an ulp
between CPUs, which would change the md5).  ``tests/test_io_sequence.py``
regenerates the clip and compares its md5 with ``tests/expected/sequence.md5``.

Usage::

    python tools/make_sequence.py                      # writes sequences/synthetic_416x240_30.y4m
    python tools/make_sequence.py --out /tmp/clip.y4m  # elsewhere
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vcodec.io import Frame, VideoInfo, open_writer

WIDTH, HEIGHT, FRAMES, FPS = 416, 240, 30, 30
SEED = 20240601
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "sequences" / f"synthetic_{WIDTH}x{HEIGHT}_{FPS}.y4m"
SUB = 16  # positions and velocities are in 1/16 pixel


def value_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth noise in [0, 255]: random lattice values, bilinearly interpolated (integers only)."""
    gh, gw = h // cell + 2, w // cell + 2
    grid = rng.integers(0, 256, size=(gh, gw), dtype=np.int64)
    ys, xs = np.arange(h), np.arange(w)
    y0, fy = ys // cell, (ys % cell)[:, None]
    x0, fx = xs // cell, (xs % cell)[None, :]
    g00 = grid[y0][:, x0]
    g01 = grid[y0][:, x0 + 1]
    g10 = grid[y0 + 1][:, x0]
    g11 = grid[y0 + 1][:, x0 + 1]
    c = cell
    acc = g00 * (c - fy) * (c - fx) + g01 * (c - fy) * fx + g10 * fy * (c - fx) + g11 * fy * fx
    return (acc + c * c // 2) // (c * c)


def background(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-resolution Y, U, V (int64) of the static scene."""
    h, w = HEIGHT, WIDTH
    n = 4 * value_noise(rng, h, w, 64) + 2 * value_noise(rng, h, w, 16) + value_noise(rng, h, w, 4)
    y = 50 + n * 120 // (7 * 255)  # 50..170: sky/wall texture
    u = 118 + value_noise(rng, h, w, 48) * 16 // 255
    v = 122 + value_noise(rng, h, w, 48) * 14 // 255
    # a road band with dashed lane marks (strong horizontal edges and periodic texture)
    road = slice(140, 212)
    y[road] = 70 + value_noise(rng, 72, w, 8) * 30 // 255
    u[road], v[road] = 126, 128
    xs = np.arange(w)
    dash = (xs % 40) < 22
    y[174:177, dash] = 205
    # a building face with a grid of windows (high-frequency, static detail)
    y[24:120, 280:400] = 95 + value_noise(rng, 96, 120, 8) * 20 // 255
    for r in range(30, 112, 16):
        for col in range(288, 392, 14):
            y[r : r + 9, col : col + 8] = 190 - (r + col) % 37
            u[r : r + 9, col : col + 8], v[r : r + 9, col : col + 8] = 136, 118
    return y, u, v


@dataclass
class Mover:
    """One rigid textured object: a rectangle or an ellipse moving at constant velocity."""

    w: int
    h: int
    x16: int  # top-left position at frame 0, in 1/16 px
    y16: int
    vx16: int  # velocity, 1/16 px per frame
    vy16: int
    ellipse: bool
    tex_y: np.ndarray
    tex_u: np.ndarray
    tex_v: np.ndarray
    mask: np.ndarray

    def position(self, t: int) -> tuple[int, int]:
        # >> floors negative positions too, so entering objects move smoothly
        return (self.x16 + self.vx16 * t) >> 4, (self.y16 + self.vy16 * t) >> 4


def make_mover(
    rng: np.random.Generator, w: int, h: int, x: float, y: float, vx: float, vy: float,
    ellipse: bool, yuv: tuple[int, int, int], pattern: str,
) -> Mover:
    ys, xs = np.mgrid[0:h, 0:w]
    if pattern == "stripes":
        tex = np.where((xs // 6 + ys // 6) % 2 == 0, 40, -30)
    elif pattern == "checker":
        tex = np.where((xs // 4 + ys // 4) % 2 == 0, 55, -55)
    elif pattern == "car":
        tex = (value_noise(rng, h, w, 4) - 128) // 6
        # windows along the top third, wheels at the bottom corners
        tex[h // 6 : h // 2, w // 8 : w - w // 8] -= 60
        tex[h - h // 4 :, : w // 4] = -90
        tex[h - h // 4 :, w - w // 4 :] = -90
    else:  # "noise"
        tex = (value_noise(rng, h, w, 3) - 128) // 3
    by, bu, bv = yuv
    if ellipse:
        # integer ellipse test: ((2x+1-w)/w)^2 + ((2y+1-h)/h)^2 <= 1
        mask = (2 * xs + 1 - w) ** 2 * h * h + (2 * ys + 1 - h) ** 2 * w * w <= w * w * h * h
    else:
        mask = np.ones((h, w), dtype=bool)
    shade = (value_noise(rng, h, w, 8) - 128) // 16
    return Mover(
        w, h, round(x * SUB), round(y * SUB), round(vx * SUB), round(vy * SUB), ellipse,
        by + tex, bu + shade, bv - shade, mask,
    )


def movers(rng: np.random.Generator) -> list[Mover]:
    """The objects, back to front."""
    return [
        # big slow textured block, half outside the left edge at the start
        make_mover(rng, 120, 80, -70, 40, 0.75, 0.25, False, (150, 110, 140), "noise"),
        # car entering from the left
        make_mover(rng, 96, 40, -40, 150, 5.5, 0.0, False, (120, 150, 110), "car"),
        # car entering from the right (outside at frame 0), overlapping the first from frame ~26
        make_mover(rng, 72, 32, 440, 166, -9.0, 0.0, False, (180, 100, 150), "car"),
        # person-like ellipse walking down-right
        make_mover(rng, 24, 60, 120, 50, 1.25, 0.5, True, (140, 120, 150), "stripes"),
        # ball flying up-right, leaving through the top
        make_mover(rng, 30, 30, 200, 120, 4.0, -5.5, True, (200, 80, 170), "checker"),
        # small fast object leaving on the right
        make_mover(rng, 16, 16, 300, 90, 9.0, 1.0, False, (60, 160, 100), "checker"),
        # second person, ellipse partly occluded by the cars
        make_mover(rng, 20, 52, 230, 124, -1.5, 0.75, True, (110, 140, 120), "stripes"),
    ]


def paste(plane: np.ndarray, tex: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    """Draw ``tex`` where ``mask`` is set, top-left at (x, y), clipped to the plane."""
    h, w = tex.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, plane.shape[1]), min(y + h, plane.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    sub = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
    region = plane[y0:y1, x0:x1]
    region[mask[sub]] = tex[sub][mask[sub]]


def render(seed: int = SEED) -> list[Frame]:
    rng = np.random.Generator(np.random.PCG64(seed))
    bg = background(rng)
    objs = movers(rng)
    frames = []
    for t in range(FRAMES):
        y, u, v = (p.copy() for p in bg)
        for m in objs:
            px, py = m.position(t)
            paste(y, m.tex_y, m.mask, px, py)
            paste(u, m.tex_u, m.mask, px, py)
            paste(v, m.tex_v, m.mask, px, py)
        # sensor noise: luma -3..3 (triangular-ish), chroma -1..1
        y = y + rng.integers(-2, 3, size=y.shape) + rng.integers(-1, 2, size=y.shape)
        # 4:2:0 chroma: rounded mean of each 2x2 block
        uc = (u.reshape(HEIGHT // 2, 2, WIDTH // 2, 2).sum(axis=(1, 3)) + 2) // 4
        vc = (v.reshape(HEIGHT // 2, 2, WIDTH // 2, 2).sum(axis=(1, 3)) + 2) // 4
        uc = uc + rng.integers(-1, 2, size=uc.shape)
        vc = vc + rng.integers(-1, 2, size=vc.shape)
        frames.append(
            Frame(
                np.clip(y, 16, 235).astype(np.uint8), np.clip(uc, 16, 240).astype(np.uint8),
                np.clip(vc, 16, 240).astype(np.uint8), 8, t, "bt601",
            )
        )
    return frames


def write(out: Path, seed: int = SEED) -> str:
    """Write the clip to ``out``; returns its md5."""
    info = VideoInfo(WIDTH, HEIGHT, Fraction(FPS), 8, FRAMES, "bt601", str(out))
    with open_writer(out, info, format="y4m") as wr:
        for f in render(seed):
            wr.write(f)
    return hashlib.md5(out.read_bytes()).hexdigest()
