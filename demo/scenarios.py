"""The failures `make demo` can inject: one sandbox fault each, the alert that reports it, and
one line saying what happens next. `make demo SCENARIO=list` prints them."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.kube.faults import Fault


@dataclass(frozen=True)
class DemoScenario:
    name: str
    fault: Fault
    alert: str  # what the chain fires; posted by the demo itself where the chain is missing
    story: str
    unattended: bool  # runs to the end without anyone approving
    # The application's cache reads. Slower in `full`: at the usual rate the reads alone fill
    # the hot keys back within a second of the flush, before the warm Job could matter.
    reads_per_s: float = 400.0
    sentinel: bool = False  # the topology: a master and two replicas under three Sentinels

    def line(self) -> str:
        who = "unattended" if self.unattended else "stops for approvals"
        return f"{self.name:<12} {self.story} ({who})"


SCENARIOS = {
    s.name: s
    for s in (
        DemoScenario(
            "down",
            Fault.DOWN,
            "RedisDown",
            "Redis killed: rollout restart, wait for ready, verify",
            unattended=True,
        ),
        DemoScenario(
            "oom",
            Fault.OOM,
            "RedisOutOfConfiguredMaxmemory",
            "Redis OOMKilled and full: an evicting policy, then more memory (a flush only if "
            "still out of memory)",
            unattended=False,
        ),
        DemoScenario(
            "full",
            Fault.FULL,
            "RedisOutOfConfiguredMaxmemory",
            "Redis full of keys without a TTL: the flush behind approval, the warm script as a "
            "Job, the hit rate climbs back",
            unattended=False,
            reads_per_s=25.0,
        ),
        DemoScenario(
            "crashloop",
            Fault.CRASHLOOP,
            "RedisDown",
            "CrashLoopBackOff: a restart does not help, the pod is force-deleted",
            unattended=False,
        ),
        DemoScenario(
            "failover",
            Fault.MASTER_DOWN,
            "RedisDown",
            "the master killed under three Sentinels: the failover waited for (no restart "
            "races it), a write verified on the new master, the old master back as a replica",
            unattended=True,
            sentinel=True,
        ),
    )
}
DEFAULT = "down"


def listing() -> str:
    """One line per scenario, the default marked."""
    lines = ["scenarios (make demo SCENARIO=NAME):"]
    for s in SCENARIOS.values():
        lines.append(f"  {s.line()}" + ("  [default]" if s.name == DEFAULT else ""))
    lines.append("ARGS='--approve-as NAME' approves every step as NAME (unattended);")
    lines.append("ARGS=--exit-when-done exits after the review.")
    return "\n".join(lines)
