"""The sandbox's Kubernetes API server: kmock's emulator with the gaps closed that would let
wrong client code pass its tests.

Out of the box kmock serves the official client unchanged, but it returns every object
whatever the label or field selector says, merges a strategic-merge patch as a plain merge
(a patched `containers` list replaces the whole list, with 200 OK), never bumps
`metadata.generation` nor checks `resourceVersion`, has no PUT, answers 404 for a list of a
resource type that has no objects yet, and its watches ignore `timeoutSeconds`. KubeAPI
keeps kmock's server, request parsing, object store, watch buses and discovery, and replaces
the object handlers with ones that fail where kube-apiserver fails: 400 for a bad selector,
409 for a stale resourceVersion or an existing name, 404 for a missing object or namespace,
415 for an unknown patch type, 422 for a failed JSON-patch `test` or an invalid object, and
401/403 for unknown tokens and verbs an RBAC Role does not grant. A new Job gets the defaults
and the generated selector kube-apiserver gives it (sandbox/kube/defaults.py).

Every request is recorded as an AuditRecord (verb, group, resource, user, status code, and
the body of a write), so a test can compare what the activities really did with what their
Role allows, and count each change. `failures` (sandbox/kube/failures.py) makes the next
matching requests fail the way a loaded kube-apiserver does: 503, 409, slow, reply lost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import apps, rendering
from pydantic import BaseModel

from sandbox.kube import discovery, protobuf, tables
from sandbox.kube.defaults import default_job, job_problems
from sandbox.kube.exec import ExecRequest, Started
from sandbox.kube.exec import serve as serve_exec
from sandbox.kube.failures import ApiFailure, FailurePlan, RequestFacts
from sandbox.kube.logs import LogFiles, LogRefused, container_of, read_log
from sandbox.kube.patch import PatchError, apply_patch
from sandbox.kube.rbac import Identity
from sandbox.kube.scale import scale_of, with_replicas
from sandbox.kube.selectors import SelectorError, selector_predicate
from sandbox.kube.types import ResourceType

JSONDict = dict[str, Any]

DEFAULT_WATCH_TIMEOUT = 1800.0
SERVED_KEPT = 16  # requests kmock remembers (see KubeAPI._forget_served)
WATCH_HISTORY = 1000  # changes kept per type for watches that start from a resourceVersion
DNS1123 = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType(group="", version="v1", plural="namespaces", kind="Namespace", namespaced=False),
    ResourceType(
        group="", version="v1", plural="pods", kind="Pod",
        subresources=("status", "log", "exec"),
    ),
    ResourceType(
        group="", version="v1", plural="services", kind="Service", subresources=("status",)
    ),
    ResourceType(group="", version="v1", plural="endpoints", kind="Endpoints"),
    ResourceType(
        group="", version="v1", plural="persistentvolumeclaims", kind="PersistentVolumeClaim",
        subresources=("status",),
    ),
    ResourceType(group="", version="v1", plural="events", kind="Event"),
    ResourceType(group="", version="v1", plural="configmaps", kind="ConfigMap"),
    ResourceType(
        group="apps", version="v1", plural="statefulsets", kind="StatefulSet",
        subresources=("status", "scale"),
    ),
    ResourceType(
        group="apps", version="v1", plural="deployments", kind="Deployment",
        subresources=("status", "scale"),
    ),
    ResourceType(
        group="batch", version="v1", plural="jobs", kind="Job", subresources=("status",)
    ),
    ResourceType(
        group="autoscaling", version="v2", plural="horizontalpodautoscalers",
        kind="HorizontalPodAutoscaler", subresources=("status",),
    ),
    ResourceType(
        group="networking.k8s.io", version="v1", plural="networkpolicies", kind="NetworkPolicy"
    ),
    # `kubectl auth can-i`: anyone with a known token may ask what they may do.
    ResourceType(
        group="authorization.k8s.io", version="v1", plural="selfsubjectaccessreviews",
        kind="SelfSubjectAccessReview", namespaced=False,
    ),
)  # fmt: skip
REVIEWS = "selfsubjectaccessreviews"
# What kube-apiserver stores as the status of a new object (the client requires some fields).
INITIAL_STATUS: dict[str, JSONDict] = {
    "statefulsets": {"replicas": 0, "availableReplicas": 0},
    "pods": {"phase": "Pending"},
    "persistentvolumeclaims": {"phase": "Pending"},
    "horizontalpodautoscalers": {"currentReplicas": 0, "desiredReplicas": 0},
}
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@attrs.define
class WatchHistory:
    """The latest changes of one type, as kube-apiserver's watch cache keeps them: a watch
    from a resourceVersion gets the changes after it, or 410 once they are forgotten."""

    size: int = WATCH_HISTORY
    events: collections.deque[tuple[int, JSONDict]] = attrs.field(init=False)
    forgotten: int = 0  # the revision of the latest change no longer kept

    def __attrs_post_init__(self) -> None:
        self.events = collections.deque(maxlen=self.size)

    def add(self, revision: int, change: JSONDict) -> None:
        if len(self.events) == self.events.maxlen:
            self.forgotten = self.events[0][0]
        self.events.append((revision, change))


def _revision_of(event: Mapping[str, Any]) -> int:
    found = ((event.get("object") or {}).get("metadata") or {}).get("resourceVersion")
    return int(str(found)) if str(found or "").isdigit() else 0


class AuditRecord(BaseModel):
    """One API request as kube-apiserver's audit log would have it."""

    verb: str
    api_group: str
    resource: str  # "pods", or "statefulsets/status" for a subresource
    namespace: str | None
    name: str | None
    user: str
    code: int
    request_object: Any = None  # the body of a create, update, patch or delete
    injected: str | None = None  # what an injected ApiFailure did to it


WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_error(code: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    """A kube-style Status failure; the official client raises it as ApiException(code).
    `details` is never empty: kmock would fill an empty one with the server's traceback."""
    return kmock.KubernetesError(
        status=code, reason=reason, message=message, details=details or {"causes": []}
    )


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name), "")


def bearer_token(headers: Mapping[str, str]) -> str | None:
    auth = _header(headers, "authorization")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?/?$")
EXEC_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/exec$")
LOG_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$")
ExecStart = Callable[[JSONDict, ExecRequest], Awaitable[Started]]


def _status_response(code: int, reason: str, message: str) -> aiohttp.web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "code": code, "reason": reason, "message": message}  # fmt: skip
    return aiohttp.web.json_response(body, status=code)


def _not_found(rt: ResourceType, name: str) -> kmock.KubernetesError:
    return status_error(
        404, "NotFound", f'{rt.qualified()} "{name}" not found', name=name, kind=rt.plural
    )


def _conflict(rt: ResourceType, name: str) -> kmock.KubernetesError:
    return status_error(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.qualified()} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        name=name,
        kind=rt.plural,
    )


def _invalid(rt: ResourceType, name: str, problems: list[str]) -> kmock.KubernetesError:
    return status_error(
        422,
        "Invalid",
        f'{rt.kind} "{name}" is invalid: {"; ".join(problems)}',
        name=name,
        kind=rt.kind,
    )


def _validate(rt: ResourceType, obj: Mapping[str, Any]) -> list[str]:
    """The few validations kube-apiserver does that the project's objects can trip."""
    problems = []
    name = (obj.get("metadata") or {}).get("name") or ""
    if not re.match(DNS1123, name) or len(name) > 253:
        problems.append(f"metadata.name: Invalid value: {name!r}: must be a DNS-1123 subdomain")
    spec = obj.get("spec") or {}
    if rt.plural == "jobs":
        problems += job_problems(dict(obj))
    if rt.plural in ("statefulsets", "deployments"):
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            problems.append(f"spec.replicas: Invalid value: {replicas!r}: must be >= 0")
    if rt.plural in ("statefulsets", "deployments", "jobs"):
        spec = (spec.get("template") or {}).get("spec") or {}
        prefix = "spec.template.spec"
    else:
        prefix = "spec"
    if rt.plural in ("statefulsets", "deployments", "jobs", "pods"):
        containers = spec.get("containers") or []
        if not containers:
            problems.append(f"{prefix}.containers: Required value")
        seen: set[str] = set()
        for i, container in enumerate(containers):
            cname = container.get("name")
            if not cname:
                problems.append(f"{prefix}.containers[{i}].name: Required value")
            elif cname in seen:
                problems.append(f"{prefix}.containers[{i}].name: Duplicate value: {cname!r}")
            seen.add(cname or "")
            if not container.get("image"):
                problems.append(f"{prefix}.containers[{i}].image: Required value")
            for j, env in enumerate(container.get("env") or []):
                if not env.get("name"):
                    problems.append(f"{prefix}.containers[{i}].env[{j}].name: Required value")
    return problems


@attrs.define(kw_only=True)
class KubeAPI(kmock.KubernetesEmulator):
    """kmock's KubernetesEmulator, made to refuse and filter the way kube-apiserver does.

    `identities` maps bearer tokens to users; with any identity configured, a request without
    a known token is 401 and one whose verb the user's rules lack is 403.
    """

    identities: dict[str, Identity] = attrs.field(factory=dict)
    audit: list[AuditRecord] = attrs.field(factory=list, init=False)
    failures: FailurePlan = attrs.field(factory=FailurePlan, init=False)
    _held: set[asyncio.Future[Any]] = attrs.field(factory=set, init=False)
    types: dict[str, ResourceType] = attrs.field(factory=dict, init=False)
    _revision: int = attrs.field(default=0, init=False)
    _history: dict[str, WatchHistory] = attrs.field(factory=dict, init=False)
    watch_history: int = attrs.field(default=WATCH_HISTORY, init=False)  # changes kept per type
    log_files: LogFiles | None = attrs.field(default=None, init=False)  # set by the kubelet side
    exec_start: ExecStart | None = attrs.field(default=None, init=False)  # and this too

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for rt in BUILTIN_TYPES:
            self.add_type(rt)
        # kmock has no PUT: route it like the other object handlers.
        self.fallback[kmock.method.PUT] << self._serve_put

    def add_type(self, rt: ResourceType) -> None:
        """Declare a type: listing it answers an empty list before any object exists."""
        self.types[rt.plural] = rt
        self.resources[rt.ref] = kmock.ResourceInfo(
            kind=rt.kind,
            namespaced=rt.namespaced,
            verbs=set(VERBS),
            subresources=set(rt.subresources),
        )

    # ---------------------------------------------------------------- namespaces

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """kmock cannot parse `/api/v1/namespaces[/{name}]` (it reads `namespaces` as a scope),
        so reading namespaces is served here: kubectl lists them, and reads one after a
        NotFound to tell which of the two was missing. A websocket exec is served here too:
        kmock's request handling would read it as a plain GET; and a pod's log, which goes
        out as text/plain (the official client refuses any other type for it)."""
        execs = EXEC_PATH.match(raw_request.path)
        if execs is not None:
            return await self._exec(raw_request, execs.group(1), execs.group(2))
        logs = LOG_PATH.match(raw_request.path)
        if logs is not None and raw_request.method == "GET":
            return await self._pod_log(raw_request, logs.group(1), logs.group(2))
        found = NAMESPACE_PATH.match(raw_request.path)
        if found is None or raw_request.method != "GET":
            try:
                return await super().__call__(raw_request)
            finally:
                self._forget_served()
        return await self._namespaces(raw_request, found.group(1))

    def _forget_served(self) -> None:
        """kmock keeps every request it served (in the server and in each reaction), and
        matching a new one scans them: a long session would slow down request by request (a
        GET of 6 ms took 16 ms after 1,200). Only the latest are kept; `audit` keeps what the
        tests read."""
        for served in (self._requests, *(getattr(p, "_requests", []) for p in self._payloads)):
            if len(served) > 2 * SERVED_KEPT:
                del served[:-SERVED_KEPT]

    def _raw_identity(self, raw_request: aiohttp.web.BaseRequest) -> Identity | None:
        """The caller of a request served outside kmock; None for an unknown token."""
        token = bearer_token(raw_request.headers)
        if self.identities and token not in self.identities:
            return None
        return self.identities[token or ""] if self.identities else Identity(user="admin")

    async def _pod_log(
        self, raw_request: aiohttp.web.BaseRequest, namespace: str, name: str
    ) -> aiohttp.web.StreamResponse:
        async def serve(pod: JSONDict) -> aiohttp.web.StreamResponse:
            try:
                body = self._log(pod, raw_request.query)
            except kmock.KubernetesError as err:
                return _status_response(err.status, "BadRequest", str(err.message))
            return aiohttp.web.Response(body=body, content_type="text/plain", charset="utf-8")

        return await self._pod_subresource(raw_request, "get", "log", namespace, name, serve)

    async def _exec(
        self, raw_request: aiohttp.web.BaseRequest, namespace: str, name: str
    ) -> aiohttp.web.StreamResponse:
        """`kubectl exec`: RBAC `create` on pods/exec, a running pod, then the protocol."""

        async def serve(pod: JSONDict) -> aiohttp.web.StreamResponse:
            return await self._exec_pod(raw_request, pod)

        return await self._pod_subresource(raw_request, "create", "exec", namespace, name, serve)

    async def _pod_subresource(
        self,
        raw: aiohttp.web.BaseRequest,
        verb: str,
        subresource: str,
        namespace: str,
        name: str,
        serve: Callable[[JSONDict], Awaitable[aiohttp.web.StreamResponse]],
    ) -> aiohttp.web.StreamResponse:
        """A pod subresource served outside kmock (log, exec): audited, held to RBAC as
        kube-apiserver holds it, for a pod that exists."""
        identity = self._raw_identity(raw)
        record = AuditRecord(verb=verb, api_group="", resource=f"pods/{subresource}",
                             namespace=namespace, name=name,
                             user=identity.user if identity else "anonymous", code=0,
                             request_object=dict(raw.query) if verb in WRITES else None,
                             )  # fmt: skip
        self.audit.append(record)
        response: aiohttp.web.StreamResponse
        if identity is None:
            response = _status_response(401, "Unauthorized", "Unauthorized")
        elif not identity.allows(verb, "", record.resource, namespace, name):
            response = _status_response(403, "Forbidden", f'pods "{name}" is forbidden: User '
                                        f'"{identity.user}" cannot {verb} resource '
                                        f'"{record.resource}" in API group "" in the namespace '
                                        f'"{namespace}"')  # fmt: skip
        elif (pod := self._read(self.types["pods"], namespace, name)) is None:
            response = _status_response(404, "NotFound", f'pods "{name}" not found')
        else:
            response = await serve(pod)
        record.code = response.status
        return response

    async def _exec_pod(
        self, raw: aiohttp.web.BaseRequest, pod: JSONDict
    ) -> aiohttp.web.StreamResponse:
        name = pod["metadata"]["name"]
        try:
            asked = ExecRequest.parse(raw.query, raw.query.getall("command", []))
            if asked.container is not None:
                container_of(pod, {"container": asked.container})
        except ValueError as err:
            return _status_response(400, "BadRequest", str(err))
        if (pod.get("status") or {}).get("phase") != "Running" or self.exec_start is None:
            return _status_response(400, "BadRequest", f"pod {name} is not running: cannot exec")
        start = self.exec_start

        async def run(request: ExecRequest) -> Started:
            return await start(pod, request)

        served = await serve_exec(raw, asked, run)
        if served is None:
            return _status_response(400, "BadRequest", "exec is served over websocket only "
                                    "(kubectl 1.30 or newer)")  # fmt: skip
        return served

    async def _namespaces(
        self, raw_request: aiohttp.web.BaseRequest, name: str | None
    ) -> aiohttp.web.StreamResponse:
        identity = self._raw_identity(raw_request)
        if identity is None:
            return _status_response(401, "Unauthorized", "Unauthorized")
        verb = "get" if name else "list"
        if not identity.allows(verb, "", "namespaces", None, name):
            what = f'namespaces "{name}" is' if name else "namespaces is"
            return _status_response(403, "Forbidden", f'{what} forbidden: User '
                                    f'"{identity.user}" cannot {verb} resource "namespaces" in '
                                    'API group "" at the cluster scope')  # fmt: skip
        items = await self.list_objects("namespaces")
        match = next((n for n in items if n["metadata"]["name"] == name), None)
        if name is not None and match is None:
            return _status_response(404, "NotFound", f'namespaces "{name}" not found')
        if tables.wanted(_header(raw_request.headers, "accept")):
            shown = items if match is None else [match]
            return aiohttp.web.json_response(tables.table(
                self.types["namespaces"], shown, raw_request.query,
                resource_version=str(self._revision), now=datetime.now(UTC)))  # fmt: skip
        if match is None:
            listing = {"kind": "NamespaceList", "apiVersion": "v1", "items": items,
                       "metadata": {"resourceVersion": str(self._revision)}}  # fmt: skip
            return aiohttp.web.json_response(listing)
        return aiohttp.web.json_response(match)

    # ---------------------------------------------------------------- discovery

    async def _serve_server_version(self, request: rendering.Request) -> rendering.Payload:
        return dict(discovery.SERVER_VERSION)

    async def _serve_api(self, request: rendering.Request) -> rendering.Payload:
        return discovery.core_versions()

    async def _serve_apis(self, request: rendering.Request) -> rendering.Payload:
        return discovery.group_list(self.types.values())

    async def _serve_group(self, request: rendering.Request) -> rendering.Payload:
        name = request.resource.group if request.resource is not None else ""
        found = discovery.group(self.types.values(), str(name or ""))
        if found is None:
            raise status_error(404, "NotFound", "the server could not find the requested resource")
        return found

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        ref = request.resource
        group, version = (str(ref.group or ""), str(ref.version or "")) if ref else ("", "")
        found = discovery.resource_list(self.types.values(), group, version)
        if found is None:
            raise status_error(404, "NotFound", "the server could not find the requested resource")
        return found

    # ---------------------------------------------------------------- request entry point

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        # Skip KubernetesEmulator._handle: its object writes (plain merge, no checks) are
        # replaced by the _serve_* handlers below, which kmock's fallback reactions call.
        if request.resource is None or not request.resource.plural:
            return await apps.RawHandler._handle(self, request)
        content_type = _header(request.headers, "content-type")
        binary = content_type.startswith((protobuf.PROTOBUF, "application/cbor"))
        if binary and request.resource.plural != REVIEWS:
            raise status_error(415, "UnsupportedMediaType", f"{content_type} is not served")
        record = self._audit_record(request)
        self.audit.append(record)
        try:
            self._authorize(request, record)
        except kmock.KubernetesError as err:
            record.code = err.status
            raise
        facts = RequestFacts(
            verb=record.verb,
            resource=record.resource,
            namespace=record.namespace,
            name=record.name,
            user=record.user,
        )
        failure = self.failures.claim(facts)
        if failure is None:
            return await self._serve(request, record)
        record.injected = failure.describe()
        # aiohttp cancels a handler whose client went away; a held request is finished
        # anyway, as kube-apiserver finishes a write the client stopped waiting for.
        late = asyncio.ensure_future(self._serve(request, record, failure, facts))
        self._held.add(late)
        late.add_done_callback(self._release)
        response = await asyncio.shield(late)
        if failure.reply_delay:
            # The change is stored and the watchers told; only the client is kept waiting.
            await asyncio.sleep(failure.reply_delay)
        return response

    async def _serve(
        self,
        request: rendering.Request,
        record: AuditRecord,
        failure: ApiFailure | None = None,
        facts: RequestFacts | None = None,
    ) -> aiohttp.web.StreamResponse:
        """Handle an authorised request (after what an injected failure does first), noting
        the status code in its audit record."""
        try:
            if failure is not None and facts is not None:
                await self._fail_before(failure, facts)
            response = await apps.RawHandler._handle(self, request)
        except kmock.KubernetesError as err:
            record.code = err.status
            raise
        except Exception:
            record.code = 500
            raise
        record.code = response.status
        return response

    def _release(self, late: asyncio.Future[Any]) -> None:
        """A held request is done: forget it, and take its error (already in the audit
        record and sent, if anyone was still listening) so asyncio does not report it."""
        self._held.discard(late)
        if not late.cancelled():
            late.exception()

    async def _fail_before(self, failure: ApiFailure, facts: RequestFacts) -> None:
        """Hold the request, then refuse it if the rule says so (nothing is stored)."""
        if failure.delay:
            await asyncio.sleep(failure.delay)
        if failure.status is not None:
            raise status_error(
                failure.status,
                failure.reason,
                failure.message(facts),
                name=facts.name or "",
                kind=facts.resource,
            )

    def _audit_record(self, request: rendering.Request) -> AuditRecord:
        assert request.resource is not None
        method = request.method.value.upper()
        if request.params.get("watch") in ("true", "1"):
            verb = "watch"
        else:
            verb = {
                "GET": "get" if request.name else "list",
                "POST": "create",
                "PUT": "update",
                "PATCH": "patch",
                "DELETE": "delete" if request.name else "deletecollection",
            }.get(method, method.lower())
        resource = request.resource.plural or ""
        if request.subresource:
            resource += f"/{request.subresource}"
        name = request.name
        if name is None and verb in ("list", "watch"):
            # kube-apiserver authorizes a list or watch of one name (fieldSelector
            # metadata.name=X) as a request for X: a Role's resourceNames can allow it.
            found = re.fullmatch(
                r"metadata\.name==?([^,=]+)", request.params.get("fieldSelector") or ""
            )
            name = found.group(1) if found else None
        return AuditRecord(
            verb=verb,
            api_group=request.resource.group or "",
            resource=resource,
            namespace=request.namespace,
            name=name,
            user=self._identity(request).user if self._known_token(request) else "anonymous",
            code=0,
            request_object=copy.deepcopy(request.data) if verb in WRITES else None,
        )

    def _token(self, request: rendering.Request) -> str | None:
        return bearer_token(request.headers)

    def _known_token(self, request: rendering.Request) -> bool:
        return not self.identities or self._token(request) in self.identities

    def _identity(self, request: rendering.Request) -> Identity:
        if not self.identities:
            return Identity(user="admin")
        return self.identities[self._token(request) or ""]

    def _authorize(self, request: rendering.Request, record: AuditRecord) -> None:
        if not self._known_token(request):
            raise status_error(401, "Unauthorized", "Unauthorized")
        if record.resource == REVIEWS and record.verb == "create":
            return  # every user may ask (kube-apiserver's system:basic-user)
        identity = self._identity(request)
        if not identity.allows(
            record.verb, record.api_group, record.resource, record.namespace, record.name
        ):
            where = f' in the namespace "{record.namespace}"' if record.namespace else ""
            target = f'{record.resource} "{record.name}" ' if record.name else f"{record.resource} "
            raise status_error(
                403,
                "Forbidden",
                f'{target}is forbidden: User "{identity.user}" cannot {record.verb} resource '
                f'"{record.resource}" in API group "{record.api_group}"{where}',
                kind=record.resource,
                name=record.name or "",
            )

    def _review(self, request: rendering.Request, review: JSONDict) -> JSONDict:
        """A SelfSubjectAccessReview answered with the asker's own rules."""
        asked = (review.get("spec") or {}).get("resourceAttributes") or {}
        resource = asked.get("resource", "")
        if asked.get("subresource"):
            resource += f"/{asked['subresource']}"
        allowed = self._identity(request).allows(
            asked.get("verb", ""), asked.get("group", ""), resource,
            asked.get("namespace") or None, asked.get("name") or None,
        )  # fmt: skip
        reason = "allowed by the sandbox's RBAC" if allowed else ""
        return {**review, "status": {"allowed": allowed, "reason": reason}}

    def _type_for(self, request: rendering.Request) -> ResourceType:
        ref = request.resource
        rt = self.types.get(ref.plural or "") if ref is not None else None
        if rt is None or ref is None or (rt.group, rt.version) != (ref.group, ref.version):
            raise status_error(404, "NotFound", "the server could not find the requested resource")
        if request.subresource and request.subresource not in rt.subresources:
            raise status_error(404, "NotFound", "the server could not find the requested resource")
        return rt

    def _predicate(
        self, request: rendering.Request, rt: ResourceType
    ) -> Callable[[Mapping[str, Any]], bool]:
        try:
            matches = selector_predicate(
                rt.plural, request.params.get("labelSelector"), request.params.get("fieldSelector")
            )
        except SelectorError as err:
            raise status_error(400, "BadRequest", str(err)) from None

        def predicate(obj: Mapping[str, Any]) -> bool:
            meta = obj.get("metadata") or {}
            if request.namespace is not None and meta.get("namespace") != request.namespace:
                return False
            if request.name is not None and meta.get("name") != request.name:
                return False
            return matches(obj)

        return predicate

    # ---------------------------------------------------------------- the object store

    def _key(self, rt: ResourceType, namespace: str | None, name: str) -> Any:
        return (rt.ref, namespace if rt.namespaced else None, name)

    def _read(self, rt: ResourceType, namespace: str | None, name: str) -> JSONDict | None:
        key = self._key(rt, namespace, name)
        if key not in self._objects or self._objects[key].deleted:
            return None
        found: JSONDict = copy.deepcopy(self._objects[key].raw)
        return found

    def _all(
        self, rt: ResourceType, keep: Callable[[Mapping[str, Any]], bool] | None = None
    ) -> list[JSONDict]:
        """The live objects of a type (those `keep` says), as copies, in name order. Filtered
        before copying: events pile up, and a list of one pod's must not copy them all."""
        found = []
        for (ref, _, _), obj in self._objects.items():
            if ref == rt.ref and not obj.deleted:
                raw = obj.raw
                if keep is None or keep(raw):
                    found.append(copy.deepcopy(raw))
        meta = [(o["metadata"].get("namespace") or "", o["metadata"]["name"]) for o in found]
        return [obj for _, obj in sorted(zip(meta, found, strict=True), key=lambda p: p[0])]

    async def _store(self, rt: ResourceType, obj: JSONDict, event: str) -> JSONDict:
        """Write a version with the next resourceVersion and tell the watchers."""
        self._revision += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self._revision)
        key = self._key(rt, meta.get("namespace"), meta["name"])
        if key in self._objects:
            self._objects[key].create(copy.deepcopy(obj))
        else:
            self._objects[key] = copy.deepcopy(obj)
        if event == "DELETED":
            self._objects[key].delete()
        change = {"type": event, "object": copy.deepcopy(obj)}
        history = self._history.setdefault(rt.plural, WatchHistory(self.watch_history))
        history.add(self._revision, change)
        await self._buses[rt.ref].put(copy.deepcopy(change))
        return obj

    def _namespace_exists(self, namespace: str) -> bool:
        return self._read(self.types["namespaces"], None, namespace) is not None

    # ------------------------------------------------- the same operations, for the controller

    async def get_object(self, plural: str, namespace: str | None, name: str) -> JSONDict | None:
        return self._read(self.types[plural], namespace, name)

    async def list_objects(
        self, plural: str, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[JSONDict]:

        def keep(obj: Mapping[str, Any]) -> bool:
            meta = obj["metadata"]
            if namespace is not None and meta.get("namespace") != namespace:
                return False
            wanted = (labels or {}).items()
            return all((meta.get("labels") or {}).get(k) == v for k, v in wanted)

        return self._all(self.types[plural], keep)

    async def create(self, plural: str, obj: Mapping[str, Any]) -> JSONDict:
        """Create as the control plane does (status kept, no admission)."""
        rt = self.types[plural]
        async with self._lock:
            return await self._create(rt, copy.deepcopy(dict(obj)), keep_status=True)

    async def mutate(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        change: Callable[[JSONDict], None],
    ) -> JSONDict | None:
        """Read-modify-write under the lock; a no-op change writes nothing. Controllers only:
        it may change spec, status and metadata alike, and bumps generation like the API."""
        rt = self.types[plural]
        async with self._lock:
            old = self._read(rt, namespace, name)
            if old is None:
                return None
            new = copy.deepcopy(old)
            change(new)
            if new == old:
                return old
            if new.get("spec") != old.get("spec"):
                new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
            return await self._store(rt, new, "MODIFIED")

    async def remove(self, plural: str, namespace: str | None, name: str) -> JSONDict | None:
        """Delete at once (what the kubelet does when a terminating pod's containers stopped)."""
        rt = self.types[plural]
        async with self._lock:
            old = self._read(rt, namespace, name)
            if old is None:
                return None
            return await self._store(rt, old, "DELETED")

    # ------------------------------------------------------------------ the HTTP handlers

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        rt = self._type_for(request)
        predicate = self._predicate(request, rt)
        as_table = self._wants_table(request)
        async with self._lock:
            items = self._all(rt, predicate)
        if as_table:
            return self._table(request, rt, items, str(self._revision))
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(self._revision)},
            "items": items,
        }

    async def _serve_watch(  # type: ignore[override]
        self, request: rendering.Request
    ) -> rendering.Payload:
        """A watch is JSON, one event per line, as kube-apiserver streams it (client-go refuses a
        stream of any other content type)."""
        return rendering.Response(
            headers={"Content-Type": "application/json"}, payload=self._watch_events(request)
        )

    async def _watch_events(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        rt = self._type_for(request)
        predicate = self._predicate(request, rt)
        as_table = self._wants_table(request)
        timeout = float(request.params.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        yield b""  # send the headers now, as kube-apiserver does, even if nothing happens
        bus = self._buses[rt.ref]
        mark = await bus.mark()
        stream = bus.stream(since=mark)
        sent = 0
        try:
            initial, seen = await self._watch_start(rt, request.params.get("resourceVersion"))
            for event in initial:
                if event["type"] == "ERROR" or predicate(event.get("object") or {}):
                    yield self._watch_event(request, rt, event, as_table, first=sent == 0)
                    sent += 1
            if initial and initial[-1]["type"] == "ERROR":
                return
            while (remaining := deadline - loop.time()) > 0:
                try:
                    event = await asyncio.wait_for(anext(stream), remaining)
                except TimeoutError:
                    break
                if _revision_of(event) <= seen:
                    continue  # already sent from the history
                if predicate(event.get("object") or {}):
                    yield self._watch_event(request, rt, event, as_table, first=sent == 0)
                    sent += 1
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
            with contextlib.suppress(ValueError):
                await bus.unmark(mark)

    async def _watch_start(self, rt: ResourceType, since: str | None) -> tuple[list[JSONDict], int]:
        """What a watch sends before the changes to come, and the revision it covers: every
        object as ADDED (no resourceVersion, or "0"), or the changes after the one given, as
        kube-apiserver replays them from its watch cache; 410 Expired when they are gone."""
        async with self._lock:
            if since in (None, "", "0"):
                objects = self._all(rt)
                return [{"type": "ADDED", "object": obj} for obj in objects], self._revision
            if not str(since).isdigit():
                raise status_error(400, "BadRequest", f"invalid resource version: {since!r}")
            wanted = int(str(since))
            history = self._history.get(rt.plural)
            if history is not None and wanted < history.forgotten:
                gone = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": f"too old resource version: {wanted} ({history.forgotten})",
                        "reason": "Expired", "code": 410}  # fmt: skip
                return [{"type": "ERROR", "object": gone}], self._revision
            events = [
                copy.deepcopy(e) for rv, e in (history.events if history else []) if rv > wanted
            ]
            return events, self._revision

    def _watch_event(
        self,
        request: rendering.Request,
        rt: ResourceType,
        event: JSONDict,
        as_table: bool,
        first: bool,
    ) -> JSONDict:
        """A watch event, its object made a one-row Table when kubectl asked for Tables: with
        the column definitions on the first event only, as kube-apiserver sends them."""
        if not as_table or event.get("type") == "ERROR":
            return event
        obj = event.get("object") or {}
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        return {**event, "object": self._table(request, rt, [obj], version, headers=first)}

    def _wants_table(self, request: rendering.Request) -> bool:
        """Whether to answer with a Table (kubectl's human-readable get), refusing a bad
        includeObject with 400 first, as kube-apiserver does."""
        if not tables.wanted(_header(request.headers, "accept")):
            return False
        try:
            tables.include_object(request.params)
        except tables.TableError as err:
            raise status_error(400, "BadRequest", str(err)) from None
        return True

    def _table(
        self,
        request: rendering.Request,
        rt: ResourceType,
        objects: list[JSONDict],
        resource_version: str,
        headers: bool = True,
    ) -> JSONDict:
        """kube-apiserver's server-side printing of these objects."""
        return tables.table(rt, objects, request.params, resource_version=resource_version,
                            now=datetime.now(UTC), headers=headers)  # fmt: skip

    async def _serve_fetch(self, request: rendering.Request) -> rendering.Payload:
        rt = self._type_for(request)
        assert request.name is not None
        as_table = request.subresource is None and self._wants_table(request)
        async with self._lock:
            obj = self._read(rt, request.namespace, request.name)
        if obj is None:
            raise _not_found(rt, request.name)
        if as_table:
            return self._table(request, rt, [obj], obj["metadata"].get("resourceVersion", ""))
        return scale_of(obj) if request.subresource == "scale" else obj

    def _log(self, pod: JSONDict, params: Mapping[str, str]) -> bytes:
        try:
            container = container_of(pod, params)
            meta = pod["metadata"]
            files = self.log_files
            path = files(meta["namespace"], meta["name"], container) if files else None
            text = read_log(path, params)
        except (LogRefused, ValueError) as err:
            raise status_error(400, "BadRequest", str(err)) from None
        return text.encode()

    async def _create(self, rt: ResourceType, obj: JSONDict, keep_status: bool) -> JSONDict:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{secrets.token_hex(3)[:5]}"
        name = meta.get("name") or ""
        namespace = meta.get("namespace") if rt.namespaced else None
        if rt.namespaced and not namespace:
            raise status_error(400, "BadRequest", "the namespace of the object is required")
        if problems := _validate(rt, obj):
            raise _invalid(rt, name, problems)
        if namespace and not self._namespace_exists(namespace):
            raise status_error(
                404, "NotFound", f'namespaces "{namespace}" not found', name=namespace
            )
        if self._read(rt, namespace, name) is not None:
            raise status_error(
                409, "AlreadyExists", f'{rt.qualified()} "{name}" already exists', name=name
            )
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_iso(), generation=1)
        if rt.plural == "jobs":
            default_job(obj)
        if not rt.namespaced:
            meta.pop("namespace", None)
        if not keep_status and "status" in rt.subresources:
            obj["status"] = copy.deepcopy(INITIAL_STATUS.get(rt.plural, {}))
        return await self._store(rt, obj, "ADDED")

    async def _serve_create(self, request: rendering.Request) -> rendering.Payload:
        rt = self._type_for(request)
        if rt.plural == REVIEWS:  # kubectl posts these as protobuf
            try:
                review = request.data if isinstance(request.data, dict) else (
                    protobuf.access_review(request.body)
                )  # fmt: skip
            except protobuf.ProtobufError as err:
                raise status_error(400, "BadRequest", f"cannot decode the review: {err}") from None
            return rendering.Response(status=201, payload=self._review(request, review))
        if not isinstance(request.data, dict):
            raise status_error(400, "BadRequest", "the body must be a JSON object")
        obj = copy.deepcopy(request.data)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace") not in (None, request.namespace):
                raise status_error(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request",
                )
            meta["namespace"] = request.namespace
        async with self._lock:
            created = await self._create(rt, obj, keep_status=False)
        return rendering.Response(status=201, payload=created)

    def _admit_update(
        self, rt: ResourceType, old: JSONDict, new: JSONDict, subresource: str | None
    ) -> JSONDict:
        """What kube-apiserver does between decoding an update and storing it."""
        name = old["metadata"]["name"]
        wanted_rv = (new.get("metadata") or {}).get("resourceVersion")
        if wanted_rv not in (None, "") and wanted_rv != old["metadata"]["resourceVersion"]:
            raise _conflict(rt, name)
        if subresource == "status":
            result = copy.deepcopy(old)
            result["status"] = new.get("status") or {}
            return result
        meta = dict(new.get("metadata") or {})
        for fixed in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if fixed in old["metadata"]:
                meta[fixed] = old["metadata"][fixed]
            else:
                meta.pop(fixed, None)
        for gone in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            if gone in old["metadata"]:
                meta[gone] = old["metadata"][gone]
        new = {**new, "metadata": meta, "apiVersion": rt.api_version, "kind": rt.kind}
        if "status" in rt.subresources:
            new["status"] = copy.deepcopy(old.get("status") or {})
        if problems := _validate(rt, new):
            raise _invalid(rt, name, problems)
        if new.get("spec") != old.get("spec"):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        return new

    async def _serve_update(self, request: rendering.Request) -> rendering.Payload:
        rt = self._type_for(request)
        assert request.name is not None
        content_type = _header(request.headers, "content-type")
        async with self._lock:
            old = self._read(rt, request.namespace, request.name)
            if old is None:
                raise _not_found(rt, request.name)
            scaling = request.subresource == "scale"
            try:
                patched = apply_patch(content_type, scale_of(old) if scaling else old, request.data)
            except PatchError as err:
                reason = {400: "BadRequest", 415: "UnsupportedMediaType"}.get(err.status, "Invalid")
                raise status_error(err.status, reason, str(err), name=request.name) from None
            return await self._write(rt, old, patched, request.subresource)

    async def _write(
        self, rt: ResourceType, old: JSONDict, body: JSONDict, subresource: str | None
    ) -> JSONDict:
        """Store an update (a Scale goes into the object's replicas); a no-op writes nothing,
        like kube-apiserver. A Scale is answered with a Scale."""
        if subresource == "scale":
            try:
                body = with_replicas(old, body)
            except ValueError as err:
                raise _invalid(rt, old["metadata"]["name"], [str(err)]) from None
        new = self._admit_update(rt, old, body, None if subresource == "scale" else subresource)
        stored = old if new == old else await self._store(rt, new, "MODIFIED")
        return scale_of(stored) if subresource == "scale" else stored

    async def _serve_put(self, request: rendering.Request) -> rendering.Payload:
        rt = self._type_for(request)
        if request.name is None:
            raise status_error(405, "MethodNotAllowed", "PUT needs an object name")
        if not isinstance(request.data, dict):
            raise status_error(400, "BadRequest", "the body must be a JSON object")
        body_name = (request.data.get("metadata") or {}).get("name")
        if body_name != request.name:
            raise status_error(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        async with self._lock:
            old = self._read(rt, request.namespace, request.name)
            if old is None:
                raise _not_found(rt, request.name)
            return await self._write(rt, old, copy.deepcopy(request.data), request.subresource)

    async def _serve_delete(self, request: rendering.Request) -> rendering.Payload:
        rt = self._type_for(request)
        assert request.name is not None
        options = request.data if isinstance(request.data, dict) else {}
        grace_raw = request.params.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        async with self._lock:
            old = self._read(rt, request.namespace, request.name)
            if old is None:
                raise _not_found(rt, request.name)
            pre = options.get("preconditions") or {}
            if pre.get("uid") not in (None, old["metadata"]["uid"]) or pre.get(
                "resourceVersion"
            ) not in (None, old["metadata"]["resourceVersion"]):
                raise _conflict(rt, request.name)
            if rt.plural == "pods":
                default = (old.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
                grace = int(grace_raw) if grace_raw is not None else int(default)
                if grace > 0:  # graceful: the kubelet stops the containers, then removes it
                    if old["metadata"].get("deletionTimestamp"):
                        return old
                    old["metadata"]["deletionTimestamp"] = now_iso()
                    old["metadata"]["deletionGracePeriodSeconds"] = grace
                    return await self._store(rt, old, "MODIFIED")
                gone = await self._store(rt, old, "DELETED")
                return gone
            await self._store(rt, old, "DELETED")
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": request.name, "kind": rt.plural, "uid": old["metadata"]["uid"]},
        }
