"""How often long work logs where it is (training steps inside an epoch, the scan of an
image-folder dataset), so that `tail -f` on a job's log always tells: every
`LOG_EVERY_S` seconds, or `LSKD_LOG_EVERY` seconds when that is set."""

from __future__ import annotations

import os

LOG_EVERY_S = 60.0


def log_every_s() -> float:
    """Seconds between two progress lines (`LSKD_LOG_EVERY` overrides the default)."""
    return float(os.environ.get("LSKD_LOG_EVERY") or LOG_EVERY_S)


def format_clock(seconds: float) -> str:
    """`h:mm:ss` of a duration."""
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{s:02d}"
