"""What a Sentinel-managed group's facts mean, as findings a person reads and classify acts on.

Judged here, where the facts are read, so the report says the same as the plan: which
master the Sentinels name and whether they can move it, which replica is down or behind.
"""

from __future__ import annotations

from contracts.finding import Finding
from contracts.replication import Member, ReplicationFacts


def usable_master(facts: ReplicationFacts) -> str | Finding:
    """The master to read, or the finding that says why there is none to read."""
    if facts.sentinels_up == 0:
        errors = "; ".join(f"{s.address}: {s.error}" for s in facts.sentinels)
        return Finding(
            code="no_sentinel",
            message=f"no Sentinel of {facts.master_name} answers ({errors}): nothing can "
            "say where the master is, or fail over",
        )
    if facts.master is None:
        said = "; ".join(f"{s.address}: {s.master}" for s in facts.sentinels if s.reachable)
        return Finding(
            code="no_master",
            message=f"no majority of the Sentinels names a master for {facts.master_name} "
            f"({said}): a failover may be under way",
        )
    if facts.master_down:
        return Finding(code="master_down", message=_master_down(facts))
    return facts.master


def _master_down(facts: ReplicationFacts) -> str:
    flags = next((s.flags for s in facts.sentinels if s.sees_master_down), "")
    up, total, quorum = facts.sentinels_up, len(facts.sentinels), facts.quorum
    if facts.failing_over:
        then = "they are failing over"
    elif facts.can_fail_over:
        then = f"quorum {quorum} is reachable, so they can fail over"
    else:
        said = next((s.quorum_message for s in facts.sentinels if s.reachable), "")
        then = f"they cannot fail over on their own ({said})"
    return (
        f"Sentinel flags the master {facts.master} of {facts.master_name} as down ({flags}); "
        f"{up} of {total} Sentinels answer, quorum {quorum}: {then}"
    )


def group_findings(facts: ReplicationFacts, lag_threshold_s: float) -> list[Finding]:
    """The Sentinels that do not answer or cannot agree, and each replica that is behind."""
    found = []
    silent = [s.address for s in facts.sentinels if not s.reachable]
    if silent and facts.sentinels_up:
        found.append(
            Finding(
                code="sentinel_down",
                message=f"{len(silent)} of {len(facts.sentinels)} Sentinels do not answer: "
                + ", ".join(silent),
            )
        )
    if facts.sentinels_up and not facts.can_fail_over:
        said = next((s.quorum_message for s in facts.sentinels if s.reachable), "")
        found.append(Finding(code="sentinel_no_quorum", message=f"SENTINEL CKQUORUM: {said}"))
    for member in facts.replicas():
        problem = replica_problem(member, lag_threshold_s)
        if problem is not None:
            found.append(problem)
    return found


def replica_problem(member: Member, lag_threshold_s: float) -> Finding | None:
    """A replica down, cut off from its master, or further behind than the threshold."""
    behind = member.lag_s is not None and member.lag_s > lag_threshold_s
    if not member.reachable:  # our own look outweighs a Sentinel's flag not yet refreshed
        why = member.error or f"Sentinel flags it {member.flags}"
        if behind:  # still connected to the master, which has not heard from it
            return Finding(
                code="replica_lagging",
                subject=member.address,
                message=f"replica {member.address} lags {member.lag_s} s behind the master "
                f"(threshold {lag_threshold_s:g} s) and does not answer: {why}",
            )
        return Finding(
            code="replica_down",
            subject=member.address,
            message=f"replica {member.address} is down: {why}",
        )
    if member.role != "slave":
        return Finding(
            code="replica_not_replicating",
            subject=member.address,
            message=f"{member.address}, a replica to Sentinel, says it is a {member.role}",
        )
    if member.master_link_status != "up":
        return Finding(
            code="replica_link_down",
            subject=member.address,
            message=f"replica {member.address}: master_link_status {member.master_link_status}",
        )
    if behind:
        return Finding(
            code="replica_lagging",
            subject=member.address,
            message=f"replica {member.address} lags {member.lag_s} s behind the master "
            f"(threshold {lag_threshold_s:g} s)",
        )
    return None
