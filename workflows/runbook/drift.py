"""What Redis runs against what it was told to run with, and whether a restart kept the data:
the runbook's "check the ConfigMap" and "check if data persisted", from facts already read.
Pure."""

from __future__ import annotations

from contracts.diagnosis import Diagnosis, RedisInfo
from contracts.steps import Step, StepName


def live_settings(info: RedisInfo) -> dict[str, str]:
    """The compared settings as the running server reports them."""
    live = {
        "maxmemory": str(info.maxmemory),
        "maxmemory-policy": info.maxmemory_policy,
        "maxclients": str(info.maxclients),
        "appendonly": "yes" if info.aof_enabled else "no",
    }
    if info.save is not None:
        live["save"] = info.save
    return live


def _same(key: str, configured: str, live: str) -> bool:
    if key == "save":
        return configured.strip('" ').split() == live.strip('" ').split()
    return configured.strip().lower() == live.strip().lower()


def config_drift(diagnosis: Diagnosis) -> list[str]:
    """One line per setting whose live value differs from the ConfigMap (and args)."""
    kube, info = diagnosis.kubernetes, diagnosis.info
    if kube is None or kube.configured is None or info is None:
        return []
    live = live_settings(info)
    return [
        f"{key}: {kube.config_source or 'the config'} says {want!r}, Redis runs {live[key]!r}"
        for key, want in kube.configured.items()
        if key in live and not _same(key, want, live[key])
    ]


def data_after_restart(before: Diagnosis, after: Diagnosis | None, steps: list[Step]) -> str | None:
    """Whether the keys survived the restart the incident made; None without one."""
    restarted = any(
        s.name in (StepName.RESTART, StepName.FORCE_DELETE_POD) and s.status == "succeeded"
        for s in steps
    )
    if not restarted or after is None or after.dbsize is None:
        return None
    if before.dbsize is None:
        return f"{after.dbsize} keys after the restart (none could be counted before it)"
    if after.dbsize >= before.dbsize:
        return f"data persisted: {before.dbsize} keys before the restart, {after.dbsize} after"
    return (
        f"data lost: {before.dbsize} keys before the restart, {after.dbsize} after "
        "(warm the cache; check persistence if it should have survived)"
    )
