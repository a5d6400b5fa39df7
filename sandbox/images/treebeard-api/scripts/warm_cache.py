"""The treebeard API's cache warmer, as its image ships it: `python scripts/warm_cache.py
[--critical-only]` fills the Redis at REDIS_URL with the catalog the API reads through.

The most read items (the first CRITICAL) go first, so a warm cut short still serves the hot
path; without --critical-only the whole catalog follows. Each entry is what the API itself
writes on a miss, with the same TTL, so a warmed key and a key filled by a request are the
same. It is the application's script, not the sandbox's: it needs the `redis` package only.
It prints what it wrote and exits 0, or prints Redis' error on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys

import redis

ITEMS = 500  # the catalog's size
CRITICAL = 50  # the items read most, warmed first
TTL_S = 600  # as the API sets it on a miss
BATCH = 100  # entries per pipeline round trip


def key(i: int) -> str:
    return f"catalog:item:{i}"


def value(i: int) -> str:
    return f"item {i} from the database"


def warm(client: redis.Redis, count: int) -> int:
    """Write the first `count` items, in order, BATCH per round trip."""
    for start in range(0, count, BATCH):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + BATCH, count)):
            pipe.set(key(i), value(i), ex=TTL_S)
        pipe.execute()
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Warm the catalog cache in Redis.")
    parser.add_argument(
        "--critical-only", action="store_true", help=f"only the {CRITICAL} most read items"
    )
    args = parser.parse_args(argv)
    url = os.environ.get("REDIS_URL")
    if not url:
        print("warm_cache: REDIS_URL is not set", file=sys.stderr)
        return 2
    count = CRITICAL if args.critical_only else ITEMS
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10) as client:
            written = warm(client, count)
    except (redis.RedisError, OSError) as err:
        print(f"warm_cache: Redis error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    which = "critical" if args.critical_only else "all"
    print(f"warm_cache: wrote {written} catalog items ({which}, TTL {TTL_S}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
