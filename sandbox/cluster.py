"""SandboxCluster: the API emulator and its controller on a thread of their own, for the tests,
the demo and `python -m sandbox up`.

The emulator listens on 127.0.0.1 only. `kubeconfig` is the admin's; with `role_file`, a
second kubeconfig (`runbook_kubeconfig`) carries a token that the API server holds to that
Role's rules in the sandbox namespace, answering 403 for anything else, as a ServiceAccount
bound to the Role would be. Every redis-server the controller started is stopped, by PID,
when the cluster stops.

With `sentinel=True` the Redis StatefulSet has three pods replicating under three real
Sentinels (sandbox.sentinel), started once the pods replicate and stopped, by PID, with the
rest; `redis-master` is the Service of the pod that is master now.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import secrets
import ssl
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import kmock
import redis
import yaml
from aiohttp.test_utils import RawTestServer
from kubernetes import client, config

from sandbox.controller import REVISION_LABEL, Controller, pod_ready, replication_role
from sandbox.kube.api import KubeAPI
from sandbox.kube.faults import Fault, set_fault
from sandbox.kube.rbac import Identity, load_role_rules
from sandbox.kube.tls import make_certs
from sandbox.manifests import SENTINEL_MASTER, SENTINEL_REPLICAS, SandboxNames, default_objects
from sandbox.pod_exec import PodExec
from sandbox.sentinel import SentinelGroup

T = TypeVar("T")
RUNBOOK_USER = "system:serviceaccount:{namespace}:redis-runbook"


def write_kubeconfig(
    path: Path, server: str, token: str, user: str, namespace: str, ca_pem: bytes
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    authority = base64.b64encode(ca_pem).decode()
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "sandbox",
                "cluster": {"server": server, "certificate-authority-data": authority},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": "sandbox",
                "context": {"cluster": "sandbox", "user": user, "namespace": namespace},
            }
        ],
        "current-context": "sandbox",
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    path.chmod(0o600)
    return path


def tls_server(context: ssl.SSLContext) -> type[RawTestServer]:
    """kmock's server class, listening with TLS."""

    class TlsServer(RawTestServer):
        async def start_server(
            self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any
        ) -> None:
            await super().start_server(loop=loop, ssl=context, **kwargs)

    return TlsServer


class ApiServer:
    """KubeAPI served on 127.0.0.1 from a thread with its own event loop, so sync code (the
    official client, sync activities, pytest) can talk to it. No controller: objects only
    change when a client changes them."""

    def __init__(self, identities: dict[str, Identity] | None = None) -> None:
        self.api = KubeAPI(identities=identities or {})
        self._certs_dir = tempfile.TemporaryDirectory(prefix="sandbox-tls-")
        self.certs = make_certs(Path(self._certs_dir.name))
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA a client trusts to reach this server (the kubeconfigs carry it too)."""
        return self.certs.ca_file

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> ApiServer:
        self._thread = threading.Thread(target=self._run, name="sandbox-api", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) or self._error is not None:
            self.stop()
            raise RuntimeError(f"sandbox API server did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        self._certs_dir.cleanup()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as err:  # reported to start(): the thread must not die silently
            self._error = err
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        serving = tls_server(self.certs.server_context())
        async with self.api, kmock.Server(self.api, host="127.0.0.1", server_cls=serving) as server:
            self.port = server.port
            self._started.set()
            await self._stop.wait()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the server's loop (to reach the store directly) and wait."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
        """Run a coroutine on the server's loop in the background; cancel() stops it."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop)


class SandboxCluster:
    """A local Kubernetes API whose StatefulSet pods are real redis-servers: an ApiServer
    holding the default objects, and the Controller running on its loop.

    Use as a context manager: `with SandboxCluster(tmp_path) as cluster: ...`. Redis faults
    go in through the API (`fault`); failures of the API itself (503s, conflicts, slow or
    lost replies for the next N matching requests) through `api.failures`.
    """

    def __init__(
        self,
        root: Path,
        names: SandboxNames | None = None,
        *,
        role_file: Path | None = None,
        tick: float = 0.05,
        ready_timeout: float = 30.0,
        api_traffic: float | None = None,
        sentinel: bool = False,
        sentinel_down_after_ms: int = 1000,
        sentinel_failover_timeout_ms: int = 6000,
    ) -> None:
        """`api_traffic`: seconds between two requests of each API pod, whose log then shows
        them (sandbox.api_traffic); None, the default, sends none, so a test's Redis sees only
        the commands the test makes. `sentinel`: the three-pod Sentinel topology, whose
        Sentinels mark a master down after `sentinel_down_after_ms`."""
        self.root = root.resolve()
        self.names = names or SandboxNames()
        self.role_file = role_file
        self.tick = tick
        # three pods and three Sentinels finding each other take longer than one pod
        self.ready_timeout = max(ready_timeout, 60.0) if sentinel else ready_timeout
        self.admin_token = secrets.token_urlsafe(24)
        self.runbook_token = secrets.token_urlsafe(24)
        self.server = ApiServer(self._identities())
        self.api = self.server.api
        self.controller = Controller(self.api, self.root, tick=tick, api_traffic=api_traffic)
        self.api.log_files = self.controller.log_file
        self.api.exec_start = PodExec(self.api, self.root).start
        self.redis_port = self.controller.runtime(self.names.namespace, "redis-0").process.port
        self.replicas = SENTINEL_REPLICAS if sentinel else 1
        self._sentinels = (
            SentinelGroup(
                self.root / "sentinels",
                SENTINEL_MASTER,
                down_after_ms=sentinel_down_after_ms,
                failover_timeout_ms=sentinel_failover_timeout_ms,
            )
            if sentinel
            else None
        )
        self._controller_run: concurrent.futures.Future[None] | None = None

    # ------------------------------------------------------------------ where things are

    @property
    def port(self) -> int | None:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def runbook_kubeconfig(self) -> Path:
        return self.root / "kubeconfig-runbook"

    @property
    def redis_url(self) -> str:
        """redis-0's Redis (under Sentinel, a replica after a failover: see master_pod)."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def runbook_user(self) -> str:
        """The user the API server sees behind `runbook_kubeconfig` (its audit records, and
        the `user` an injected ApiFailure can be limited to)."""
        return RUNBOOK_USER.format(namespace=self.names.namespace)

    @property
    def sentinels(self) -> SentinelGroup | None:
        return self._sentinels

    @property
    def sentinel_addresses(self) -> list[str]:
        """Each Sentinel as 127.0.0.1:PORT (none without the Sentinel topology)."""
        return self._sentinels.addresses if self._sentinels is not None else []

    @property
    def sentinel_master_name(self) -> str:
        return SENTINEL_MASTER

    def member_port(self, pod: str) -> int:
        """The port of the pod's redis-server (the same in every incarnation of the pod)."""
        return self.controller.runtime(self.names.namespace, pod).process.port

    def master_pod(self) -> str | None:
        """The pod whose redis-server says role:master now, asked directly (the one the
        Sentinels name first, should two say so)."""
        pods = [f"{self.names.statefulset}-{i}" for i in range(self.replicas)]
        masters = [pod for pod in pods if self._role(pod) == "master"]
        named = self._sentinels.master_port() if self._sentinels is not None else None
        masters.sort(key=lambda pod: self.member_port(pod) != named)
        return masters[0] if masters else None

    def _role(self, pod: str) -> str | None:
        runtime = self.controller.runtime(self.names.namespace, pod)
        return None if runtime.frozen else replication_role(runtime.process)  # frozen: mute

    def describe(self) -> dict[str, str]:
        """What `python -m sandbox up --json` prints."""
        described = {
            "kubeconfig": str(self.kubeconfig),
            "redis_url": self.redis_url,
            "namespace": self.names.namespace,
            "statefulset": self.names.statefulset,
            "api_deployment": self.names.api_deployment,
        }
        if self._sentinels is not None:
            described["sentinels"] = ",".join(self.sentinel_addresses)
            described["master_name"] = self.sentinel_master_name
        return described

    def api_client(self, kubeconfig: Path | None = None) -> client.ApiClient:
        """An official-client ApiClient for the admin kubeconfig (or the one given)."""
        path = str(kubeconfig or self.kubeconfig)
        api: client.ApiClient = config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
        return api

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> SandboxCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> SandboxCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.server.start()
        try:
            for plural, obj in default_objects(self.names, sentinel=self._sentinels is not None):
                self.server.call(self.api.create(plural, obj))
            self._controller_run = self.server.spawn(self.controller.run())
            ca = self.server.certs.ca_pem
            write_kubeconfig(
                self.kubeconfig, self.url, self.admin_token, "sandbox-admin",
                self.names.namespace, ca,
            )  # fmt: skip
            if self.role_file is not None:
                write_kubeconfig(
                    self.runbook_kubeconfig,
                    self.url,
                    self.runbook_token,
                    self.runbook_user,
                    self.names.namespace,
                    ca,
                )
            if self._sentinels is not None:  # once the pods replicate, as a chart's order is
                self.wait_ready(self.ready_timeout)
                self._sentinels.start(self.member_port(f"{self.names.statefulset}-0"))
                self.controller.sentinels = self._sentinels
            self.wait_ready(self.ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the controller, the Sentinels (before they see the pods go and fail over),
        every redis-server the controller started (all by PID), then the API server."""
        if self._controller_run is not None:
            with contextlib.suppress(Exception):
                self.server.call(self.controller.shutdown())
            self._controller_run = None
        if self._sentinels is not None:
            self._sentinels.stop()
        self.controller.stop_all()
        self.server.stop()

    def _identities(self) -> dict[str, Identity]:
        identities = {self.admin_token: Identity(user="sandbox-admin")}
        if self.role_file is not None:
            identities[self.runbook_token] = Identity(
                user=self.runbook_user,
                rules=load_role_rules(self.role_file),
                namespace=self.names.namespace,
            )
        return identities

    # ------------------------------------------------------------------ for tests and demos

    def fault(self, fault: Fault | str, timeout: float = 30.0) -> None:
        """Inject a fault through the API (the StatefulSet's annotation) and wait until the
        controller has acted on it."""
        fault = Fault(fault)
        with self.api_client() as api:
            set_fault(api, self.names.namespace, self.names.statefulset, fault)
        key = (self.names.namespace, self.names.statefulset)
        deadline = time.monotonic() + timeout
        while self.controller.faults_done.get(key, "clear") != fault or not self._shown(fault):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sandbox controller did not apply fault {fault}")
            time.sleep(self.tick)

    def _shown(self, fault: Fault) -> bool:
        """Whether the pods' status already tells what the fault did (the controller publishes
        it on its next pass): an OOMKilled is in the Redis container's lastState."""
        if fault is not Fault.OOM:
            return True
        with self.api_client() as api:
            pods = client.CoreV1Api(api).list_namespaced_pod(self.names.namespace).to_dict()
        for pod in pods["items"]:
            for status in (pod.get("status") or {}).get("container_statuses") or []:
                last = (status.get("last_state") or {}).get("terminated") or {}
                if status.get("name") == self.names.redis_container and last.get("reason"):
                    return str(last["reason"]) == "OOMKilled"
        return False

    def restarts(self, pod: str | None = None) -> int:
        """How many times the pod's Redis was started after its first start."""
        runtime = self.controller.runtime(
            self.names.namespace, pod or f"{self.names.statefulset}-0"
        )
        return max(0, runtime.starts - 1)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=2)

    def _pods_ready(self, revision: str | None, replicas: int | None) -> bool:
        """The pods themselves, which may be ahead of the StatefulSet's status."""
        pods = self.server.call(
            self.api.list_objects("pods", self.names.namespace, {"app": self.names.statefulset})
        )
        return len(pods) == replicas and all(
            pod_ready(pod)
            and not pod["metadata"].get("deletionTimestamp")
            and pod["metadata"]["labels"].get(REVISION_LABEL) == revision
            for pod in pods
        )

    def _replicating(self) -> bool:
        return self._not_replicating() is None

    def _not_replicating(self) -> str | None:
        """Why not one master with every other pod's link to it up and the Sentinels (if
        started) ready; None when all is so, and always without the Sentinel topology."""
        if self._sentinels is None:
            return None
        infos = []
        for i in range(self.replicas):
            pod = f"{self.names.statefulset}-{i}"
            process = self.controller.runtime(self.names.namespace, pod).process
            try:
                with process.client(socket_timeout=0.5, socket_connect_timeout=0.5) as conn:
                    infos.append((process.port, conn.info("replication")))
            except (redis.RedisError, OSError) as err:
                return f"{pod} does not answer: {err}"
        masters = [port for port, info in infos if info.get("role") == "master"]
        if len(masters) != 1:
            return f"{len(masters)} pods say they are the master"
        for port, info in infos:
            if info.get("role") != "master" and (
                info.get("master_link_status") != "up" or int(info["master_port"]) != masters[0]
            ):
                return f"the replica on {port}: link {info.get('master_link_status')}"
        sentinels = self.controller.sentinels
        return None if sentinels is None else sentinels.not_ready(self.replicas - 1)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the StatefulSet's rollout is complete, its pods are ready and Redis answers
        PING; in the Sentinel topology, also until every replica's link to the master is up
        and (once they run) every Sentinel can fail over: a test may kill the master then."""
        deadline = time.monotonic() + timeout
        with self.api_client() as api:
            apps = client.AppsV1Api(api)
            while True:
                sts = apps.read_namespaced_stateful_set(
                    self.names.statefulset, self.names.namespace
                )
                status = sts.status
                assert status is not None and sts.metadata is not None and sts.spec is not None
                done = (
                    status.observed_generation == sts.metadata.generation
                    and status.ready_replicas == sts.spec.replicas
                    and status.updated_replicas == sts.spec.replicas
                    and status.current_revision == status.update_revision
                )
                if done and self._pods_ready(status.update_revision, sts.spec.replicas):
                    with contextlib.suppress(redis.RedisError), self.redis() as conn:
                        if conn.ping() and self._replicating():
                            return
                if time.monotonic() > deadline:
                    why = self._not_replicating() if done else None
                    raise TimeoutError(f"sandbox Redis not ready after {timeout}s: {why or status}")
                time.sleep(self.tick)
