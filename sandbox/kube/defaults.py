"""What kube-apiserver fills in when a Job is created, so the Job a client reads back is the one
a real cluster stores: completions and parallelism 1 when neither is given, backoffLimit 6, a
NonIndexed completion mode, not suspended, and (unless `manualSelector`) the generated selector
with the labels that tie the Job's pods to it. Clients rely on these: kubectl prints
COMPLETIONS as `succeeded/completions`, and `kubectl logs job/X` finds the pods by the
selector.
"""

from __future__ import annotations

from typing import Any

JSONDict = dict[str, Any]
DEFAULT_BACKOFF_LIMIT = 6
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"


def pod_labels(name: str, uid: str) -> dict[str, str]:
    """The labels kube-apiserver adds to a Job's pod template (and so to each of its pods)."""
    return {
        LEGACY_CONTROLLER_UID_LABEL: uid,
        CONTROLLER_UID_LABEL: uid,
        LEGACY_JOB_NAME_LABEL: name,
        JOB_NAME_LABEL: name,
    }


def default_job(job: JSONDict) -> None:
    """SetDefaults_Job and the Job strategy's PrepareForCreate, in place, once the Job has its
    name and uid. A value the client set is kept."""
    meta, spec = job["metadata"], job.setdefault("spec", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = DEFAULT_BACKOFF_LIMIT
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = spec.setdefault("template", {})
    template_meta = template.get("metadata") or {}
    template["metadata"] = template_meta
    if template_meta.get("labels") and not meta.get("labels"):
        meta["labels"] = dict(template_meta["labels"])
    if spec.get("manualSelector") is True:
        return
    labels = template_meta.get("labels") or {}
    template_meta["labels"] = {**pod_labels(meta["name"], meta["uid"]), **labels}
    selector = spec.get("selector") or {}
    spec["selector"] = selector
    matched = selector.get("matchLabels") or {}
    selector["matchLabels"] = {CONTROLLER_UID_LABEL: meta["uid"], **matched}


def job_problems(job: JSONDict) -> list[str]:
    """The Job validations a warm Job can trip (its pod template is checked like a pod's)."""
    problems = []
    spec = job.get("spec") or {}
    # unset, it is a pod's default (Always), which a Job refuses
    policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") or "Always"
    if policy not in ("OnFailure", "Never"):
        problems.append(
            f'spec.template.spec.restartPolicy: Unsupported value: "{policy}": supported '
            'values: "OnFailure", "Never"'
        )
    for field in ("backoffLimit", "completions", "parallelism"):
        value = spec.get(field)
        if value is not None and (not isinstance(value, int) or value < 0):
            problems.append(f"spec.{field}: Invalid value: {value!r}: must be greater than or "
                            "equal to 0")  # fmt: skip
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not isinstance(deadline, int) or deadline <= 0):
        problems.append(
            f"spec.activeDeadlineSeconds: Invalid value: {deadline!r}: must be greater than 0"
        )
    return problems
