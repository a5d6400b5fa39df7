"""What triage sees of a Sentinel-managed group: the Sentinels' views of it, and each member's
own account of its replication. A member is named by the address Sentinel knows it by
("ip:port"), and by its pod where Kubernetes' endpoints say which pod that is."""

from __future__ import annotations

from pydantic import BaseModel, Field

DOWN_FLAGS = ("s_down", "o_down")


def is_down(flags: str) -> bool:
    """Sentinel's flags (e.g. "master,s_down,o_down") say it judged the instance down: past
    down-after, not a link that is merely reconnecting ("disconnected")."""
    return any(flag in flags.split(",") for flag in DOWN_FLAGS)


def linked(flags: str) -> bool:
    """Not judged down, and the Sentinel's link to it is up."""
    return not is_down(flags) and "disconnected" not in flags.split(",")


class SentinelView(BaseModel):
    """One Sentinel's answer about the master it monitors (SENTINEL MASTER, CKQUORUM)."""

    address: str
    reachable: bool
    error: str | None = None
    master: str | None = Field(default=None, description="the master's address it names")
    flags: str = ""
    quorum: int = 0
    other_sentinels: int = 0
    quorum_ok: bool = Field(default=False, description="SENTINEL CKQUORUM answered OK")
    quorum_message: str = ""
    failover_state: str = Field(default="", description="e.g. wait_promotion; '' when none")
    down_after_ms: int = 0
    failover_timeout_ms: int = 0

    @property
    def sees_master_down(self) -> bool:
        return self.reachable and is_down(self.flags)


class Member(BaseModel):
    """A master or replica of the group: what Sentinel says of it and what it says itself."""

    address: str
    pod: str | None = Field(default=None, description="the pod behind the address, if known")
    named_master: bool = Field(default=False, description="the Sentinels name it the master")
    flags: str = Field(default="", description="a Sentinel's flags for it")
    reachable: bool = False
    error: str | None = None
    role: str = Field(default="", description="INFO replication role: master or slave")
    master_link_status: str | None = None
    offset: int = 0
    lag_s: int | None = Field(default=None, description="seconds since its last ACK (master)")


class ReplicationFacts(BaseModel):
    """The group as triage found it. `master` is the address the reachable Sentinels name
    (the most of them, when they disagree); None when no Sentinel answered."""

    master_name: str
    master: str | None = None
    master_service: str | None = Field(
        default=None, description="the Service clients reach the master through, if configured"
    )
    sentinels: list[SentinelView] = Field(default_factory=list)
    members: list[Member] = Field(default_factory=list)

    @property
    def sentinels_up(self) -> int:
        return sum(1 for s in self.sentinels if s.reachable)

    @property
    def quorum(self) -> int:
        return max((s.quorum for s in self.sentinels if s.reachable), default=0)

    @property
    def can_fail_over(self) -> bool:
        """Enough Sentinels answer to agree on a failover: CKQUORUM OK on one of them, and as
        the worker sees them, the quorum and a majority of all of them up (a Sentinel left
        alone says OK until it has noticed the others are gone)."""
        up = self.sentinels_up
        majority = up > len(self.sentinels) / 2
        return majority and up >= self.quorum and any(s.quorum_ok for s in self.sentinels)

    @property
    def failing_over(self) -> bool:
        return any(s.reachable and s.failover_state not in ("", "none") for s in self.sentinels)

    @property
    def master_down(self) -> bool:
        """A Sentinel flags the master it names as not answering."""
        return any(s.sees_master_down for s in self.sentinels)

    @property
    def failover_timeout_s(self) -> float:
        views = [s for s in self.sentinels if s.reachable and s.failover_timeout_ms]
        return max((s.failover_timeout_ms for s in views), default=180_000) / 1000

    @property
    def down_after_s(self) -> float:
        views = [s for s in self.sentinels if s.reachable and s.down_after_ms]
        return max((s.down_after_ms for s in views), default=30_000) / 1000

    def replicas(self) -> list[Member]:
        return [m for m in self.members if not m.named_master]
