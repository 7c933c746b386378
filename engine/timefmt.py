"""Times as people read them: the one clock formatter of the CLI and the demo."""
from __future__ import annotations


def clock(seconds: float, decimals: int = 0) -> str:
    """0:03, 1:02:10 (decimals=0); 0:03.5 (decimals=1). Negative times read as 0."""
    s = round(max(float(seconds), 0.0), decimals)
    whole = int(s)
    h, rem = divmod(whole, 3600)
    m, sec = divmod(rem, 60)
    sec_text = f"{sec:02d}" if decimals == 0 else f"{sec + s - whole:0{3 + decimals}.{decimals}f}"
    return f"{h}:{m:02d}:{sec_text}" if h else f"{m}:{sec_text}"


def span_text(query_start: float, query_end: float, start: float, end: float, decimals: int = 0) -> str:
    """"query 0:03–0:11 ↔ 1:02–1:10": a matched segment, query side first."""
    c = lambda t: clock(t, decimals)  # noqa: E731
    return f"query {c(query_start)}–{c(query_end)} ↔ {c(start)}–{c(end)}"
