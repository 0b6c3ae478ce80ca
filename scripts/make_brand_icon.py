"""Draw the integration's 256x256 brand icon with the standard library only (no downloads).

A mains waveform on the left splits into three appliance bars on the right: one signal in,
several appliances out. Run: ``.venv/bin/python scripts/make_brand_icon.py``.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

SIZE = 256
OUT = Path(__file__).resolve().parents[1] / "custom_components" / "nilm" / "brand" / "icon.png"
BG = (3, 169, 244)  # Home Assistant blue
FG = (255, 255, 255)
BARS = ((255, 193, 7), (76, 175, 80), (244, 67, 54))


def pixel(x: int, y: int) -> tuple[int, int, int, int]:
    # Rounded square background with transparent corners.
    r, m = 48, 8
    cx = min(max(x, m + r), SIZE - 1 - m - r)
    cy = min(max(y, m + r), SIZE - 1 - m - r)
    if (x - cx) ** 2 + (y - cy) ** 2 > r * r:
        return (0, 0, 0, 0)
    # Mains waveform (left half): a thick sine line.
    if 36 <= x <= 120:
        wave = 128 - 40 * math.sin((x - 36) / 84 * 2 * math.pi)
        if abs(y - wave) <= 6:
            return (*FG, 255)
    # Arrow shaft.
    if 124 <= x <= 146 and abs(y - 128) <= 4:
        return (*FG, 255)
    if 146 <= x <= 158 and abs(y - 128) <= (158 - x):
        return (*FG, 255)
    # Three appliance bars (right half) of different heights.
    for i, (height, colour) in enumerate(zip((110, 70, 150), BARS, strict=True)):
        left = 168 + i * 22
        if left <= x < left + 16 and 200 - height <= y <= 200:
            return (*colour, 255)
    return (*BG, 255)


def png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    rows = [bytes(c for x in range(SIZE) for c in pixel(x, y)) for y in range(SIZE)]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(png(SIZE, SIZE, rows))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
