"""Worker processes of `sipbridge serve --workers N`: started, watched, restarted, stopped.

Worker 0 is the process the operator started; it runs workers 1..N-1 as child processes of the
same program (`serve --worker-index i`, same settings file and environment). Each binds the HTTP
port with SO_REUSEPORT, so the kernel spreads connections over them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_FIRST_RESTART_DELAY, _LONGEST_RESTART_DELAY = 1.0, 30.0
_STOP_GRACE = 10.0
# A restarted worker that has kept running this long is counted as recovered (`on_settled`).
SETTLE_AFTER = 60.0
_PR_SET_PDEATHSIG = 1  # prctl(2)


def worker_argv(index: int, config_file: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "sipbridge", "serve", "--worker-index", str(index)]
    if config_file is not None:
        argv += ["--config", str(config_file)]
    return argv


def die_with_parent() -> None:
    """A worker must not outlive worker 0 (prctl PR_SET_PDEATHSIG; Linux only, else no-op)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


ExitCallback = Callable[[int, int, int | None], None]  # (index, pid, exit code)


def _ignore_exit(index: int, pid: int, code: int | None) -> None:
    pass


def _ignore_settled(index: int) -> None:
    pass


class WorkerPool:
    """Workers 1..count-1; one that exits unasked is started again after a growing pause.

    `on_unexpected_exit` hears of each such exit (the service raises an alarm), `on_settled`
    of a restarted worker that has then run for `settle_after` seconds (the alarm clears),
    `on_process_end(pid)` of every worker process that ended, asked or not (its metrics)."""

    def __init__(
        self,
        count: int,
        *,
        config_file: Path | None,
        on_unexpected_exit: ExitCallback = _ignore_exit,
        on_settled: Callable[[int], None] = _ignore_settled,
        settle_after: float = SETTLE_AFTER,
        on_process_end: Callable[[int], None] = _ignore_settled,
    ) -> None:
        self._count = count
        self._on_process_end = on_process_end
        self._config_file = config_file
        self._on_exit = on_unexpected_exit
        self._on_settled = on_settled
        self._settle_after = settle_after
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        for index in range(1, self._count):
            self._watchers.append(asyncio.create_task(self._keep_running(index)))

    async def _keep_running(self, index: int) -> None:
        delay = _FIRST_RESTART_DELAY
        restarted = False
        while not self._stopping:
            process = await asyncio.create_subprocess_exec(
                *worker_argv(index, self._config_file),
                # The count may have come from --workers: the workers must know it too.
                env={**os.environ, "SIPBRIDGE_WORKERS": str(self._count)},
            )
            self._processes[index] = process
            log.info("worker %d started (pid %d)", index, process.pid)
            if restarted:
                try:
                    await asyncio.wait_for(asyncio.shield(process.wait()), self._settle_after)
                except TimeoutError:
                    restarted = False
                    self._on_settled(index)
            code = await process.wait()
            self._on_process_end(process.pid)
            if self._stopping:
                return
            restarted = True
            self._on_exit(index, process.pid, code)
            log.error("worker %d (pid %d) exited with %s; restarting in %.0f s",
                      index, process.pid, code, delay)  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LONGEST_RESTART_DELAY)

    async def stop(self) -> None:
        """SIGTERM every worker, wait for them (SIGKILL after a grace period)."""
        self._stopping = True
        for process in self._processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        for process in self._processes.values():
            try:
                await asyncio.wait_for(process.wait(), _STOP_GRACE)
            except TimeoutError:
                log.error("worker pid %d did not stop in %.0f s: killing it", process.pid,
                          _STOP_GRACE)  # fmt: skip
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for watcher in self._watchers:
            watcher.cancel()
        for watcher in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
