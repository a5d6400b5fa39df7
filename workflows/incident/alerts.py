"""The alerts an incident has seen, in bounded space.

An alert storm can bring thousands of distinct alerts into one incident, and everything the
incident knows is carried whole into its next run (continue-as-new) under Temporal's payload
limit. So the ledger keeps the first alerts whole, the status of every fingerprint (a few bytes
each, to know when they have all resolved), and counts past that.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from contracts.alerts import Alert, AlertStatus, AlertSummary

SHOWN = 200  # alerts kept whole (labels, annotations) for the status and the report
TRACKED = 20_000  # fingerprints whose status is known; past this, counted only


class AlertLedger(BaseModel):
    shown: dict[str, Alert] = Field(default_factory=dict, description="the first, whole")
    firing: dict[str, bool] = Field(
        default_factory=dict, description="fingerprints seen firing here -> firing now"
    )
    resolved_only: dict[str, bool] = Field(
        default_factory=dict, description="resolved, never seen firing here: never a stand-down"
    )
    deliveries: int = Field(default=0, description="alerts received, repeats included")
    untracked: int = Field(default=0, description="new fingerprints past TRACKED")

    @classmethod
    def of(cls, alerts: list[Alert]) -> AlertLedger:
        ledger = cls()
        for alert in alerts:
            ledger.record(alert)
        return ledger

    def record(self, alert: Alert) -> bool:
        """Count it; True when it is news (a new fingerprint, or a known one changing status)."""
        self.deliveries += 1
        firing = alert.status is AlertStatus.FIRING
        fingerprint = alert.fingerprint
        known = self.firing.get(fingerprint)
        if (known is not None and known == firing) or (
            not firing and known is None and fingerprint in self.resolved_only
        ):
            return False
        if known is None and len(self.firing) + len(self.resolved_only) >= TRACKED:
            self.untracked += 1
            return True
        if not firing and known is None:  # it never fired in this incident
            self.resolved_only[fingerprint] = True
        else:
            self.resolved_only.pop(fingerprint, None)
            self.firing[fingerprint] = firing
        if alert.fingerprint in self.shown or len(self.shown) < SHOWN:
            self.shown[alert.fingerprint] = alert
        return True

    def all_resolved(self) -> bool:
        """Every alert seen firing in this incident has resolved (never true with none seen
        firing, nor once some went untracked: unknowable)."""
        return bool(self.firing) and not self.untracked and not any(self.firing.values())

    def firing_names(self) -> list[str]:
        """Names of the firing alerts among those kept whole (enough to corroborate)."""
        return sorted({a.name for fp, a in self.shown.items() if self.firing.get(fp)})

    def alerts(self) -> list[Alert]:
        return list(self.shown.values())

    def summary(self) -> AlertSummary:
        firing = sum(self.firing.values())
        return AlertSummary(
            distinct=len(self.firing) + len(self.resolved_only) + self.untracked,
            firing=firing,
            resolved=len(self.firing) - firing + len(self.resolved_only),
            deliveries=self.deliveries,
            shown=len(self.shown),
            untracked=self.untracked,
        )
