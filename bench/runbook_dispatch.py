"""Step dispatch overhead of the runbook engine: what the engine adds per step on top of the step's own work.

Runs of N steps go through the real Engine with a real SQLite store (WAL, the group-commit writer running,
every step journaled as running, committed, then journaled with its outcome and committed again), and are
compared with the same work done bare in asyncio:

* `sleep` steps with the engine's sleep made a plain `asyncio.sleep(0)`: the whole cost is dispatch
  (render-once plan, journal rows, two durable commits, events); baseline: N x `await asyncio.sleep(0)`.
* `exec` steps running `true`; baseline: N x `asyncio.create_subprocess_exec("true")` and wait.

Run: `python -m bench.runbook_dispatch [--steps 50] [--runs 5] [--synchronous normal|full]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from daemon.clock import SystemClock
from daemon.metrics.counters import CounterStore
from daemon.runbook.check import load_runbook
from daemon.runbook.config import RunbooksConfig
from daemon.runbook.engine import Engine
from daemon.runbook.library import RunbookLibrary
from daemon.runbook.model import Run, RunEvent, RunMode
from daemon.storage.database import Database
from daemon.storage.writer import GroupCommitWriter
from daemon.tasks import TaskRegistry


def runbook_text(name: str, action: str, steps: int) -> str:
    body = {"sleep": "sleep: {duration: 1s}", "exec": 'exec: {argv: ["true"]}'}[action]
    lines = [f"name: {name}", "steps:"]
    lines += [f"  - name: s{i}\n    {body}" for i in range(steps)]
    return "\n".join(lines) + "\n"


async def _no_wait(_: float) -> None:
    await asyncio.sleep(0)


async def engine_runs(folder: Path, action: str, steps: int, runs: int, synchronous: str) -> list[float]:
    path = folder / f"{action}.yaml"
    path.write_text(runbook_text(f"bench-{action}", action, steps))
    db = Database(folder / f"{action}.db", synchronous=synchronous)
    db.open()
    writer = GroupCommitWriter(db, flush_interval=1.0)
    tasks = TaskRegistry()
    done: dict[int, asyncio.Event] = {}

    def on_event(event: RunEvent) -> None:
        if event.run.status.terminal and event.run.id in done:
            done[event.run.id].set()

    async with aiohttp.ClientSession() as session:
        engine = Engine(
            writer=writer,
            library=RunbookLibrary.of([load_runbook(path)]),
            clock=SystemClock(),
            tasks=tasks,
            http=session,
            counters=CounterStore(writer),
            config=RunbooksConfig(),
            sleep=_no_wait,
        )
        engine.subscribe(on_event)
        writer_task = asyncio.create_task(writer.run())
        timings = []
        try:
            for _ in range(runs):
                started = time.perf_counter()
                run: Run = engine.start(
                    f"bench-{action}", {}, mode=RunMode.LIVE, trigger="manual", requested_by="bench"
                )
                done[run.id] = asyncio.Event()
                await done[run.id].wait()
                timings.append(time.perf_counter() - started)
                if run.status.value != "succeeded":
                    raise RuntimeError(f"bench run {run.id} ended {run.status.value}: {run.reason}")
        finally:
            await engine.close(5.0)
            await tasks.close()
            writer.close()
            await writer_task
            writer.shutdown_thread()
            db.close()
    return timings


async def bare_runs(action: str, steps: int, runs: int) -> list[float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(steps):
            if action == "sleep":
                await asyncio.sleep(0)
            else:
                proc = await asyncio.create_subprocess_exec("true")
                await proc.wait()
        timings.append(time.perf_counter() - started)
    return timings


def _report(action: str, steps: int, engine: list[float], bare: list[float]) -> None:
    e, b = statistics.median(engine) / steps, statistics.median(bare) / steps
    print(
        f"{action:5}  engine {e * 1e3:8.3f} ms/step   bare asyncio {b * 1e3:8.3f} ms/step   "
        f"overhead {(e - b) * 1e3:8.3f} ms/step   ratio {e / b:8.1f}x"
    )


async def main_async(steps: int, runs: int, synchronous: str) -> None:
    print(f"{runs} runs of {steps} steps each, SQLite synchronous={synchronous}; medians per step")
    with tempfile.TemporaryDirectory(prefix="itsmd-bench-") as tmp:
        for action in ("sleep", "exec"):
            engine = await engine_runs(Path(tmp), action, steps, runs, synchronous)
            bare = await bare_runs(action, steps, runs)
            _report(action, steps, engine, bare)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.runbook_dispatch", description=__doc__)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--synchronous", choices=["normal", "full"], default="normal")
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.steps, args.runs, args.synchronous))


if __name__ == "__main__":
    main()
