"""What every `runbook` subcommand shares: its errors, its output (text, or one JSON object
with --json) and the Temporal connection."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from temporalio.client import Client
from temporalio.runtime import Runtime

from worker.client import TemporalSettingsError, connect, connect_options
from worker.payloads.codec import CodecError
from worker.settings.runbook import Settings


class UsageError(Exception):
    """Bad input from the person at the terminal: exit 2, nothing started or changed."""


class CommandFailed(Exception):
    """The command ran and the answer is no (a refused approval, a failed workflow): exit
    `code`; `details` go into the JSON error object beside the message."""

    def __init__(self, message: str, *, code: int = 1, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


def emit(as_json: bool, data: Mapping[str, Any], text: str) -> None:
    """One JSON object (for scripts) or the text (for people), on stdout."""
    print(json.dumps(data, indent=2, default=str) if as_json else text)


def report_error(
    as_json: bool, message: str, code: int, details: Mapping[str, Any], prefix: str = ""
) -> int:
    """With --json the error is a JSON object on stdout too, so a script reads one stream;
    otherwise `prefix` + the message goes to stderr. Returns `code` for the exit status."""
    if as_json:
        print(json.dumps({"error": message, "exit_code": code, **details}, indent=2, default=str))
    else:
        print(f"{prefix}{message}", file=sys.stderr)
    return code


TLS_HINT = ("check the TLS settings (TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH, "
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH, or the profile's tls)")  # fmt: skip


async def connect_or_explain(settings: Settings, runtime: Runtime | None = None) -> Client:
    try:
        return await connect(settings.temporal, runtime)
    except (CodecError, TemporalSettingsError) as err:
        raise UsageError(str(err)) from None
    except RuntimeError as err:
        options = connect_options(settings.temporal)
        hints = ["start it (temporal server start-dev) or set TEMPORAL_ADDRESS"]
        if options.get("tls"):
            hints.append(TLS_HINT)
        if options.get("api_key") or "auth" in str(err).lower():
            hints.append("check TEMPORAL_API_KEY (or the profile's api_key)")
        raise UsageError(
            f"cannot reach Temporal at {options['target_host']}: {err}. Fix: {'; '.join(hints)}"
        ) from None
