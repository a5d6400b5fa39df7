"""What the read-only reports found: the evidence a person reads before approving a fix."""

from __future__ import annotations

from pydantic import BaseModel, Field

from contracts.finding import Finding


class CommandStat(BaseModel):
    command: str
    count: int
    total_ms: float
    worst_ms: float


class Offender(BaseModel):
    command: str
    duration_ms: float
    advice: str


class SlowlogReport(BaseModel):
    entries: int
    top_commands: list[CommandStat] = Field(default_factory=list)
    offenders: list[Offender] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)


class ClientGroup(BaseModel):
    """Connections sharing an address and a name: a leak shows up as one huge group."""

    address: str
    name: str
    connections: int
    idle_max_s: int
    commands: list[str] = Field(default_factory=list)


class ClientReport(BaseModel):
    total: int
    groups: list[ClientGroup] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)


class PrefixStat(BaseModel):
    prefix: str
    keys: int
    bytes: int
    without_ttl: int


class BigKey(BaseModel):
    key: str
    bytes: int
    ttl_s: int


class KeyspaceReport(BaseModel):
    """A bounded SCAN sample: never a full walk of a Redis that is already struggling."""

    sampled: int
    dbsize: int
    sampled_bytes: int
    without_ttl: int
    prefixes: list[PrefixStat] = Field(default_factory=list)
    biggest: list[BigKey] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)


class Analysis(BaseModel):
    slowlog: SlowlogReport | None = None
    clients: ClientReport | None = None
    keyspace: KeyspaceReport | None = None
