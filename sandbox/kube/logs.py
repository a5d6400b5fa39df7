"""`pods/log` as the kubelet serves it through the API server: the container's output, the
last `tailLines` of it, within `limitBytes`; a pod with several containers needs `container`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

JSONDict = dict[str, Any]
# (namespace, pod, container) -> the file the container writes its output to, if it runs here
LogFiles = Callable[[str, str, str], Path | None]


class LogRefused(ValueError):
    """A request kube-apiserver answers 400 to, with this message."""


def container_of(pod: JSONDict, params: Mapping[str, str]) -> str:
    names: list[str] = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    wanted = params.get("container")
    if wanted:
        if wanted not in names:
            raise LogRefused(f"container {wanted} is not valid for pod {pod['metadata']['name']}")
        return str(wanted)
    if len(names) != 1:
        raise LogRefused(
            f"a container name must be specified for pod {pod['metadata']['name']}, choose one "
            f"of: [{' '.join(names)}]"
        )
    return names[0]


def read_log(path: Path | None, params: Mapping[str, str]) -> str:
    """The lines the request asks for (all, or the last `tailLines`), cut to `limitBytes`."""
    text = path.read_text(errors="replace") if path is not None and path.exists() else ""
    lines = text.splitlines(keepends=True)
    tail = params.get("tailLines")
    if tail is not None:
        count = int(tail)
        lines = lines[-count:] if count > 0 else []
    body = "".join(lines)
    limit = params.get("limitBytes")
    return body[: int(limit)] if limit is not None else body
