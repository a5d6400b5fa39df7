"""Re-record the replay corpus in tests/histories/ on purpose:

    .venv/bin/python -m tests.record_histories

Run it only when a workflow change is *meant* to be incompatible with in-flight incidents
(and say so in the commit); otherwise the replay test is what catches the accident.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.models import Scenario
from sandbox.processes import binary
from tests.conftest import RedisFactory
from tests.harness import dry_run, redis_in_state, running_worker, settings_for, start

HISTORIES = Path(__file__).parent / "histories"
RECORDED = [Scenario.OUT_OF_MEMORY, Scenario.REDIS_DOWN, Scenario.HEALTHY]


async def record() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal", [Path(sys.executable).parent]),
        data_converter=pydantic_data_converter,
    )
    with tempfile.TemporaryDirectory() as tmp:
        factory = RedisFactory(Path(tmp))
        try:
            async with env:
                settings = settings_for()
                async with running_worker(env.client, settings):
                    for scenario in RECORDED:
                        url, _held = redis_in_state(factory, scenario)
                        handle = await start(env.client, settings, dry_run(url))
                        await handle.result()
                        history = await handle.fetch_history()
                        path = HISTORIES / f"dry_run_{scenario.value}.json"
                        path.write_text(history.to_json())
                        print(f"recorded {path}")
        finally:
            factory.stop_all()


if __name__ == "__main__":
    asyncio.run(record())
