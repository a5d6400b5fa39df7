"""What Redis was told to run with: its config file from a ConfigMap, the container's
`--key value` args over it (redis-server applies them in that order). Only the settings the
runbook compares with the live CONFIG are kept, in the live form (maxmemory in bytes)."""

from __future__ import annotations

import re
import shlex

COMPARED = ("maxmemory", "maxmemory-policy", "maxclients", "appendonly", "save")
# redis.conf memory units (redis.conf's own header): k=1000, kb=1024 and so on.
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 2**10, "m": 10**6, "mb": 2**20, "g": 10**9,
          "gb": 2**30}  # fmt: skip


def memory_bytes(value: str) -> str:
    """'24mb' -> '25165824'; a value that is not a size is returned as it is."""
    found = re.fullmatch(r"(\d+)\s*([a-z]*)", value.strip().lower())
    if found is None or found.group(2) not in _UNITS:
        return value
    return str(int(found.group(1)) * _UNITS[found.group(2)])


def directives(text: str) -> dict[str, str]:
    """redis.conf lines: `key value...`, `#` comments, the last of a repeated one wins
    (but `save` lines add up, as redis-server reads them)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue  # an unbalanced quote: redis-server would refuse it; not ours to judge
        if not words:
            continue
        key, value = words[0].lower(), " ".join(words[1:])
        if key == "save" and found.get("save") and value:  # save lines add up
            value = f"{found['save']} {value}"
        found[key] = value
    return found


def arg_directives(args: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg.startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--"):
            found[arg[2:].lower()] = args[i + 1]
    return found


def configured(conf_text: str, args: list[str]) -> dict[str, str]:
    """The compared settings as the file and the args set them."""
    merged = {**directives(conf_text), **arg_directives(args)}
    kept = {key: merged[key] for key in COMPARED if key in merged}
    if "maxmemory" in kept:
        kept["maxmemory"] = memory_bytes(kept["maxmemory"])
    return kept
