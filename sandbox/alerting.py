"""The real alerting chain on this machine: redis_exporter -> Prometheus -> Alertmanager -> the
webhook, for tests/deploy/test_alerting_chain.py and `make demo`.

The deploy/ files are used as shipped, changed only where a local run must: ports and paths,
the intervals (scrape/evaluate 1s, group_wait/group_interval 1s) and every rule's `for:` (0s),
so an alert reaches the webhook seconds after Redis fails instead of minutes. Every process
gets a free 127.0.0.1 port and a session of its own, and is stopped by its PID and process
group: nothing outlives the run.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from sandbox.processes import Daemon, free_port, wait_for_port

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
# Debian's names first, then the upstream ones (Homebrew, release tarballs).
CANDIDATES = {
    "exporter": ("prometheus-redis-exporter", "redis_exporter"),
    "prometheus": ("prometheus",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
}
INSTALL_HINT = (
    "apt-get install -y prometheus prometheus-alertmanager prometheus-redis-exporter "
    "(Debian/Ubuntu; scripts/ensure-system-deps.sh does it), "
    "brew install prometheus alertmanager redis_exporter (macOS)"
)


def find_binaries() -> dict[str, str]:
    """The chain's executables that are installed, by role (exporter, prometheus, alertmanager)."""
    found = {}
    for role, names in CANDIDATES.items():
        for name in names:
            path = shutil.which(name) or (
                f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
            )
            if path:
                found[role] = path
                break
    return found


def missing_binaries() -> list[str]:
    """Roles with no executable: empty when the whole chain can run here."""
    found = find_binaries()
    return [CANDIDATES[role][0] for role in CANDIDATES if role not in found]


def fast_rules(source: Path, dest: Path) -> Path:
    """The shipped rules with every `for:` at 0s: fire on the first evaluation."""
    dest.write_text(re.sub(r"(?m)^(\s+for:\s*)\S+", r"\g<1>0s", source.read_text()))
    return dest


@dataclass(frozen=True)
class ChainPorts:
    exporter: int
    prometheus: int
    alertmanager: int
    webhook: int
    worker: int | None = None  # the worker's metrics; None: a chain that does not scrape it

    @classmethod
    def free(cls, webhook: int, worker: int | None = None) -> ChainPorts:
        return cls(exporter=free_port(), prometheus=free_port(), alertmanager=free_port(),
                   webhook=webhook, worker=worker)  # fmt: skip


def prometheus_config(root: Path, ports: ChainPorts) -> Path:
    """deploy/prometheus/prometheus.yml with 1s intervals, local rules path and ports."""
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="900ms", evaluation_interval="1s")
    rules = fast_rules(DEPLOY / "prometheus" / "rules" / "redis.rules.yml", root / "redis.yml")
    config["rule_files"] = [str(rules)]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [
        f"127.0.0.1:{ports.alertmanager}"
    ]
    jobs = {"redis": ports.exporter, "redis-runbook-webhook": ports.webhook}
    if ports.worker is not None:
        jobs["redis-runbook-worker"] = ports.worker
    config["scrape_configs"] = [j for j in config["scrape_configs"] if j["job_name"] in jobs]
    for job in config["scrape_configs"]:
        job["static_configs"][0]["targets"] = [f"127.0.0.1:{jobs[job['job_name']]}"]
    path = root / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def alertmanager_config(root: Path, webhook_port: int, token_file: Path) -> Path:
    """deploy/alertmanager/alertmanager.yml pointed at this webhook and token, timings at 1s."""
    config: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    )
    (receiver,) = [r for r in config["receivers"] if r["name"] == "redis-runbook"]
    hook = receiver["webhook_configs"][0]
    hook["url"] = f"http://127.0.0.1:{webhook_port}/alerts/alertmanager"
    hook["http_config"]["authorization"]["credentials_file"] = str(token_file.resolve())
    for route in [config["route"], *config["route"]["routes"]]:
        route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    path = root / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


class AlertingChain:
    """redis_exporter watching `redis_port`, Prometheus with the shipped rules, Alertmanager
    delivering to the webhook on `webhook_port` with the bearer token in `token_file`.

    `with AlertingChain(root, redis_port, webhook_port, token_file) as chain:`; `chain.pids`
    names every process it runs, `chain.tails()` their last log lines."""

    def __init__(
        self,
        root: Path,
        redis_port: int,
        webhook_port: int,
        token_file: Path,
        worker_port: int | None = None,
    ) -> None:
        """`worker_port`: the worker's metrics endpoint, scraped as job redis-runbook-worker."""
        self.root = root.resolve()
        self.redis_port = redis_port
        self.token_file = token_file
        self.ports = ChainPorts.free(webhook_port, worker_port)
        self.daemons: list[Daemon] = []

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.alertmanager}"

    @property
    def pids(self) -> dict[str, int]:
        return {d.name: d.pid for d in self.daemons}

    def __enter__(self) -> AlertingChain:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> AlertingChain:
        binaries = find_binaries()
        if missing := missing_binaries():
            raise FileNotFoundError(f"not installed: {', '.join(missing)}. Fix: {INSTALL_HINT}")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            for name, argv, port in self._commands(binaries):
                self.daemons.append(Daemon(name, argv, self.root / f"{name}.log"))
                wait_for_port(port, timeout=timeout, proc=self.daemons[-1].proc)
        except BaseException:
            self.stop()
            raise
        return self

    def _commands(self, binaries: dict[str, str]) -> list[tuple[str, list[str], int]]:
        """Alertmanager first, so Prometheus finds it; the exporter before Prometheus scrapes."""
        root, ports = self.root, self.ports
        (root / "am-data").mkdir(exist_ok=True)
        alertmanager = [
            binaries["alertmanager"],
            f"--config.file={alertmanager_config(root, ports.webhook, self.token_file)}",
            f"--storage.path={root / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{ports.alertmanager}",
            "--cluster.listen-address=",  # no gossip port on 0.0.0.0
        ]
        exporter = [
            binaries["exporter"],
            f"-web.listen-address=127.0.0.1:{ports.exporter}",
            f"-redis.addr=redis://127.0.0.1:{self.redis_port}",
        ]
        prometheus = [
            binaries["prometheus"],
            f"--config.file={prometheus_config(root, ports)}",
            f"--storage.tsdb.path={root / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{ports.prometheus}",
            "--rules.alert.resend-delay=1s",
        ]
        return [
            ("alertmanager", alertmanager, ports.alertmanager),
            ("exporter", exporter, ports.exporter),
            ("prometheus", prometheus, ports.prometheus),
        ]

    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()

    def tails(self) -> str:
        return "\n".join(d.tail() for d in self.daemons)

    def wait_scraped(self, timeout: float = 60.0) -> None:
        """Until Prometheus has seen Redis up: only then does a failure turn redis_up to 0 (an
        absent series fires nothing)."""
        deadline = time.monotonic() + timeout
        query = f"{self.prometheus_url}/api/v1/query"
        with httpx.Client(timeout=2) as http:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    result = http.get(query, params={"query": "redis_up"}).json()["data"]["result"]
                    if [r["value"][1] for r in result] == ["1"]:
                        return
                time.sleep(0.25)
        raise TimeoutError(
            f"Prometheus did not scrape redis_up=1 within {timeout}s:\n{self.tails()}"
        )
