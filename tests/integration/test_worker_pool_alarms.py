"""WorkerPool tells who raises the restart alarm of a worker that exited unasked, and of the
restarted worker once it has kept running (real child processes, a stand-in program)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sipbridge import workers
from sipbridge.workers import WorkerPool


async def test_an_unasked_exit_is_reported_then_the_restart_settles(tmp_path, monkeypatch):
    marker = tmp_path / "ran-once"
    # First run: exit 3. Every later run: keep running (a worker that recovered).
    program = (
        "import pathlib, sys, time\n"
        f"p = pathlib.Path({str(marker)!r})\n"
        "if not p.exists():\n    p.touch(); sys.exit(3)\n"
        "time.sleep(30)\n"
    )

    def stand_in(index: int, config_file: Path | None) -> list[str]:
        return [sys.executable, "-c", program]

    monkeypatch.setattr(workers, "worker_argv", stand_in)
    events: list[tuple[object, ...]] = []
    settled = asyncio.Event()

    def on_settled(index: int) -> None:
        events.append(("settled", index))
        settled.set()

    pool = WorkerPool(
        2,
        config_file=None,
        on_unexpected_exit=lambda index, pid, code: events.append(("exited", index, code)),
        on_settled=on_settled,
        settle_after=0.5,
    )
    await pool.start()
    try:
        await asyncio.wait_for(settled.wait(), 10)
    finally:
        await pool.stop()
    assert events == [("exited", 1, 3), ("settled", 1)]
