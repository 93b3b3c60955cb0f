"""The floor of our SIP path: sipbridge's own pjsua2 sender, driven with no HTTP in front.

`python -m bench.bare_pjsua2 --sip-port P --concurrency C --duration D` keeps C NOTIFYs in flight
to the bench phone (the same request sipbridge composes for `hold`) for D seconds after a short
warm-up, then prints one `BENCH {...}` line: commands, errors, crossed replies, latency
percentiles, CPU seconds of this process over the window and its peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import time

from bench.procs import HOST, peak_rss_mb, reset_peak
from bench.stats import percentile_ms
from sipbridge import catalog
from sipbridge.sip import action_uri
from sipbridge.sip._pjsua2 import PjsuaSender


async def _run(args: argparse.Namespace, sender: PjsuaSender) -> dict[str, float]:
    sender.start()  # in the running loop: the loop drives pjsip, as `sipbridge serve` does
    counter = itertools.count()
    latencies: list[float] = []
    counts = {"ok": 0, "failed": 0, "crossed": 0}
    measuring = False

    async def worker(stop_at: float) -> None:
        while time.perf_counter() < stop_at:
            index = next(counter) % args.calls
            call_id = f"bench-{index}@bench"
            command = catalog.build(catalog.lookup("holdCall"), {"Ref": call_id})
            request = action_uri.compose(
                contact=f"sip:p{index % args.phones}@{HOST}:{args.sip_port}",
                transport="udp",
                body=catalog.encode(command),
                local_contact=sender.local_contact,
            )
            started = time.perf_counter()
            answer = await sender.send(request)
            if not measuring:
                continue
            latencies.append(time.perf_counter() - started)
            if answer.status != 200:
                counts["failed"] += 1
            elif answer.reason != call_id:
                counts["crossed"] += 1
            else:
                counts["ok"] += 1

    try:
        await asyncio.gather(*(worker(time.perf_counter() + 1.0) for _ in range(args.concurrency)))
        reset_peak([os.getpid()])
        measuring = True
        cpu_before = _cpu()
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + args.duration) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
        cpu = _cpu() - cpu_before
    finally:
        sender.stop()
    done = len(latencies)
    return {
        "commands": done,
        "elapsed": elapsed,
        **counts,
        "p50_ms": percentile_ms(latencies, 50),
        "p99_ms": percentile_ms(latencies, 99),
        "p999_ms": percentile_ms(latencies, 99.9),
        "cpu_s": cpu,
        "peak_rss_mb": peak_rss_mb([os.getpid()]),
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sip-port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--phones", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    sender = PjsuaSender(host=HOST, port=0, transaction_timeout=4.0)
    print("BENCH " + json.dumps(asyncio.run(_run(args, sender))), flush=True)


if __name__ == "__main__":
    main()
