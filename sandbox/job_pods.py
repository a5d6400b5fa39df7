"""The kubelet's side of a Job's pod: its first container's command and args, run as a local
process, and the pod status that process gives.

A sandbox pod is not a container, so the command runs on this machine, in a session of its
own (stopped by PID and process group), in the image's directory when the sandbox has one
(`treebeard/api:1.4.2` runs in sandbox/images/treebeard-api/, where the application's own
scripts are), else in the pod's own directory. `python` and `python3` are the sandbox's
interpreter, which has the `redis` package the application's image would have. The
environment is the container's (sandbox.pod_exec.container_env), with the Redis addresses a
pod would reach in the cluster: a `redis://<service>:<port>/<db>` value, or a REDIS_HOST that
names a Service (REDIS_PORT then set to match), goes to the ready endpoint behind it
(sandbox.pod_network), and one the pod cannot reach (no ready endpoint, a NetworkPolicy that
does not admit it) goes to a closed port, so the process gets "connection refused". Its
stdout and stderr are the container's log, which `kubectl logs` serves. Only the first
container runs; any other container of the pod is reported in the same state, exiting 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sandbox.kube.api import KubeAPI, now_iso
from sandbox.pod_exec import REDIS_PORT, container_env
from sandbox.pod_network import Unreachable, reach, service_name

JSONDict = dict[str, Any]
IMAGES = Path(__file__).resolve().parent / "images"
PYTHONS = frozenset({"python", "python3"})
REDIS_SCHEMES = frozenset({"redis", "rediss"})
KILL_GRACE_S = 2.0  # the most the sandbox waits after SIGTERM (terminationGracePeriodSeconds)
# $(VAR) in a command or args is the container's env var, $$ a literal $ (as the kubelet has it)
VAR_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def image_dir(images: Path, image: str) -> Path | None:
    """The sandbox's stand-in for an image's filesystem: its repository without the tag or
    digest, `/` made `-` (`treebeard/api:1.4.2` -> images/treebeard-api); None if absent."""
    repository = image.split("@", 1)[0]
    head, _, last = repository.rpartition("/")
    name = f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]
    flat = name.replace("/", "-")
    if flat in ("", ".", ".."):
        return None
    found = images / flat
    return found if found.is_dir() else None


def expand(words: list[str], env: Mapping[str, str]) -> list[str]:
    """$(VAR) references expanded; an unknown one is left as written, as the kubelet does."""

    def one(found: re.Match[str]) -> str:
        if found.group(0) == "$$":
            return "$"
        return env.get(found.group(1), found.group(0))

    return [VAR_REFERENCE.sub(one, word) for word in words]


def container_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """command + args, with `python` the sandbox's interpreter."""
    words = [str(w) for w in [*(container.get("command") or []), *(container.get("args") or [])]]
    argv = expand(words, env)
    if argv and Path(argv[0]).name in PYTHONS:
        argv[0] = sys.executable
    return argv


class ClosedPort:
    """A loopback port bound and never listened on: connecting to it is refused, and no other
    process can listen there while this holds it."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sock.bind(("127.0.0.1", 0))
        return int(self._sock.getsockname()[1])

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


async def address(
    api: KubeAPI, pod: Mapping[str, Any], host: str, port: int, closed: ClosedPort
) -> tuple[str, int]:
    """Where a connection from the pod to host:port really goes."""
    try:
        return await reach(api, pod, host, port)
    except Unreachable:
        return "127.0.0.1", closed.port


def _redis_url(value: str, namespace: str) -> tuple[str, int] | None:
    """(service host, port) of a redis:// URL that names a Service; None for anything else."""
    try:
        url = urlsplit(value)
        host, port = url.hostname, url.port
    except ValueError:
        return None
    if url.scheme not in REDIS_SCHEMES or not host or service_name(host, namespace) is None:
        return None
    return host, port or REDIS_PORT


async def routed_env(
    api: KubeAPI, pod: Mapping[str, Any], env: Mapping[str, str], closed: ClosedPort
) -> dict[str, str]:
    """The env with each Redis address a Service name stands for replaced by the address the
    pod reaches (see the module's docstring)."""
    namespace = pod["metadata"]["namespace"]
    routed = dict(env)
    for name, value in env.items():
        target = _redis_url(value, namespace)
        if target is None:
            continue
        host, port = await address(api, pod, target[0], target[1], closed)
        url = urlsplit(value)
        userinfo = url.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
        routed[name] = urlunsplit(url._replace(netloc=netloc))
    redis_host = env.get("REDIS_HOST") or ""
    if redis_host and service_name(redis_host, namespace) is not None:
        given = env.get("REDIS_PORT") or ""
        port = int(given) if given.isdigit() else REDIS_PORT
        host, real = await address(api, pod, redis_host, port, closed)
        routed.update(REDIS_HOST=host, REDIS_PORT=str(real))
    return routed


def _exit_code(returncode: int) -> int:
    """A container's exit code: 128 + N for a process killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class ContainerRun:
    """A pod's container as a local process: one pod incarnation (`uid`), restarted in place
    under restartPolicy OnFailure (`restarts`)."""

    namespace: str
    pod: str
    uid: str
    container: str
    log: Path
    process: asyncio.subprocess.Process | None = None
    failure: str | None = None  # why the command could not start (StartError)
    started_at: str = ""
    finished_at: str = ""
    restarts: int = 0
    last_state: JSONDict = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        """The process' PID while it runs."""
        alive = self.process is not None and self.process.returncode is None
        return self.process.pid if alive and self.process is not None else None

    def exit_code(self) -> int | None:
        """None while it runs; 128 for a command that could not start."""
        if self.failure is not None:
            return 128
        if self.process is None or self.process.returncode is None:
            return None
        return _exit_code(self.process.returncode)

    def terminated(self) -> JSONDict | None:
        """The containerStatus' state.terminated once it exited (stamped when first seen)."""
        code = self.exit_code()
        if code is None:
            return None
        if not self.finished_at:
            self.finished_at = now_iso()
        reason = "Completed" if code == 0 else "StartError" if self.failure else "Error"
        state: JSONDict = {"exitCode": code, "reason": reason, "startedAt": self.started_at,
                           "finishedAt": self.finished_at}  # fmt: skip
        if self.failure:
            state["message"] = self.failure
        return state


async def terminate(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM to the process' group, SIGKILL past `grace`, then to anything left in it."""
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            _signal_group(process.pid, signal.SIGKILL)
            await process.wait()
    _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class PodProcesses:
    """The Job pods' processes, by (namespace, pod). Every process started here is stopped
    here: `shutdown` (on the controller's loop) or `stop_all` (from any thread), by PID."""

    def __init__(self, api: KubeAPI, root: Path, images: Path = IMAGES) -> None:
        self.api = api
        self.root = root
        self.images = images
        self.runs: dict[tuple[str, str], ContainerRun] = {}
        self.closed = ClosedPort()

    def log_file(self, namespace: str, pod: str, container: str) -> Path | None:
        run = self.runs.get((namespace, pod))
        return run.log if run is not None and run.container == container else None

    async def start(self, pod: JSONDict) -> ContainerRun:
        """Start the pod's first container: a new run for a new pod, in place for the same."""
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        container = pod["spec"]["containers"][0]
        where = self.root / "pods" / key[0] / key[1]
        where.mkdir(parents=True, exist_ok=True)
        run = self.runs.get(key)
        if run is None or run.uid != meta["uid"]:
            run = ContainerRun(namespace=key[0], pod=key[1], uid=meta["uid"],
                               container=container["name"],
                               log=where / f"{container['name']}.log")  # fmt: skip
            self.runs[key] = run
        elif run.exit_code() is not None:  # restarted in place (restartPolicy OnFailure)
            run.last_state = {"terminated": run.terminated()}
            run.restarts += 1
            run.process, run.failure, run.finished_at = None, None, ""
        env = await routed_env(self.api, pod, container_env(pod, container["name"]), self.closed)
        argv = container_argv(container, env)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
        cwd = image_dir(self.images, str(container.get("image") or "")) or where
        run.started_at = now_iso()
        if not argv:
            run.failure = ("no command: the sandbox runs a container's command and args (it "
                           "does not know the image's entrypoint)")  # fmt: skip
            return run
        try:
            with run.log.open("ab") as out:
                run.process = await asyncio.create_subprocess_exec(
                    *argv,
                    env=env,
                    cwd=cwd,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as err:
            missing = isinstance(err, FileNotFoundError)
            why = "executable file not found in $PATH" if missing else err.strerror
            run.failure = f'exec: "{argv[0]}": {why}'
        return run

    async def stop(self, namespace: str, pod: str, grace: float) -> ContainerRun | None:
        """Stop the pod's process (if it runs), as the kubelet stops a container."""
        run = self.runs.get((namespace, pod))
        if run is not None and run.process is not None:
            await terminate(run.process, min(grace, KILL_GRACE_S))
        return run

    def forget(self, namespace: str, pod: str) -> None:
        self.runs.pop((namespace, pod), None)

    async def shutdown(self) -> None:
        """Kill every process still running, and wait for each."""
        for run in list(self.runs.values()):
            if run.process is not None:
                await terminate(run.process, 0)
        self.closed.close()

    def stop_all(self) -> None:
        """SIGKILL every process still running, by PID (for when the loop is gone)."""
        for run in list(self.runs.values()):
            if run.pid is not None:
                _signal_group(run.pid, signal.SIGKILL)
        self.closed.close()


# ---------------------------------------------------------------------- the pod's status


def _condition(kind: str, ok: bool, now: str, reason: str | None = None) -> JSONDict:
    found: JSONDict = {"type": kind, "status": "True" if ok else "False",
                       "lastProbeTime": None, "lastTransitionTime": now}  # fmt: skip
    if reason:
        found["reason"] = reason
    return found


def _qos(pod: Mapping[str, Any]) -> str:
    """BestEffort without any request or limit; the sandbox calls the rest Burstable."""
    containers = pod["spec"]["containers"]
    if any((c.get("resources") or {}).get(k) for c in containers for k in ("requests", "limits")):
        return "Burstable"
    return "BestEffort"


def job_pod_status(pod: Mapping[str, Any], run: ContainerRun, old: Mapping[str, Any]) -> JSONDict:
    """What a kubelet reports for a Job's pod: Running while the process runs, then Succeeded
    or Failed with each container terminated. `old` is the status before, whose conditions
    keep their lastTransitionTime while they hold."""
    now = now_iso()
    terminated = run.terminated()
    if terminated is None:
        state: JSONDict = {"running": {"startedAt": run.started_at}}
        phase, done_reason = "Running", None
    else:
        state = {"terminated": terminated}
        phase = "Succeeded" if terminated["exitCode"] == 0 else "Failed"
        done_reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
    statuses = []
    for i, container in enumerate(pod["spec"]["containers"]):
        own = state
        if i > 0 and terminated is not None:  # the others stop with the first, cleanly
            kept = {k: v for k, v in terminated.items() if k != "message"}
            own = {"terminated": {**kept, "exitCode": 0, "reason": "Completed"}}
        statuses.append({
            "name": container["name"], "image": container.get("image", ""), "imageID": "",
            "ready": terminated is None, "started": terminated is None,
            "restartCount": run.restarts if i == 0 else 0, "state": own,
            "lastState": run.last_state if i == 0 else {},
        })  # fmt: skip
    running = terminated is None
    conditions = [
        _condition("PodReadyToStartContainers", running, now),
        _condition("Initialized", True, now, "PodCompleted" if phase == "Succeeded" else None),
        _condition("Ready", running, now, done_reason),
        _condition("ContainersReady", running, now, done_reason),
        _condition("PodScheduled", True, now),
    ]
    before = {c.get("type"): c for c in old.get("conditions") or []}
    for cond in conditions:
        previous = before.get(cond["type"])
        if previous is not None and previous.get("status") == cond["status"]:
            cond["lastTransitionTime"] = previous.get("lastTransitionTime")
    return {"phase": phase, "conditions": conditions, "containerStatuses": statuses,
            "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "qosClass": _qos(pod),
            "startTime": old.get("startTime") or run.started_at}  # fmt: skip
