"""An approval given the way an on-call engineer gives it from the Temporal Web UI: open the
incident's page, More Actions, Send a Signal, pick `approve`, type the JSON, Submit. The README
promises this works; only a real browser on a real UI proves the signal list, the dialog and
the payload encoding still fit the workflow.

Screenshots of the pending incident, the filled dialog and the finished incident are kept in
tests/artifacts/ui-approval-*.png.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from contracts.steps import StepName
from sandbox.processes import binary, free_port, stop_process, wait_for_port
from tests.conftest import RedisFactory
from tests.harness import (
    auto,
    command_calls,
    full_evicting_redis,
    running_worker,
    settings_for,
    start,
    wait_for_pending,
)
from tests.ui_browser import UiDriver, browser_page
from worker.telemetry import tracing_interceptor

VENV_BIN = [Path(sys.executable).parent]
APPROVAL = {"step": "flush", "approver": "ui-approver", "comment": "from the UI"}


@dataclass(frozen=True)
class TemporalWithUi:
    address: str
    ui_url: str

    def workflow_page(self, workflow_id: str, run_id: str) -> str:
        path = f"{quote(workflow_id, safe='')}/{run_id}/history"
        return f"{self.ui_url}/namespaces/default/workflows/{path}"


@pytest.fixture
def temporal_with_ui(tmp_path: Path) -> Iterator[TemporalWithUi]:
    """A dev server of its own: the session's `temporal_env` runs headless, and this test needs
    the Web UI that the same binary serves."""
    port, ui_port = free_port(), free_port()
    args = [binary("temporal", VENV_BIN), "server", "start-dev", "--ip", "127.0.0.1"]
    args += ["--port", str(port), "--ui-port", str(ui_port), "--log-level", "error"]
    with (tmp_path / "temporal.log").open("wb") as log:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        try:
            wait_for_port(port, timeout=60, proc=proc)
            wait_for_port(ui_port, timeout=60, proc=proc)
            yield TemporalWithUi(f"127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}")
        finally:
            stop_process(proc)


@pytest.fixture
async def ui_client(temporal_with_ui: TemporalWithUi) -> Client:
    """The frontend listens before it is healthy ("Frontend is not healthy yet"): retry."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        try:
            return await Client.connect(
                temporal_with_ui.address,
                data_converter=pydantic_data_converter,
                interceptors=[tracing_interceptor()],
            )
        except RuntimeError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def send_signal_from_ui(ui: UiDriver, signal: str, payload: dict[str, str]) -> None:
    """More Actions -> Send a Signal -> Signal name -> Data -> Submit, as a person clicks it."""
    page = ui.page
    await ui.click(page.get_by_role("button", name="More Actions"), "'More Actions' button")
    await ui.click(page.get_by_role("menuitem", name="Send a Signal"), "'Send a Signal' item")
    dialog = await ui.find(page.get_by_role("dialog", name="Send a Signal"), "signal dialog")
    await ui.click(dialog.get_by_role("button", name="Select a signal"), "signal name picker")
    # The option's name is the signal's name followed by its description from the workflow.
    option = dialog.get_by_role("option", name=re.compile(rf"^{re.escape(signal)}\b"))
    await ui.click(option, f"'{signal}' in the signal list (from the workflow's definitions)")
    await ui.gone(dialog.get_by_role("listbox"), "the signal list after choosing")
    await ui.find(dialog.get_by_role("button", name=signal, exact=True), f"'{signal}' chosen")
    data = await ui.find(dialog.get_by_role("textbox", name="Data"), "'Data' input")
    await data.fill(json.dumps(payload))
    # The editor reformats its JSON when it loses focus, which moves the Submit button: blur
    # first, so the click lands on Submit and not where it was a moment ago.
    await data.blur()
    typed = await data.inner_text()
    assert json.loads(typed) == payload, f"the Data input holds {typed!r}"
    submit = dialog.get_by_role("button", name="Submit")
    await ui.find(submit.and_(page.locator(":enabled")), "enabled 'Submit' button")
    await ui.gone(dialog.get_by_role("listbox"), "the signal list")
    await ui.shot("dialog")
    await ui.click(submit, "'Submit' button")
    await ui.gone(dialog, "the signal dialog after Submit")
    await ui.find(page.get_by_text("Workflow signaled."), "'Workflow signaled.' notice")


async def test_flush_approved_from_the_web_ui_runs_and_is_recorded(
    temporal_with_ui: TemporalWithUi, ui_client: Client, redis_server: RedisFactory
) -> None:
    server = full_evicting_redis(redis_server)
    client = server.client()
    keys_before = client.dbsize()
    assert keys_before > 1000
    settings = settings_for(server.url)
    async with running_worker(ui_client, settings):
        handle = await start(ui_client, settings, auto(server.url))
        await wait_for_pending(handle, "flush", within=60)
        run_id = (await handle.describe()).run_id
        assert run_id is not None
        assert command_calls(client, "flushdb") == 0

        async with browser_page() as page:
            ui = UiDriver(page, "ui-approval")
            await page.goto(temporal_with_ui.workflow_page(handle.id, run_id))
            await ui.find(page.get_by_role("heading", name=handle.id), "workflow id heading")
            badge = page.get_by_role("main").get_by_role("status")
            await ui.find(badge.filter(has_text="Running"), "'Running' status")
            await ui.shot("pending")

            await send_signal_from_ui(ui, "approve", APPROVAL)
            report = await asyncio.wait_for(handle.result(), timeout=60)

            await page.reload()
            await ui.find(badge.filter(has_text="Completed"), "'Completed' status")
            await ui.shot("after")

    flush = next(s for s in report.steps if s.name is StepName.FLUSH)
    assert flush.status == "succeeded", flush.detail
    assert command_calls(client, "flushdb") == 1
    assert client.dbsize() < keys_before
    assert report.outcome == "resolved", report.escalations
    approvals = [(e.actor, e.message) for e in report.timeline if e.kind == "approval"]
    assert len(approvals) == 1
    assert approvals[0][0] == "ui-approver"
    assert approvals[0][1].endswith("(from the UI)")
    assert [(a.step.value, a.approver) for a in report.approvals] == [("flush", "ui-approver")]

    history = await handle.fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert [s.signal_name for s in signals] == ["approve"]
    assert json.loads(signals[0].input.payloads[0].data) == APPROVAL
    assert signals[0].identity != ui_client.identity  # sent by the Web UI, not by this test
