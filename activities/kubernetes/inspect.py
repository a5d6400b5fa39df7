"""Triage on the Kubernetes side: the StatefulSet, its pods, their events and volumes, the
Service's endpoints and the API Deployment, read into facts classify can act on.

Like Redis triage, whatever stops the reading is a finding, not an exception: an unconfigured,
unreachable or forbidden API is exactly what the report must show, and the Redis-side triage
still classifies the incident.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from activities.kubernetes.client import RETRYABLE_TRANSPORT, JSONDict, read_json, status_message
from activities.kubernetes.log_evidence import (
    LIMIT_BYTES,
    TAIL_LINES,
    api_log_lines,
    redis_log_lines,
)
from activities.kubernetes.network import Side, blocking
from activities.kubernetes.redis_config import configured
from activities.targets import Workload
from contracts.finding import Finding
from contracts.kubernetes import (
    ORIGINAL_REPLICAS,
    RESTART_HISTORY,
    RESTARTED_AT,
    DeploymentFacts,
    EventFacts,
    KubeProblem,
    KubernetesFacts,
    PodFacts,
    PvcFacts,
    StatefulSetFacts,
)
from contracts.target import RedisTarget

T = TypeVar("T")
EVENTS_KEPT = 20
_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


POD_FIELDS = ("pods", "oom_killed", "crash_looping", "pod_pending", "pod_terminating")
ENDPOINT_FIELDS = ("ready_endpoints", "not_ready_endpoints", "members")


def endpoint_pods(subsets: list[JSONDict]) -> dict[str, str]:
    """ "ip:port" -> pod, for every address of every subset, ready or not."""
    found = {}
    for subset in subsets:
        ports = [p.get("port") for p in subset.get("ports") or [] if p.get("port")]
        for entry in (subset.get("addresses") or []) + (subset.get("notReadyAddresses") or []):
            pod = (entry.get("targetRef") or {}).get("name")
            for port in ports:
                if pod and entry.get("ip"):
                    found[f"{entry['ip']}:{port}"] = str(pod)
    return found


OOM_WINDOW = timedelta(hours=1)  # the default of thresholds.oom_window
REDIS_PORT = 6379  # when the Redis container names no port
CONFIG_FIELDS = ("configured", "config_source")
API_PODS_READ = 2  # the API's pods say the same about Redis; two are enough to quote


def _read_in_parallel(
    facts: KubernetesFacts,
    readers: list[tuple[Callable[[KubernetesFacts], None], tuple[str, ...]]],
) -> None:
    """The reads after the StatefulSet are independent: run them at once (triage is on the
    path to mitigation), each into its own copy, then merge in a fixed order so the facts
    and the order of their findings never depend on which reply came first."""
    copies = [facts.model_copy(update={"findings": []}, deep=True) for _ in readers]
    with ThreadPoolExecutor(max_workers=len(readers)) as pool:
        pending = [pool.submit(read, c) for (read, _), c in zip(readers, copies, strict=True)]
        for done in pending:
            done.result()
    for (_, fields), copy in zip(readers, copies, strict=True):
        for field in fields:
            setattr(facts, field, getattr(copy, field))
        facts.findings.extend(copy.findings)


class ReadFailed(Exception):
    def __init__(self, finding: Finding, reachable: bool) -> None:
        super().__init__(finding.message)
        self.finding = finding
        self.reachable = reachable


def quantity_bytes(value: str | None) -> int | None:
    if not value:
        return None
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([kMGT]i?|)", value.strip())
    return int(float(found.group(1)) * _UNITS[found.group(2)]) if found else None


def _read(what: str, call: Callable[[], T]) -> T:
    """Run one read; turn its failure into a finding (raised as ReadFailed)."""
    try:
        return call()
    except ApiException as err:
        status = int(err.status or 0)
        code = {401: "kubernetes_unauthorized", 403: "kubernetes_forbidden"}.get(
            status, "not_found" if status == 404 else "kubernetes_error"
        )
        message = f"{what}: {status} {status_message(err)}"
        raise ReadFailed(Finding(code=code, message=message), reachable=True) from err
    except RETRYABLE_TRANSPORT as err:
        finding = Finding(code="kubernetes_unreachable", message=f"{what}: {err}")
        raise ReadFailed(finding, reachable=False) from err


def label_selector(selector: Mapping[str, Any]) -> str:
    """A StatefulSet's spec.selector as the labelSelector query string."""
    terms = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op in ("In", "NotIn"):
            terms.append(f"{key} {op.lower()} ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        else:
            terms.append(f"!{key}")
    return ",".join(terms)


def find_container(spec: Mapping[str, Any], name: str) -> tuple[int, JSONDict] | None:
    for index, container in enumerate(spec.get("containers") or []):
        if container.get("name") == name:
            return index, container
    return None


def recorded_restarts(sts: Mapping[str, Any]) -> list[Any]:
    """The entries of the runbook's own restart record, as written; a record someone mangled
    by hand reads as empty, never fatal (the budget then counts fewer, and the audit log still
    has the truth)."""
    raw = ((sts.get("metadata") or {}).get("annotations") or {}).get(RESTART_HISTORY)
    try:
        entries = json.loads(raw) if raw else []
    except ValueError:
        return []
    return entries if isinstance(entries, list) else []


def restart_history(sts: Mapping[str, Any]) -> list[datetime]:
    """When the runbook restarted it; an entry that is not an aware time is skipped."""
    times: list[datetime] = []
    for entry in recorded_restarts(sts):
        with contextlib.suppress(TypeError, ValueError):
            at = datetime.fromisoformat(entry)
            if at.tzinfo is not None:  # a naive time cannot be placed in the window
                times.append(at)
    return times


def statefulset_facts(sts: Mapping[str, Any]) -> StatefulSetFacts:
    meta, spec, status = sts["metadata"], sts.get("spec") or {}, sts.get("status") or {}
    template_meta = (spec.get("template") or {}).get("metadata") or {}
    return StatefulSetFacts(
        name=meta["name"],
        replicas=int(spec.get("replicas", 1)),
        current_pods=int(status.get("replicas") or 0),
        ready_replicas=int(status.get("readyReplicas") or 0),
        updated_replicas=int(status.get("updatedReplicas") or 0),
        current_replicas=int(status.get("currentReplicas") or 0),
        current_revision=status.get("currentRevision"),
        update_revision=status.get("updateRevision"),
        generation=int(meta.get("generation") or 0),
        observed_generation=status.get("observedGeneration"),
        restarted_at=(template_meta.get("annotations") or {}).get(RESTARTED_AT),
        restarts=restart_history(sts),
        service_name=spec.get("serviceName"),
    )


def pod_facts(pod: Mapping[str, Any], container: str) -> PodFacts:
    meta, status = pod["metadata"], pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    mine = next(
        (s for s in statuses if s.get("name") == container), statuses[0] if statuses else {}
    )
    state = mine.get("state") or {}
    last = (mine.get("lastState") or {}).get("terminated") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    scheduled = conditions.get("PodScheduled") or {}
    ready = conditions.get("Ready") or {}
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in (pod.get("spec") or {}).get("volumes") or []
        if v.get("persistentVolumeClaim")
    ]
    return PodFacts(
        name=meta["name"],
        uid=meta.get("uid", ""),
        phase=status.get("phase") or "Unknown",
        ready=ready.get("status") == "True",
        restarts=int(mine.get("restartCount") or 0),
        state=next(iter(state), None),
        waiting_reason=(state.get("waiting") or {}).get("reason"),
        last_termination_reason=last.get("reason") or (state.get("terminated") or {}).get("reason"),
        last_termination_exit_code=last.get("exitCode"),
        last_termination_at=_parse_time(last.get("finishedAt")),
        terminating=bool(meta.get("deletionTimestamp")),
        unschedulable=scheduled.get("message") if scheduled.get("status") == "False" else None,
        revision=(meta.get("labels") or {}).get("controller-revision-hash"),
        claims=claims,
    )


def _parse_time(raw: Any) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None


def _timestamp(event: Mapping[str, Any]) -> datetime | None:
    raw = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
    if not raw:
        return None
    return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))


def event_facts(event: Mapping[str, Any]) -> EventFacts:
    involved = event.get("involvedObject") or {}
    return EventFacts(
        object_kind=involved.get("kind"),
        object_name=involved.get("name"),
        type=event.get("type"),
        reason=event.get("reason"),
        message=event.get("message"),
        count=int(event.get("count") or 1),
        last_seen=_timestamp(event),
    )


def deployment_facts(deploy: Mapping[str, Any], workload: Workload) -> DeploymentFacts:
    meta, spec = deploy["metadata"], deploy.get("spec") or {}
    found = find_container((spec.get("template") or {}).get("spec") or {}, workload.api_container)
    env = {e.get("name"): e.get("value") for e in (found[1].get("env") or [])} if found else {}
    original = (meta.get("annotations") or {}).get(ORIGINAL_REPLICAS)
    cache = env.get(workload.cache_env)
    return DeploymentFacts(
        name=meta["name"],
        replicas=int(spec.get("replicas", 1)),
        ready_replicas=int((deploy.get("status") or {}).get("readyReplicas") or 0),
        cache_enabled=None if cache is None else str(cache) != workload.cache_off,
        original_replicas=int(original) if original and original.isdigit() else None,
        pod_labels=dict(((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}),
    )


def problem_of(facts: KubernetesFacts) -> KubeProblem:
    """The most decisive problem, in the order the runbook acts on them."""
    sts = facts.statefulset
    if sts is None:
        return KubeProblem.STATEFULSET_MISSING if facts.reachable else KubeProblem.UNAVAILABLE
    checks = [
        (facts.pvc_unbound and facts.pod_pending, KubeProblem.PENDING_UNBOUND_PVC),
        (facts.oom_killed, KubeProblem.OOM_KILLED),
        (facts.crash_looping, KubeProblem.CRASH_LOOP),
        (facts.pod_terminating, KubeProblem.TERMINATING),
        (facts.pod_pending, KubeProblem.PENDING),
        (sts.replicas > 0 and not facts.pods, KubeProblem.NO_PODS),
        (any(not p.ready for p in facts.pods), KubeProblem.NOT_READY),
        (not sts.rollout_complete, KubeProblem.ROLLOUT_IN_PROGRESS),
    ]
    return next((problem for hit, problem in checks if hit), KubeProblem.NONE)


class Inspector:
    """One inspection: reads in order, recording each failure as a finding."""

    def __init__(
        self,
        api: client.ApiClient,
        timeouts: tuple[float, float],
        workload: Workload | None = None,
        oom_window: timedelta = OOM_WINDOW,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.timeouts = timeouts
        self.workload = workload or Workload()
        self.container = self.workload.redis_container
        self.oom_window = oom_window

    def _recent(self, at: datetime | None, now: datetime) -> bool:
        """An OOMKilled of unknown age counts: it may be the one behind this incident."""
        return at is None or now - at <= self.oom_window

    def _json(self, what: str, call: Callable[..., Any], *args: Any, **kw: Any) -> JSONDict:
        return _read(what, lambda: read_json(call, *args, timeout=self.timeouts, **kw))

    def inspect(self, target: RedisTarget) -> KubernetesFacts:
        facts = KubernetesFacts(
            taken_at=datetime.now(UTC), reachable=True, container=self.container
        )
        ns = target.namespace
        try:
            sts = self._json(
                f"statefulset {ns}/{target.statefulset}",
                self.apps.read_namespaced_stateful_set,
                target.statefulset,
                ns,
            )
        except ReadFailed as failed:
            facts.reachable = failed.reachable and failed.finding.code == "not_found"
            if failed.finding.code == "not_found":
                failed.finding.code = "statefulset_not_found"
            facts.findings.append(failed.finding)
            facts.problem = problem_of(facts)
            return facts
        facts.statefulset = statefulset_facts(sts)
        template = (sts.get("spec") or {}).get("template") or {}
        found = find_container(template.get("spec") or {}, self.container)
        if found is None:
            facts.findings.append(
                Finding(code="container_not_found", message=f"no container {self.container!r}")
            )
        else:
            limits = (found[1].get("resources") or {}).get("limits") or {}
            facts.memory_limit = limits.get("memory")
            facts.memory_limit_bytes = quantity_bytes(facts.memory_limit)
        policies: list[JSONDict] = []
        _read_in_parallel(facts, self._readers(facts, target, sts, found, policies))
        if target.api_deployment and self.workload.read_api_logs:  # needs the Deployment read
            _read_in_parallel(facts, [(lambda f: self._api_logs(f, ns), ("log_lines",))])
        self._cut_off(facts, ns, template, found, policies)
        facts.problem = problem_of(facts)
        return facts

    def _readers(
        self,
        facts: KubernetesFacts,
        target: RedisTarget,
        sts: JSONDict,
        container: tuple[int, JSONDict] | None,
        policies: list[JSONDict],
    ) -> list[tuple[Callable[[KubernetesFacts], None], tuple[str, ...]]]:
        """Every read that needs only the StatefulSet, to run at once: triage is on the path
        to mitigation. The pods' names are the StatefulSet's ordinals, so their events and
        logs need not wait for the pod list."""
        assert facts.statefulset is not None
        ns = target.namespace
        service = facts.statefulset.service_name or target.statefulset
        name = facts.statefulset.name
        pods = [f"{name}-{i}" for i in range(facts.statefulset.replicas)]
        readers: list[tuple[Callable[[KubernetesFacts], None], tuple[str, ...]]] = [
            (lambda f: self._pods(f, sts, ns), POD_FIELDS),
            (lambda f: self._pvcs(f, sts, ns), ("pvcs", "pvc_unbound")),
            (lambda f: self._endpoints(f, ns, service), ENDPOINT_FIELDS),
            (lambda f: self._events(f, ns, [name, *pods]), ("events",)),
            (lambda f: self._redis_logs(f, ns, pods), ("log_lines",)),
        ]
        if self.workload.config_map:
            args = [str(a) for a in (container[1].get("args") or [])] if container else []
            readers.append((lambda f: self._config_map(f, ns, args), CONFIG_FIELDS))
        if target.api_deployment:
            api = target.api_deployment
            readers.append((lambda f: self._deployment(f, ns, api), ("api_deployment",)))
            readers.append((lambda f: self._network_policies(f, ns, policies), ()))
        return readers

    def _pods(self, facts: KubernetesFacts, sts: JSONDict, ns: str) -> None:
        selector = label_selector((sts.get("spec") or {}).get("selector") or {})
        try:
            found = self._json("pods", self.core.list_namespaced_pod, ns, label_selector=selector)
        except ReadFailed as failed:
            facts.findings.append(failed.finding)
            return
        facts.pods = [pod_facts(pod, self.container) for pod in found.get("items") or []]
        for pod in facts.pods:
            if pod.oom_killed and self._recent(pod.last_termination_at, facts.taken_at):
                facts.oom_killed = True
                facts.findings.append(
                    Finding(code="oom_killed", message=f"{pod.name} was OOMKilled")
                )
            elif pod.oom_killed:
                facts.findings.append(
                    Finding(
                        code="oom_killed_long_ago",
                        message=f"{pod.name} was OOMKilled at {pod.last_termination_at}, "
                        f"longer ago than the OOM window ({self.oom_window})",
                    )
                )
            if pod.waiting_reason == "CrashLoopBackOff":
                facts.crash_looping = True
                facts.findings.append(
                    Finding(
                        code="crash_loop",
                        message=f"{pod.name} is in CrashLoopBackOff ({pod.restarts} restarts)",
                    )
                )
            if pod.phase == "Pending":
                facts.pod_pending = True
                facts.findings.append(
                    Finding(
                        code="pod_pending",
                        message=f"{pod.name} is Pending: {pod.unschedulable or 'not started'}",
                    )
                )
            if pod.terminating:
                facts.pod_terminating = True
                facts.findings.append(
                    Finding(code="pod_terminating", message=f"{pod.name} is being deleted")
                )

    def _events(self, facts: KubernetesFacts, ns: str, names: list[str]) -> None:
        """The events of the StatefulSet and its pods, one read each, at once."""

        def read(name: str) -> list[EventFacts]:
            found = self._json(f"events of {name}", self.core.list_namespaced_event, ns,
                               field_selector=f"involvedObject.name={name}")  # fmt: skip
            return [event_facts(e) for e in found.get("items") or []]

        events: list[EventFacts] = []
        with ThreadPoolExecutor(max_workers=min(len(names), 4)) as pool:
            for done in [pool.submit(read, name) for name in names]:
                try:
                    events += done.result()
                except ReadFailed as failed:
                    facts.findings.append(
                        Finding(code="events_unavailable", message=failed.finding.message)
                    )
                    return
        oldest = datetime.min.replace(tzinfo=UTC)
        events.sort(key=lambda e: e.last_seen or oldest)
        facts.events = events[-EVENTS_KEPT:]

    def _pvcs(self, facts: KubernetesFacts, sts: JSONDict, ns: str) -> None:
        assert facts.statefulset is not None
        templates = (sts.get("spec") or {}).get("volumeClaimTemplates") or []
        for template in templates:
            for ordinal in range(facts.statefulset.replicas):
                name = f"{template['metadata']['name']}-{facts.statefulset.name}-{ordinal}"
                try:
                    pvc = self._json(
                        f"pvc {name}", self.core.read_namespaced_persistent_volume_claim, name, ns
                    )
                except ReadFailed as failed:
                    facts.findings.append(failed.finding)
                    facts.pvcs.append(PvcFacts(name=name, phase=None, bound=False))
                    continue
                phase = (pvc.get("status") or {}).get("phase")
                facts.pvcs.append(PvcFacts(name=name, phase=phase, bound=phase == "Bound"))
        unbound = [p.name for p in facts.pvcs if not p.bound]
        if unbound:
            facts.pvc_unbound = True
            facts.findings.append(
                Finding(code="pvc_unbound", message=f"not bound: {', '.join(unbound)}")
            )

    def _endpoints(self, facts: KubernetesFacts, ns: str, service: str) -> None:
        """How many endpoints are ready, and which pod each address is (a Sentinel-managed
        group's members are known to Sentinel by address, to a person by pod)."""
        try:
            found = self._json(
                f"endpoints {service}", self.core.read_namespaced_endpoints, service, ns
            )
        except ReadFailed as failed:
            facts.findings.append(failed.finding)
            return
        subsets = found.get("subsets") or []
        facts.ready_endpoints = sum(len(s.get("addresses") or []) for s in subsets)
        facts.not_ready_endpoints = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
        facts.members = endpoint_pods(subsets)
        if facts.ready_endpoints == 0:
            facts.findings.append(
                Finding(code="no_ready_endpoints", message=f"service {service} has none ready")
            )

    def _redis_logs(self, facts: KubernetesFacts, ns: str, pods: list[str]) -> None:
        """The Redis pods' recent log (a pod not there yet has none: a finding, no more)."""
        for pod in pods:
            text = self._log_text(facts, ns, pod, self.container)
            facts.log_lines += redis_log_lines(text, pod, self.container) if text else []

    def _api_logs(self, facts: KubernetesFacts, ns: str) -> None:
        """The Redis lines of up to API_PODS_READ of the API's pods, read at once."""
        api = facts.api_deployment
        if api is None or not api.pod_labels:
            return
        try:
            selector = label_selector({"matchLabels": api.pod_labels})
            found = self._json("the API's pods", self.core.list_namespaced_pod, ns,
                               label_selector=selector)  # fmt: skip
        except ReadFailed as failed:
            facts.findings.append(Finding(code="logs_unavailable", message=failed.finding.message))
            return
        names = [p["metadata"]["name"] for p in (found.get("items") or [])[:API_PODS_READ]]
        container = self.workload.api_container
        with ThreadPoolExecutor(max_workers=max(len(names), 1)) as pool:
            texts = list(pool.map(lambda name: self._log_text(facts, ns, name, container), names))
        for name, text in zip(names, texts, strict=True):
            facts.log_lines += api_log_lines(text, name, container) if text else []

    def _log_text(self, facts: KubernetesFacts, ns: str, pod: str, container: str) -> str:
        """A container's tail; a log that cannot be read is a finding, never a failure."""
        try:
            return _read(f"log of {pod}/{container}", lambda: str(self.core.read_namespaced_pod_log(
                pod, ns, container=container, tail_lines=TAIL_LINES, limit_bytes=LIMIT_BYTES,
                _request_timeout=self.timeouts)))  # fmt: skip
        except ReadFailed as failed:
            facts.findings.append(Finding(code="logs_unavailable", message=failed.finding.message))
            return ""

    def _config_map(self, facts: KubernetesFacts, ns: str, args: list[str]) -> None:
        name, key = self.workload.config_map or "", self.workload.config_key
        try:
            found = self._json(f"configmap {name}", self.core.read_namespaced_config_map, name, ns)
        except ReadFailed as failed:
            facts.findings.append(
                Finding(code="config_map_unavailable", message=failed.finding.message)
            )
            return
        text = (found.get("data") or {}).get(key)
        if text is None:
            missing = f"configmap {name} has no key {key!r}"
            facts.findings.append(Finding(code="config_map_unavailable", message=missing))
            return
        facts.configured = configured(str(text), args)
        facts.config_source = f"configmap {name} ({key}) and the container's args"

    def _network_policies(self, facts: KubernetesFacts, ns: str, into: list[JSONDict]) -> None:
        try:
            found = self._json(
                "networkpolicies", self.networking.list_namespaced_network_policy, ns
            )
        except ReadFailed as failed:
            facts.findings.append(
                Finding(code="network_policies_unavailable", message=failed.finding.message)
            )
            return
        into.extend(found.get("items") or [])

    def _cut_off(
        self,
        facts: KubernetesFacts,
        ns: str,
        template: Mapping[str, Any],
        container: tuple[int, JSONDict] | None,
        policies: list[JSONDict],
    ) -> None:
        """Name the policies that shut the API's pods out of Redis (sandbox and real
        clusters alike: the Redis pod's container port, the two pod templates' labels)."""
        api = facts.api_deployment
        if api is None or not policies:
            return
        declared = (container[1].get("ports") or []) if container else []
        ports = {str(p["name"]): int(p["containerPort"]) for p in declared if p.get("name")}
        port = int(declared[0]["containerPort"]) if declared else REDIS_PORT
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        blocked = blocking(
            policies,
            api=Side(namespace=ns, labels=api.pod_labels),
            redis=Side(namespace=ns, labels=labels, ports=ports),
            port=port,
        )
        if blocked:
            facts.network_blocked_by = blocked
            names = ", ".join(f'"{name}"' for name in blocked)
            facts.findings.append(Finding(code="api_cut_off", message=(
                f"NetworkPolicy {names} shuts the API's pods ({api.name}) out of Redis on "
                f"{port}/TCP")))  # fmt: skip

    def _deployment(self, facts: KubernetesFacts, ns: str, name: str) -> None:
        try:
            found = self._json(f"deployment {name}", self.apps.read_namespaced_deployment, name, ns)
        except ReadFailed as failed:
            facts.findings.append(failed.finding)
            return
        facts.api_deployment = deployment_facts(found, self.workload)
