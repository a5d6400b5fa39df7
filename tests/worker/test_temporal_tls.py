"""Temporal behind TLS, as a self-hosted frontend or a cloud namespace is reached: Debian's
nginx terminates TLS in front of the dev server (grpc_pass), one listener demanding a client
certificate signed by the test's CA, one an API key. A real `runbook worker` and the CLI,
configured only by the standard TEMPORAL_* variables, run an incident through each; a client
certificate from another CA, or no API key, fails at start with the settings to check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from sandbox.kube.tls import ServingCerts, make_certs
from sandbox.processes import Daemon, free_port, wait_for_port
from tests.conftest import RedisFactory
from tests.harness import target_route

RUNBOOK = str(Path(sys.executable).parent / "runbook")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
API_KEY = "an-api-key-for-the-runbook"

pytestmark = pytest.mark.skipif(
    not Path(NGINX).exists(), reason="needs nginx (apt-get install nginx)"
)


def nginx_conf(root: Path, certs: ServingCerts, upstream: str, mtls: int, keyed: int) -> Path:
    tls = f"ssl_certificate {certs.cert_file}; ssl_certificate_key {certs.key_file};"
    temp = " ".join(f"{k}_temp_path {root / k};" for k in ("client_body", "proxy", "fastcgi",
                                                            "uwsgi", "scgi"))  # fmt: skip
    conf = root / "nginx.conf"
    conf.write_text(f"""
daemon off; worker_processes 1; pid {root / "nginx.pid"}; error_log {root / "error.log"};
events {{}}
http {{
  access_log off; {temp}
  server {{
    listen 127.0.0.1:{mtls} ssl http2; {tls}
    ssl_client_certificate {certs.ca_file}; ssl_verify_client on;
    location / {{ grpc_pass grpc://{upstream}; }}
  }}
  server {{
    listen 127.0.0.1:{keyed} ssl http2; {tls}
    location / {{
      if ($http_authorization != "Bearer {API_KEY}") {{ return 401; }}
      grpc_pass grpc://{upstream};
    }}
  }}
}}
""")
    return conf


@pytest.fixture
def proxy(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> Iterator[tuple[ServingCerts, int, int]]:
    certs = make_certs(tmp_path / "tls")  # the server's certificate is the client's too
    mtls, keyed = free_port(), free_port()
    upstream = temporal_env.client.service_client.config.target_host
    conf = nginx_conf(tmp_path, certs, upstream, mtls, keyed)
    daemon = Daemon("nginx", [NGINX, "-c", str(conf), "-e", str(tmp_path / "error.log")],
                    tmp_path / "nginx.log")  # fmt: skip
    try:
        wait_for_port(mtls, proc=daemon.proc)
        wait_for_port(keyed, proc=daemon.proc)
        yield certs, mtls, keyed
    finally:
        daemon.stop()


def environment(tmp_path: Path, **temporal: str) -> dict[str, str]:
    drop = {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "RUNBOOK_CONFIG", "TEMPORAL_API_KEY"}
    base = {
        k: v for k, v in os.environ.items() if k not in drop and not k.startswith("TEMPORAL_TLS")
    }
    return {**base, "HOME": str(tmp_path), **temporal}


def config(tmp_path: Path, redis_url: str, queue: str) -> Path:
    path = tmp_path / "runbook.yaml"
    path.write_text(yaml.safe_dump({"temporal": {"task_queue": queue},
                                    "kubernetes": {"enabled": False},
                                    "targets": [target_route(redis_url)]}))  # fmt: skip
    return path


def with_certificate(tmp_path: Path, port: int, client: ServingCerts, ca: Path) -> dict[str, str]:
    """The standard variables for mTLS: this client certificate, that server CA."""
    return environment(
        tmp_path, TEMPORAL_ADDRESS=f"127.0.0.1:{port}",
        TEMPORAL_TLS_CLIENT_CERT_PATH=str(client.cert_file),
        TEMPORAL_TLS_CLIENT_KEY_PATH=str(client.key_file),
        TEMPORAL_TLS_SERVER_CA_CERT_PATH=str(ca),
    )  # fmt: skip


def cli(cfg: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNBOOK, "--config", str(cfg), *args], env=env, capture_output=True,
                          text=True, timeout=90, check=False)  # fmt: skip


def incident_through(tmp_path: Path, redis_url: str, env: dict[str, str]) -> str:
    """A worker and `runbook start --wait` through the proxy: the report's outcome line."""
    tmp_path.mkdir()
    cfg = config(tmp_path, redis_url, f"tls-{os.getpid()}-{len(env)}")
    worker = Daemon("worker", [RUNBOOK, "--config", str(cfg), "worker"], tmp_path / "w.log", env)
    try:
        done = cli(cfg, env, "start", "--redis-url", redis_url, "--namespace",
                   "treebeard-production", "--dry-run", "--wait")  # fmt: skip
    finally:
        worker.stop()
    assert done.returncode == 0, (done.stderr, (tmp_path / "w.log").read_text()[-2000:])
    return done.stdout


def test_an_incident_runs_through_mtls_and_through_an_api_key(
    proxy: tuple[ServingCerts, int, int], redis_server: RedisFactory, tmp_path: Path
) -> None:
    certs, mtls, keyed = proxy
    redis = redis_server()
    with_cert = with_certificate(tmp_path, mtls, certs, certs.ca_file)
    assert "planned" in incident_through(tmp_path / "m", redis.url, with_cert)
    with_key = environment(
        tmp_path, TEMPORAL_ADDRESS=f"127.0.0.1:{keyed}", TEMPORAL_API_KEY=API_KEY,
        TEMPORAL_TLS_SERVER_CA_CERT_PATH=str(certs.ca_file),
    )  # fmt: skip
    assert "planned" in incident_through(tmp_path / "k", redis.url, with_key)


def test_a_wrong_certificate_or_no_api_key_fails_naming_the_settings(
    proxy: tuple[ServingCerts, int, int], tmp_path: Path
) -> None:
    certs, mtls, keyed = proxy
    stranger = make_certs(tmp_path / "other")  # a certificate from another CA
    cfg = config(tmp_path, "redis://127.0.0.1:1/0", "q")
    wrong = with_certificate(tmp_path, mtls, stranger, certs.ca_file)
    refused = cli(cfg, wrong, "list")
    assert refused.returncode == 2 and "TEMPORAL_TLS_CLIENT_CERT_PATH" in refused.stderr, refused
    keyless = environment(tmp_path, TEMPORAL_ADDRESS=f"127.0.0.1:{keyed}",
                          TEMPORAL_TLS_SERVER_CA_CERT_PATH=str(certs.ca_file))  # fmt: skip
    unkeyed = cli(cfg, keyless, "list")
    assert unkeyed.returncode == 2 and "TEMPORAL_API_KEY" in unkeyed.stderr, unkeyed
