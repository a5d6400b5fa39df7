"""Where a sandbox Redis pod's configuration comes from, in the order redis-server applies it:
the config file its command names (mounted from the `redis-config` ConfigMap, as a real
StatefulSet does it), then the container's `--key value` args, which override the file. A
memory limit with no maxmemory anywhere gives maxmemory at 3/4 of the limit.

The file is read when the container starts, as redis-server reads it: editing the ConfigMap
changes a running Redis only after a restart, which is what a person finds on a real cluster.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

JSONDict = dict[str, Any]
_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity_bytes(value: str) -> int:
    """'64Mi' -> 67108864: the memory quantities the manifests use."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([kMG]i?|)", str(value).strip())
    if not found:
        raise ValueError(f"not a memory quantity: {value!r}")
    return int(float(found.group(1)) * _UNITS[found.group(2)])


def parse_conf(text: str) -> dict[str, str]:
    """redis.conf directives: one per line, `#` comments, the last of a repeated one wins
    (but `save` lines add up, as redis-server reads them)."""
    config: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = shlex.split(line)
        key, value = words[0].lower(), " ".join(words[1:])
        if key == "save" and config.get("save") and value:  # save lines add up
            value = f"{config['save']} {value}"
        config[key] = value
    return config


def arg_options(container: Mapping[str, Any]) -> dict[str, str]:
    """The container's `--key value` args (a `--key` with no value is left out)."""
    config: dict[str, str] = {}
    args = [str(a) for a in container.get("args") or []]
    for i, arg in enumerate(args):
        if arg.startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--"):
            config[arg[2:]] = args[i + 1]
    return config


def config_file(pod: Mapping[str, Any], container: Mapping[str, Any]) -> tuple[str, str] | None:
    """(ConfigMap name, key) of the config file the container's command names, when it lies
    in a volume mounted from a ConfigMap; None when Redis runs on its args alone."""
    paths = [
        str(a) for a in [*(container.get("command") or [])[1:], *(container.get("args") or [])]
    ]
    wanted = next((p for p in paths if p.endswith(".conf")), None)
    if wanted is None:
        return None
    volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        prefix = str(mount["mountPath"]).rstrip("/") + "/"
        source = (volumes.get(mount["name"]) or {}).get("configMap")
        if source and wanted.startswith(prefix):
            name = wanted[len(prefix) :]
            for item in source.get("items") or []:
                if item.get("path") == name:
                    return str(source["name"]), str(item["key"])
            return str(source["name"]), name
    return None


def redis_options(container: Mapping[str, Any], conf_text: str | None) -> dict[str, str]:
    """What redis-server ends up with: the file, then the args over it, then maxmemory from
    the memory limit when neither set it."""
    config = {**parse_conf(conf_text or ""), **arg_options(container)}
    limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if limit and "maxmemory" not in config:
        config["maxmemory"] = str(quantity_bytes(limit) * 3 // 4)
    return config
