"""What the demo says once a recovery step has run: the Job the warm step ran, what its log
says it wrote and the keys Redis then held, and the hit rate as watch_hit_rate sampled it. The
report has the steps too, but a step's detail names neither the Job nor the curve, and they
are what shows the cache coming back."""

from __future__ import annotations

from kubernetes import client

from contracts.steps import Step, StepName
from sandbox.cluster import SandboxCluster
from sandbox.processes import kubectl

DONE = ("succeeded", "failed")


def warm_lines(step: Step) -> tuple[list[str], list[str]]:
    """(lines, names of the Jobs it ran) once the warm step ran: `warm: job warm-cache-1a2b
    completed in 1.2s, 312 keys in Redis`."""
    if step.name is not StepName.WARM or step.status not in DONE:
        return [], []
    if step.result is None:
        return [f"warm {step.status}: {step.detail or 'no detail'}"], []
    after = dict(step.result.after)
    keys = after.pop("keys", None)
    outcomes = [str(v) for v in after.values()]
    jobs = [o.split()[1] for o in outcomes if o.startswith("job ")]
    done = "; ".join(outcomes) or step.result.summary
    return [f"warm: {done}, {keys} keys in Redis after it"], jobs


def hit_rate_line(step: Step) -> str | None:
    """`watch_hit_rate: 1.0s 48%, 2.0s 71%: hit rate 71% reached 60% after 2.0s`."""
    if step.name is not StepName.WATCH_HIT_RATE or step.status not in DONE:
        return None
    if step.result is None:
        return f"watch_hit_rate {step.status}: {step.detail or 'no detail'}"
    curve = [
        f"{at} {rate:.0%}" if isinstance(rate, float) else f"{at} no reads"
        for at, rate in step.result.after.items()
        if at.endswith("s") and at[:-1].replace(".", "", 1).isdigit()
    ]
    return f"watch_hit_rate: {', '.join(curve) or 'no samples'}: {step.result.summary}"


class RecoveryNotes:
    """Each recovery step of the plan described once, when it has run."""

    def __init__(self, cluster: SandboxCluster) -> None:
        self.cluster = cluster
        self.told: set[int] = set()  # plan positions already described

    def new_lines(self, plan: list[Step]) -> list[str]:
        """Blocking (a Job's log is read from the sandbox's API): call it from a thread."""
        lines: list[str] = []
        for position, step in enumerate(plan):
            if position in self.told:
                continue
            warm, jobs = warm_lines(step)
            line = hit_rate_line(step)
            if not warm and line is None:
                continue
            self.told.add(position)
            lines += warm
            for job in jobs:
                command = f"{kubectl()} logs job/{job} -n {self.cluster.names.namespace}"
                lines += [f"  $ {command}", f"  {self.job_log(job) or '(no output)'}"]
            lines += [line] if line is not None else []
        return lines

    def job_log(self, job: str) -> str | None:
        """The last line of the Job's pod's log, as `kubectl logs job/NAME` shows it."""
        namespace = self.cluster.names.namespace
        try:
            with self.cluster.api_client() as api:
                core = client.CoreV1Api(api)
                pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}")
                if not pods.items or pods.items[0].metadata is None:
                    return None
                text = core.read_namespaced_pod_log(str(pods.items[0].metadata.name), namespace)
        except client.ApiException as err:
            return f"(not readable: {err.status} {err.reason})"
        found = [line for line in str(text).splitlines() if line.strip()]
        return found[-1] if found else None
