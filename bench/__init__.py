"""sipbridge benchmarks: relay throughput and latency against Kamailio, bare pjsua2 and sipp.

Run `bench/run` (see docs/performance.md); nothing here is imported by sipbridge.
"""
