"""The rules for a Sentinel-managed group: pure functions of the diagnosis, like classify's.

A master that is down is Sentinel's to move: the runbook waits for the failover, or asks a
person to force one; it never restarts the StatefulSet while Sentinel may be promoting a
replica. A replica is named by its pod where Kubernetes' endpoints say which it is.
"""

from __future__ import annotations

from contracts.diagnosis import Diagnosis
from contracts.replication import Member

MASTER_GONE = ("master_down", "no_master", "no_sentinel")
REPLICA_PROBLEMS = (
    "replica_down",
    "replica_link_down",
    "replica_lagging",
    "replica_not_replicating",
)


def pod_of(d: Diagnosis, address: str | None) -> str | None:
    """The pod behind a member's address, from the endpoints triage read."""
    if address is None or d.kubernetes is None:
        return None
    return d.kubernetes.members.get(address)


def named(d: Diagnosis, address: str | None) -> str:
    pod = pod_of(d, address)
    return f"{pod} ({address})" if pod else str(address)


def _master_gone(d: Diagnosis, corroborated: bool) -> str | None:
    """Why the master is gone: a Sentinel flags it, none names one, or (before down-after has
    passed) the worker cannot reach it and Kubernetes or an alert agrees it is down."""
    facts = d.replication
    if facts is None or d.reachable:
        return None
    said = next((f.message for f in d.findings if f.code in MASTER_GONE), None)
    if said is not None:
        return said
    if not (corroborated and master_pod_down(d)) or facts.master is None:
        return None
    first = next((f.message for f in d.findings), "no answer")
    return (
        f"the master {named(d, facts.master)} does not answer ({first}), and Kubernetes or "
        f"an alert agrees; the Sentinels do not flag it yet (down-after {facts.down_after_s:g} s)"
    )


def master_pod_down(d: Diagnosis) -> bool:
    """Kubernetes calls the master's own pod not Ready (another member's pod down, such as
    an old master after a failover, says nothing of this one); True where Kubernetes cannot
    say which pod it is, and the alert alone has to corroborate."""
    facts, kube = d.replication, d.kubernetes
    pod = pod_of(d, facts.master if facts else None)
    if kube is None or pod is None:
        return True
    return any(p.name == pod and not p.ready for p in kube.pods)


def _sentinel_moves_it(d: Diagnosis) -> bool:
    facts = d.replication
    return (
        facts is not None and facts.sentinels_up > 0 and (facts.can_fail_over or facts.failing_over)
    )


def failover(d: Diagnosis, corroborated: bool) -> str | None:
    """The master is down and enough Sentinels agree to move it (or already are)."""
    said = _master_gone(d, corroborated)
    if said is None or d.replication is None or not _sentinel_moves_it(d):
        return None
    master = named(d, d.replication.master)
    return f"{said}. Master {master}: waiting for Sentinel, restarting nothing"


def no_failover(d: Diagnosis, corroborated: bool) -> str | None:
    """The master is down and Sentinel will not move it: too few Sentinels, or none."""
    said = _master_gone(d, corroborated)
    if said is None or _sentinel_moves_it(d):
        return None
    return f"{said}. No failover will happen by itself: SENTINEL FAILOVER needs a person"


def unreachable_from_runbook(d: Diagnosis, corroborated: bool) -> str | None:
    """The worker cannot reach the master, the Sentinels see it up, and nothing else says
    it is down."""
    facts = d.replication
    if corroborated and master_pod_down(d):
        return None
    if facts is None or facts.master is None or facts.master_down:
        return None
    if not facts.sentinels_up:
        return None
    first = next((f.message for f in d.findings), "no answer")
    return (
        f"only the runbook cannot reach the master {named(d, facts.master)} ({first}); "
        f"{facts.sentinels_up} Sentinels see it up"
    )


def degraded_replicas(d: Diagnosis) -> list[Member]:
    """The replicas a finding names, in the order the Sentinels list them."""
    facts = d.replication
    if facts is None:
        return []
    flagged = {f.subject for f in d.findings if f.code in REPLICA_PROBLEMS}
    return [m for m in facts.replicas() if m.address in flagged]


def replica_degraded(d: Diagnosis) -> str | None:
    """The master is fine; a replica is down, cut off or behind."""
    if not d.reachable or d.replication is None:
        return None
    found = [f for f in d.findings if f.code in REPLICA_PROBLEMS]
    if not found:
        return None
    messages = []
    for finding in found:
        pod = pod_of(d, finding.subject)
        text = finding.message
        if pod and finding.subject:
            text = text.replace(finding.subject, f"{pod} ({finding.subject})", 1)
        messages.append(text)
    return "; ".join(messages) + "; the master is not touched"


def sentinels_degraded(d: Diagnosis) -> str | None:
    """Everything serves, but the next master failure would not fail over by itself."""
    if not d.reachable or d.replication is None:
        return None
    found = [f.message for f in d.findings if f.code in ("sentinel_down", "sentinel_no_quorum")]
    if not found:
        return None
    return "; ".join(found) + ": the next master failure would not fail over by itself"
