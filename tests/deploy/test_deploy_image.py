"""The Dockerfile's structure, checked without a Docker engine (none on these machines): a
multi-stage build from a pinned slim Python, dependencies from deploy/requirements.lock (which
must match what the tests ran), no build tools in the final stage, a non-root USER, one
entrypoint that is the package's `runbook` script, a HEALTHCHECK whose script really checks a
worker and a webhook, and a build context (.dockerignore) holding every file it copies."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from temporalio.testing import WorkflowEnvironment

from sandbox.processes import free_port
from tests.harness import settings_for
from tests.intake.test_webhook_helpers import TOKEN, address, serve
from worker.webhook import create_app

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "deploy" / "requirements.lock"


@dataclass
class Instruction:
    name: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            name, _, args = line.strip().partition(" ")
            found.append(Instruction(name.upper(), " ".join(args.split())))
    return found


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    split: list[list[Instruction]] = []
    for ins in instructions:
        if ins.name == "FROM":
            split.append([])
        if split:
            split[-1].append(ins)
    return split


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


INSTRUCTIONS = parse(DOCKERFILE.read_text())
BUILD, FINAL = stages(INSTRUCTIONS)


def test_base_image_is_a_pinned_slim_python_matching_the_project() -> None:
    (arg,) = [i for i in INSTRUCTIONS if i.name == "ARG" and i.args.startswith("PYTHON_IMAGE=")]
    image = arg.args.split("=", 1)[1]
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-(\w+)", image)
    assert match, f"{image} is not pinned to a patch version of a slim image"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={match[1]}.{match[2]}"
    assert (int(match[1]), int(match[2])) == sys.version_info[:2]  # the lock comes from this venv
    assert "latest" not in DOCKERFILE.read_text()
    assert [i.args for i in INSTRUCTIONS if i.name == "FROM"] == [
        "${PYTHON_IMAGE} AS build",
        "${PYTHON_IMAGE} AS runtime",
    ]


def test_dependencies_come_from_the_lock_and_the_lock_matches_the_tested_venv() -> None:
    runs = " ".join(i.args for i in BUILD if i.name == "RUN")
    assert "pip install --no-deps -r deploy/requirements.lock" in runs
    assert "pip install --no-deps ." in runs
    pins = dict(
        line.split("==")
        for line in LOCK.read_text().splitlines()
        if line and not line.startswith("#")
    )
    lock = load_module(ROOT / "deploy" / "docker" / "lock_requirements.py")
    assert pins == lock.runtime_closure(), "regenerate: see deploy/docker/lock_requirements.py"
    assert LOCK.read_text() == lock.render(pins)


RUNTIME_PACKAGES = ("contracts", "activities", "workflows", "worker")
SANDBOX_ONLY = ("kmock", "aiohttp", "aiohttp_retry", "jsonpatch", "jsonpointer", "attrs")
# Every runtime module, imported in a fresh interpreter where the sandbox's libraries (and the
# sandbox and demo themselves) cannot be imported: what the image has to run on.
IMPORT_ALL_BLOCKED = """
import importlib, pkgutil, sys
for name in {blocked!r}:
    sys.modules[name] = None
for top in {packages!r}:
    package = importlib.import_module(top)
    for info in pkgutil.walk_packages(package.__path__, top + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
print("imported")
"""


def test_the_image_carries_no_sandbox_library_and_runtime_code_needs_none() -> None:
    pins = {line.split("==")[0] for line in LOCK.read_text().splitlines() if "==" in line}
    assert not pins & {"kmock", "aiohttp", "aiohttp-retry", "jsonpatch", "jsonpointer"}
    copied = {i.args.split()[0] for i in BUILD if i.name == "COPY"}
    assert "sandbox" not in copied and "demo" not in copied
    assert set(RUNTIME_PACKAGES) <= copied
    script = IMPORT_ALL_BLOCKED.format(
        blocked=(*SANDBOX_ONLY, "sandbox", "demo"), packages=RUNTIME_PACKAGES
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "imported"


def test_final_stage_has_no_build_tools_and_runs_as_non_root() -> None:
    final_runs = " ".join(i.args for i in FINAL if i.name == "RUN")
    assert "apt-get install" not in final_runs and "pip install" not in final_runs
    assert "build-essential" in " ".join(i.args for i in BUILD if i.name == "RUN")
    copies = [i.args for i in FINAL if i.name == "COPY"]
    assert "--from=build /opt/runbook /opt/runbook" in copies
    (user,) = [i.args for i in FINAL if i.name == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000  # numeric, so runAsNonRoot can verify it
    assert [i.name for i in FINAL].index("USER") > max(
        n for n, i in enumerate(FINAL) if i.name in ("RUN", "COPY")
    )


def test_one_image_runs_worker_webhook_and_cli() -> None:
    (entry,) = [i.args for i in FINAL if i.name == "ENTRYPOINT"]
    (cmd,) = [i.args for i in FINAL if i.name == "CMD"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry == '["runbook"]' and "runbook" in scripts
    done = subprocess.run(  # the installed console script, as the image's ENTRYPOINT runs it
        [str(Path(sys.executable).parent / "runbook"), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    choices = re.search(r"\{([\w,-]+)\}", done.stdout)
    assert choices, done.stdout
    for command in (cmd.strip('[]"'), "webhook", "start", "status", "approve"):
        assert command in choices[1].split(","), f"runbook has no {command} command"
    (check,) = [i.args for i in FINAL if i.name == "HEALTHCHECK"]
    assert "/usr/local/bin/runbook-healthcheck" in check
    assert "COPY deploy/docker/healthcheck.py /usr/local/bin/runbook-healthcheck" in [
        f"COPY {i.args}" for i in FINAL if i.name == "COPY"
    ]


def test_the_build_context_holds_every_copied_file() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for ins in INSTRUCTIONS:
        if ins.name != "COPY" or ins.args.startswith("--from"):
            continue
        *sources, _dest = shlex.split(ins.args)
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"


async def test_healthcheck_checks_the_webhook_and_the_workers_temporal(
    temporal_env: WorkflowEnvironment,
) -> None:
    check = load_module(ROOT / "deploy" / "docker" / "healthcheck.py").check
    temporal = address(temporal_env)
    assert check(["runbook", "worker"], {"TEMPORAL_ADDRESS": temporal}) is None
    closed = f"127.0.0.1:{free_port()}"
    assert "Temporal at" in check(["runbook", "worker"], {"TEMPORAL_ADDRESS": closed})

    settings = settings_for(webhook_token=TOKEN)
    settings.temporal.address = temporal
    with serve(create_app(settings)) as url:
        port = url.rsplit(":", 1)[1]
        assert check(["runbook", "webhook", "--port", port], {}) is None
    assert check(["runbook", "webhook", "--port", port], {}) is not None
    assert check(["runbook", "status", "x"], {}) is None
