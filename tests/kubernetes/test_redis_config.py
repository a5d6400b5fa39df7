"""What Redis was told to run with, read as redis-server reads it: the shipped redis.conf,
then the container's args over it."""

from __future__ import annotations

from pathlib import Path

from activities.kubernetes.redis_config import configured, memory_bytes

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "redis.conf"


def test_the_shipped_config_file_in_the_live_form() -> None:
    found = configured(SHIPPED.read_text(), [])
    assert found == {"maxmemory": str(192 * 2**20), "maxmemory-policy": "allkeys-lru",
                     "maxclients": "10000", "appendonly": "no", "save": "900 1 300 10"}  # fmt: skip


def test_args_win_over_the_file_and_units_are_redis_units() -> None:
    args = ["--maxmemory", "100m", "--maxclients", "20000", "--enable-debug-command", "yes"]
    found = configured("maxmemory 1gb\nmaxclients 10\n", args)
    assert found["maxmemory"] == str(100 * 10**6) and found["maxclients"] == "20000"
    assert (memory_bytes("1kb"), memory_bytes("1k"), memory_bytes("lots")) == (
        "1024",
        "1000",
        "lots",
    )
