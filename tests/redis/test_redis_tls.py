"""A target behind TLS with client certificates and an ACL user: a real redis-server started
with --tls-port, --tls-auth-clients yes and the user of deploy/redis/runbook.acl (only the
commands the runbook uses). An out-of-memory incident runs every step through it; without
the client certificate the worker's own TLS is the finding, and nothing is changed. Flush and
warm run through it too, the warmer writing as the target's user."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.diagnosis import Scenario
from contracts.incident import Mode
from contracts.steps import StepName
from sandbox import faults
from sandbox.kube.tls import ServingCerts, make_certs
from sandbox.processes import RedisProcess, free_port
from tests.conftest import RedisFactory
from tests.harness import dry_run, running_worker, settings_for, start, target_route

ACL = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "runbook.acl"
PASSWORD = "s3cret-for-the-runbook"


def acl_user() -> str:
    """The shipped rule line, with this test's password."""
    (line,) = [x for x in ACL.read_text().splitlines() if x.startswith("user ")]
    return line.removeprefix("user ").replace(">CHANGE-ME", f">{PASSWORD}")


def tls_redis(
    redis_server: RedisFactory, certs: ServingCerts, extra: str = ""
) -> tuple[RedisProcess, int]:
    """Its TLS port demands a client certificate signed by the CA; the plain port is the
    test's own way in, as the default user."""
    port = free_port()
    server = redis_server(**{
        "tls-port": str(port), "tls-cert-file": str(certs.cert_file),
        "tls-key-file": str(certs.key_file), "tls-ca-cert-file": str(certs.ca_file),
        "tls-auth-clients": "yes", "maxmemory": "4mb", "maxmemory-policy": "noeviction",
        "user": acl_user() + extra,
    })  # fmt: skip
    return server, port


def full_target(
    redis_server: RedisFactory, certs: ServingCerts, monkeypatch: pytest.MonkeyPatch,
    extra: str = "",
) -> tuple[RedisProcess, str]:  # fmt: skip
    """A TLS Redis filled until it refuses writes, its rediss:// URL, the user's password."""
    server, port = tls_redis(redis_server, certs, extra)
    faults.fill_memory(server.client())
    monkeypatch.setenv("TLS_TARGET_PASSWORD", PASSWORD)
    return server, f"rediss://127.0.0.1:{port}/0"


@pytest.fixture
def certs(tmp_path: Path) -> ServingCerts:
    return make_certs(tmp_path / "tls")  # the server's certificate serves as the client's too


async def test_an_oom_incident_runs_every_step_over_mtls_as_the_acl_user(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory, certs: ServingCerts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    server, url = full_target(redis_server, certs, monkeypatch)
    tls = {"ca_file": str(certs.ca_file), "cert_file": str(certs.cert_file),
           "key_file": str(certs.key_file)}  # fmt: skip
    route = target_route(url, username="redis-runbook", password_env="TLS_TARGET_PASSWORD",
                         tls=tls)  # fmt: skip
    settings = settings_for(targets=[route], approvals={"required_for": []})
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, dry_run(url, Mode.AUTO))
        report = await handle.result()

    assert report.scenario is Scenario.OUT_OF_MEMORY, report.reasons
    ran = {s.name: s for s in report.steps if s.status != "skipped"}
    assert all(s.status == "succeeded" for s in ran.values()), {
        s.name.value: s.detail for s in ran.values() if s.status != "succeeded"
    }
    assert StepName.SET_EVICTION_POLICY in ran  # CONFIG SET, as the ACL user, over mTLS
    assert report.outcome == "resolved", report.escalations
    assert "NOPERM" not in report.review
    log = (server.data_dir / "redis.log").read_text()
    assert "NOPERM" not in log


async def test_flush_and_warm_run_over_mtls_and_the_warmer_writes_as_its_user(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory, certs: ServingCerts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Full of keys without a TTL under volatile-lru: only a flush helps, then the warm step.
    A callable warmer writes with the target's user, so that user also needs +set."""
    server, url = full_target(redis_server, certs, monkeypatch, extra=" +set")
    server.client().config_set("maxmemory-policy", "volatile-lru")  # evicting, nothing to evict
    tls = {"ca_file": str(certs.ca_file), "cert_file": str(certs.cert_file),
           "key_file": str(certs.key_file)}  # fmt: skip
    catalog = {
        "name": "catalog",
        "kind": "callable",
        "target": "sandbox.cache_traffic:warm_catalog",
    }
    route = target_route(url, username="redis-runbook", password_env="TLS_TARGET_PASSWORD",
                         tls=tls, warmers=[catalog])  # fmt: skip
    settings = settings_for(targets=[route], approvals={"required_for": []})
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, dry_run(url, Mode.AUTO))
        report = await handle.result()

    done = {s.name: s.status for s in report.steps}
    assert done[StepName.FLUSH] == "succeeded" and done[StepName.WARM] == "succeeded", done
    warm = next(s for s in report.steps if s.name is StepName.WARM)
    assert warm.result is not None and warm.result.after["catalog/critical"] == 50
    assert server.client().get("catalog:item:0") == "item 0 from the database"


async def test_without_its_client_certificate_the_worker_changes_nothing(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory, certs: ServingCerts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    server, url = full_target(redis_server, certs, monkeypatch)
    route = target_route(url, username="redis-runbook", password_env="TLS_TARGET_PASSWORD",
                         tls={"ca_file": str(certs.ca_file)})  # fmt: skip
    settings = settings_for(targets=[route], approvals={"required_for": []})
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, dry_run(url, Mode.AUTO))
        report = await handle.result()

    assert not report.diagnosis.reachable
    findings = [(f.code, f.message) for f in report.diagnosis.findings]
    assert report.diagnosis.has("tls_error"), findings
    assert "wants a client certificate" in findings[0][1] and "tls.cert_file" in findings[0][1]
    changed = [s.name.value for s in report.steps if s.status == "succeeded"
               and s.name not in (StepName.DIAGNOSE, StepName.PING)]  # fmt: skip
    assert changed == []
    assert server.client().config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"


def test_tls_on_a_plain_url_or_a_half_pair_is_refused() -> None:
    with pytest.raises(ValueError, match="not rediss://"):
        settings_for(targets=[target_route("redis://127.0.0.1:6379/0", tls={"ca_file": "/x"})])
    with pytest.raises(ValueError, match="cert_file and key_file go together"):
        settings_for(targets=[target_route("rediss://127.0.0.1:6379/0",
                                           tls={"cert_file": "/x"})])  # fmt: skip
