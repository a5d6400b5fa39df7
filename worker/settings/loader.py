"""Read runbook.yaml and turn every way it can be wrong into one readable ConfigError."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from worker.settings.runbook import DEFAULT_CONFIG, SECRET_FIELDS, ConfigError, Settings

HINTS = {
    "missing": "add this field",
    "extra_forbidden": "remove it or fix its spelling",
    "int_parsing": "write a whole number",
    "float_parsing": "write a number",
    "bool_parsing": "write true or false",
    "string_pattern_mismatch": "use a Kubernetes name: lowercase letters, digits, '-' and '.'",
    "list_type": "write a YAML list (lines starting with '- ')",
    "dict_type": "write a YAML mapping (key: value lines)",
    "enum": "use one of the values listed",
}


def config_path(explicit: Path | None = None) -> Path | None:
    """--config, else RUNBOOK_CONFIG, else ./runbook.yaml when present; None means defaults."""
    if explicit is not None:
        return explicit
    if os.environ.get("RUNBOOK_CONFIG"):
        return Path(os.environ["RUNBOOK_CONFIG"])
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def _read(path: Path) -> tuple[dict[str, Any], yaml.Node | None]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: file not found. Fix: point RUNBOOK_CONFIG (or --config) at your "
            "runbook.yaml; runbook.example.yaml is a starting point"
        ) from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(
            f"{path}{where}: not valid YAML: {problem}. Fix the syntax there"
        ) from None
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (temporal:, targets:, ...)")
    for name in SECRET_FIELDS:
        if name in data:
            env = f"RUNBOOK_{name.upper()}"
            raise ConfigError(
                f"{path}: {name} must not be written in this file (it is not secret storage). "
                f"Fix: remove it and set {env} or {env}_FILE in the worker's environment"
            )
    return data, node


def _line(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The line of the deepest YAML node the error location reaches."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def _describe(err: ValidationError, path: Path | None, root: yaml.Node | None) -> str:
    lines = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        env = "RUNBOOK_" + "__".join(str(p) for p in loc).upper()
        if env in os.environ:
            where = f"environment variable {env}"
        else:
            line = _line(root, loc)
            where = f"{path}:{line}" if path and line else str(path or "defaults")
        hint = HINTS.get(e["type"], "see runbook.example.yaml for the expected form")
        message = e["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {field}: {message}. Fix: {hint}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(explicit: Path | None = None) -> Settings:
    path = config_path(explicit)
    data, root = _read(path) if path else ({}, None)
    try:
        return Settings(**data)
    except ValidationError as err:
        raise ConfigError(_describe(err, path, root)) from None
