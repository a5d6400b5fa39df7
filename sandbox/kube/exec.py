"""`pods/exec` over kubectl's websocket protocol (the channel protocols v5/v4.channel.k8s.io).

kubectl 1.33 opens a websocket on `GET .../pods/<name>/exec?command=...&container=...` and
offers the channel sub-protocols; every binary message starts with its channel: 0 stdin,
1 stdout, 2 stderr, 3 the final Status (JSON), 4 a terminal resize, and (v5) 255 "this channel
is closed". The command's exit code goes back in that Status, which is how `kubectl exec`
exits with it. What runs is up to the caller (a sandbox pod is a local process); this module
only speaks the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import aiohttp.web

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, CLOSE = 0, 1, 2, 3, 255
MAX_SECONDS = 600.0  # a sandbox exec is bounded, whatever it runs


@dataclass
class ExecRequest:
    """What the query string asks for."""

    command: list[str]
    container: str | None
    stdin: bool

    @classmethod
    def parse(cls, query: Mapping[str, str], commands: list[str]) -> ExecRequest:
        if not commands:
            raise ValueError("you must specify at least 1 command")
        if query.get("tty") in ("true", "1"):
            raise ValueError("a TTY is not served by the sandbox: run kubectl exec without -t")
        stdin = query.get("stdin") in ("true", "1")
        return cls(command=commands, container=query.get("container"), stdin=stdin)


@dataclass
class Started:
    """A started command, or the reason it could not start (then `stderr` says why)."""

    process: asyncio.subprocess.Process | None = None
    stderr: str = ""
    exit_code: int = 0
    failure: str | None = None  # the error kube reports when the command cannot run at all


Start = Callable[[ExecRequest], Awaitable[Started]]


def status(exit_code: int, command: list[str], failure: str | None) -> dict[str, Any]:
    """The Status on the error channel: Success, or the exit code kubectl exits with."""
    if failure is not None:
        return {"metadata": {}, "status": "Failure", "message": failure,
                "reason": "InternalError", "code": 500}  # fmt: skip
    if exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
        f"{command}, exit code {exit_code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
    }


async def serve(
    raw: aiohttp.web.BaseRequest, asked: ExecRequest, start: Start
) -> aiohttp.web.WebSocketResponse | None:
    """Upgrade, run, stream, send the Status, close."""
    ws = aiohttp.web.WebSocketResponse(protocols=PROTOCOLS, autoping=True)
    if not ws.can_prepare(raw).ok:
        return None  # not a websocket request: the caller answers it
    await ws.prepare(raw)
    started = await start(asked)
    code = started.exit_code
    if started.stderr:
        await ws.send_bytes(bytes([STDERR]) + started.stderr.encode())
    if started.process is not None:
        code = await _pump(ws, started.process, asked.stdin)
    if not ws.closed:
        body = json.dumps(status(code, asked.command, started.failure)).encode()
        await ws.send_bytes(bytes([ERROR]) + body)
        await ws.close()
    return ws


async def _pump(
    ws: aiohttp.web.WebSocketResponse, process: asyncio.subprocess.Process, stdin: bool
) -> int:
    """Forward stdout and stderr as they come (and stdin, when asked), until the process
    ends; a client that goes away, or the time bound, stops the process."""

    async def forward(stream: asyncio.StreamReader | None, channel: int) -> None:
        while stream is not None and (chunk := await stream.read(65536)):
            await ws.send_bytes(bytes([channel]) + chunk)

    feeding = asyncio.ensure_future(_feed(ws, process) if stdin else _drain(ws))
    try:
        async with asyncio.timeout(MAX_SECONDS):
            await asyncio.gather(forward(process.stdout, STDOUT), forward(process.stderr, STDERR))
            return await process.wait()
    except (TimeoutError, ConnectionError):
        return 137
    finally:
        feeding.cancel()
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def _feed(ws: aiohttp.web.WebSocketResponse, process: asyncio.subprocess.Process) -> None:
    """Channel 0 into the process' stdin; a v5 close of channel 0 (or the socket) ends it."""
    assert process.stdin is not None
    async for message in ws:
        if message.type != aiohttp.WSMsgType.BINARY or not message.data:
            continue
        channel, data = message.data[0], message.data[1:]
        if channel == STDIN:
            process.stdin.write(data)
            await process.stdin.drain()
        elif channel == CLOSE and data[:1] == bytes([STDIN]):
            break
    process.stdin.close()


async def _drain(ws: aiohttp.web.WebSocketResponse) -> None:
    """Read (and drop) what the client sends, so pings and its close are answered."""
    async for _ in ws:
        pass
