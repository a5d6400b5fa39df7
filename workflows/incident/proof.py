"""Whether a decision is what it claims: proven by a front door (its signed attestation, checked
by the worker, which holds the key), and made for this incident and the plan as it stands.

Temporal records no verified sender on a signal or an update, so a decision that claims a proof
counts only with an attestation that checks out, and then carries the identity the front door
proved, not the name it types.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.attestation import AttestationActivities
    from contracts.decisions import Decision
    from workflows.incident import retries
    from workflows.incident.memory import IncidentMemory
    from workflows.runbook.approvals import plan_digest

# Decisions bound to their incident and plan, pre-approvals expiring; older histories replay
# without these checks.
PATCH_BOUND_DECISIONS = "decisions-bound-and-expiring"


async def proven(decision: Decision) -> Decision | str:
    """The decision with the identity and proof its attestation vouches for, or why not."""
    if decision.attestation is None:
        if decision.proof != "unverified":
            return (
                f"it claims a {decision.proof} proof without a front door's attestation: a "
                "verified decision comes only from the approvals endpoint or the Slack button"
            )
        return decision
    check = await workflow.execute_local_activity_method(
        AttestationActivities.verify_decision,
        decision.attestation,
        start_to_close_timeout=retries.CONFIG.timeout,
        retry_policy=retries.CONFIG.retry,
    )
    claim = check.claim
    if not check.valid or claim is None:
        return check.reason
    if claim.expires_at < workflow.now():
        return "the attestation has expired: decide again"
    said = (claim.workflow_id, claim.step, claim.decision)
    if said != (workflow.info().workflow_id, decision.step, decision.decision):
        return "the attestation is for another incident, step or decision"
    return decision.model_copy(
        update={
            "approver": claim.approver,
            "proof": claim.proof,
            "incident_run": claim.incident_run,
            "plan_digest": claim.plan_digest,
        }
    )


def unbound(memory: IncidentMemory, decision: Decision) -> str | None:
    """Why a decision does not belong to this incident and its plan as it stands, if it does
    not. A decision that names neither (a raw signal) is bound by the policy alone."""
    if not workflow.patched(PATCH_BOUND_DECISIONS):
        return None
    this = workflow.info().first_execution_run_id
    if decision.incident_run is not None and decision.incident_run != this:
        return (
            f"it was made for another incident (run {decision.incident_run}); this one is run "
            f"{this}: look at `runbook status` and decide again"
        )
    digest = plan_digest(memory.plan)
    if decision.plan_digest is not None and decision.plan_digest != digest:
        return (
            f"it was made on a plan that has since changed ({decision.plan_digest}, now "
            f"{digest}): look at the plan again (`runbook status`) and decide again"
        )
    return None
