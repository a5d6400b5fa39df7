"""The log lines a person reads first in a Redis incident, picked out of the containers'
recent output: the Redis container's own log, and the lines of the API's log that mention
Redis. Each kind of line is kept once per container (the latest, with how many there were),
quoted as it was written, cut to a readable length. Bounded on the way in too: the reads ask
for a tail and a byte limit."""

from __future__ import annotations

import re

from contracts.kubernetes import LogLine

TAIL_LINES = 100
LIMIT_BYTES = 64 * 1024
MAX_QUOTE = 300

REDIS_LINES: tuple[tuple[str, str], ...] = (
    ("oom", r"OOM command not allowed|Out Of Memory allocating|Can't allocate"),
    ("persistence", r"MISCONF|Background saving error|Can't save in background|"
                    r"Error writing to the AOF|Background AOF rewrite terminated with error"),
    ("max_clients", r"max number of clients reached|Error allocating resources for the client"),
    ("loading", r"Loading RDB|Loading the AOF|DB loaded from"),
    ("crash", r"REDIS BUG REPORT|crashed by signal|Guru Meditation"),
    ("shutdown", r"Received SIG\w+ scheduling shutdown|User requested shutdown"),
    ("started", r"Redis is starting|Server initialized"),
)  # fmt: skip
API_LINES: tuple[tuple[str, str], ...] = (
    # redis-py drops the OOM code from the message; other clients keep it
    ("oom", r"OOM command not allowed|OutOfMemoryError|command not allowed when used memory"),
    ("refused", r"Connection refused|Error 111"),
    ("timeout", r"[Tt]imed out|[Tt]imeout"),
    ("readonly", r"READONLY"),
    ("max_clients", r"max number of clients reached"),
    ("loading", r"LOADING"),
    ("persistence", r"MISCONF"),
)
MENTIONS_REDIS = re.compile(r"redis", re.IGNORECASE)


def quote(line: str) -> str:
    line = line.strip()
    return line if len(line) <= MAX_QUOTE else line[: MAX_QUOTE - 1] + "…"


def pick(
    text: str, source: str, kinds: tuple[tuple[str, str], ...], redis_only: bool
) -> list[LogLine]:
    """One LogLine per kind of line found: the latest, and how many there were."""
    found: dict[str, LogLine] = {}
    for line in text.splitlines():
        if redis_only and not MENTIONS_REDIS.search(line):
            continue
        for kind, pattern in kinds:
            if re.search(pattern, line):
                seen = found.get(kind)
                count = seen.count + 1 if seen else 1
                found[kind] = LogLine(source=source, kind=kind, line=quote(line), count=count)
                break
    order = [kind for kind, _ in kinds]
    return sorted(found.values(), key=lambda entry: order.index(entry.kind))


def redis_log_lines(text: str, pod: str, container: str) -> list[LogLine]:
    return pick(text, f"{pod}/{container}", REDIS_LINES, redis_only=False)


def api_log_lines(text: str, pod: str, container: str) -> list[LogLine]:
    return pick(text, f"{pod}/{container}", API_LINES, redis_only=True)
