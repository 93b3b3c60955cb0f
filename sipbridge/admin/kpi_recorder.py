"""Each worker's KPI sampler: cumulative counters (the command observer's, the listener's, the
feed's, the relay's) turned into per-interval values, off the command path.

Every second it samples its probes; every `flush_every` seconds, at each interval's end and at
shutdown it writes its values of the current interval (`tracker/kpi_log.py`). A worker that
restarts inside an interval carries on from the values it had written, so a restart (even a
kill -9: at most the last `flush_every` seconds) loses no finished interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from sipbridge.admin import kpi
from sipbridge.errors import SipBridgeError
from sipbridge.tracker.kpi_log import KpiInterval, KpiLog

log = logging.getLogger(__name__)

# A probe returns values by KPI name: cumulative counters, or gauges (the value now).
Probe = Callable[[], Mapping[str, float]]
# Told, every sample, how much each counter grew since the last one, and the gauges now.
SampleListener = Callable[[Mapping[str, float], Mapping[str, float]], None]


class KpiRecorder:
    def __init__(
        self,
        kpi_log: KpiLog,
        *,
        worker: int,
        length: float,
        keep: int,
        counters: Sequence[Probe],
        gauges: Sequence[Probe] = (),
        listeners: Sequence[SampleListener] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._log = kpi_log
        self.worker = worker
        self.length = length
        self._keep = keep
        self._counters = counters
        self._gauges = gauges
        self._listeners = listeners
        self._clock = clock
        self._baseline: dict[str, float] = {}  # cumulative counters when the interval opened
        self._carried: dict[str, float] = {}  # written by this worker before a restart
        self._last: dict[str, float] = {}  # cumulative counters at the last sample
        self._gauge_values: dict[str, float] = {}
        self._interval: KpiInterval | None = None

    @property
    def interval(self) -> KpiInterval:
        if self._interval is None:
            raise RuntimeError("KpiRecorder.open() was not called")
        return self._interval

    def _cumulative(self) -> dict[str, float]:
        merged: dict[str, float] = {}
        for probe in self._counters:
            merged.update(probe())
        return merged

    def open(self) -> None:
        """The interval under way now; this worker's earlier values in it carried on."""
        start, end = kpi.interval_bounds(self._clock(), self.length)
        self._interval = self._log.open_interval(start, end)
        stored = self._log.worker_values(self._interval.id, self.worker)
        self._carried = {n: v for n, v in stored.items() if not kpi.is_gauge(n)}
        self._baseline = self._cumulative()
        self._last = dict(self._baseline)
        self._gauge_values = {}
        self._log.prune(self._keep + 1)

    def values(self) -> dict[str, float]:
        """This worker's values in the current interval, as they are now."""
        now = self._cumulative()
        values = dict(self._carried)
        for name_, value in now.items():
            delta = value - self._baseline.get(name_, 0.0)
            if delta:
                values[name_] = values.get(name_, 0.0) + delta
        values.update(self._gauge_values)
        return values

    def sample(self) -> None:
        """Gauges now, counter growth to the listeners, and the interval's end if it is past."""
        gauges: dict[str, float] = {}
        for probe in self._gauges:
            gauges.update(probe())
        for gauge, peak in kpi.PEAKS.items():
            if gauge in gauges:
                gauges[peak] = max(gauges[gauge], self._gauge_values.get(peak, 0.0))
        self._gauge_values = gauges
        if self._listeners:
            now = self._cumulative()
            grown = {n: v - self._last.get(n, 0.0) for n, v in now.items()}
            self._last = now
            for listener in self._listeners:
                try:
                    listener({n: d for n, d in grown.items() if d}, gauges)
                except Exception:
                    log.exception("a KPI sample listener failed")
        if self._clock() >= self.interval.end:
            self.flush()  # the finished interval's last values (at most one sample late)
            self.open()

    def flush(self) -> None:
        self._log.write(self.interval.id, self.worker, self.values())

    async def run(self, *, sample_every: float = 1.0, flush_every: float = 5.0) -> None:
        """Sample and flush until cancelled, then flush once more; store errors are logged
        and retried at the next flush."""
        since_flush = 0.0
        every = min(sample_every, self.length / 2)
        try:
            while True:
                await asyncio.sleep(every)
                since_flush += every
                try:
                    self.sample()
                    if since_flush >= flush_every:
                        since_flush = 0.0
                        self.flush()
                except SipBridgeError as exc:
                    log.warning("KPIs not written: %s", exc.detail)
        finally:
            try:
                self.flush()
            except SipBridgeError as exc:
                log.warning("KPIs not written at shutdown: %s", exc.detail)
