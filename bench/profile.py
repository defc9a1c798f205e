"""Summarise py-spy's collapsed stacks (``-f raw``): where the sidecar's CPU goes.

``python -m bench.profile FILE [--top N] [--idle]``: self time per function, inclusive time per
function, and inclusive time per top-level area (module folder). Idle frames (the event loop
waiting in epoll/select) are left out unless ``--idle``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = re.compile(
    r"\b(select|poll|epoll|_run_once|run_forever)\b.*\((selectors|base_events|uvloop)"
)
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def parse(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def where(frame: str) -> tuple[str, str]:
    """(function label without line, area) of one frame."""
    match = FRAME.match(frame)
    if not match:
        return frame, "?"
    func, file = match.group("func"), match.group("file")
    for marker in ("site-packages/", "carrier_sidecar/", "lib/python3.11/"):
        if marker in file:
            rest = file.split(marker, 1)[1]
            area = "carrier_sidecar" if marker == "carrier_sidecar/" else rest.split("/", 1)[0]
            if marker == "lib/python3.11/":
                area = "stdlib:" + area.removesuffix(".py")
            return f"{func} ({rest})", area.removesuffix(".py")
    return f"{func} ({file})", file


def summarise(path: Path, top: int = 20, idle: bool = False) -> dict[str, list[tuple[str, float]]]:
    if not path.exists():
        return {}
    stacks = parse(path)
    total = sum(c for _, c in stacks)
    busy = [(s, c) for s, c in stacks if idle or not IDLE.search(s[-1])]
    busy_total = sum(c for _, c in busy) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    for frames, count in busy:
        buckets[_bucket(frames)] += count
        labels = [where(f) for f in frames]
        own[labels[-1][0]] += count
        for label in {lab for lab, _ in labels}:
            inclusive[label] += count
        areas[_area_of(labels)] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, 100 * v / busy_total) for k, v in counter.most_common(top)]

    return {
        "samples": [("total", float(total)), ("busy", float(busy_total))],
        "self": share(own),
        "inclusive": share(inclusive),
        "buckets": share(buckets),
        "areas": share(areas),
    }


BUCKETS = (
    ("botocore/useragent.py", "SQS client: User-Agent string rebuilt per call (botocore)"),
    ("botocore/auth.py", "SQS client: SigV4 signing (botocore)"),
    ("botocore/parsers.py", "SQS client: response parsing (botocore)"),
    ("botocore/serialize.py", "SQS client: request serialisation (botocore)"),
    ("regions.py", "SQS client: endpoint ruleset resolution (botocore)"),
    ("http_writer.py", "socket writes (aiohttp writer → send syscall; loopback kernel work)"),
    ("botocore", "SQS client: other aiobotocore/botocore"),
    ("webhook_client.py", "webhook POST (aiohttp client)"),
    ("aiohttp", "aiohttp other (connections, responses; SQS and webhook)"),
    ("carrier_sidecar", "carrier_sidecar own code"),
)


def _bucket(frames: list[str]) -> str:
    """Which part of the work a sample belongs to (first rule that matches, deepest frame first)."""
    if not frames[-1] or frames[-1].startswith("Runner.run"):
        return "event loop itself (uvloop C code: callbacks, epoll, socket reads)"
    joined = ";".join(frames)
    deepest = frames[-1]
    for marker, name in BUCKETS[:6]:
        if marker in deepest:
            return name
    for marker, name in BUCKETS:
        if marker in joined:
            return name
    return "other"


def _area_of(labels: list[tuple[str, str]]) -> str:
    """The deepest non-stdlib library a busy sample is in (botocore, aiohttp, yarl, ...)."""
    for _, area in reversed(labels):
        if not area.startswith("stdlib:") and area not in {"?", "<frozen runpy>"}:
            return area
    return labels[-1][1]


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.profile")
    ap.add_argument("file", type=Path)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--idle", action="store_true")
    args = ap.parse_args()
    result = summarise(args.file, args.top, args.idle)
    for section, rows in result.items():
        print(f"== {section}")
        for name, value in rows:
            print(f"{value:6.1f}  {name}")


if __name__ == "__main__":
    main()
