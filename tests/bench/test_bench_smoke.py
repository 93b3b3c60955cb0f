"""The benchmark's smoke run (bench/run --quick): it must keep working, whatever its figures.

No performance assertions here (docs/performance.md holds the figures): only that every row is
there and that no reply was lost, crossed or failed.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("wrk", "sipp", "kamailio")),
    reason="wrk, sipp and kamailio are needed (scripts/dev installs them)",
)
def test_quick_bench_prints_every_row_with_no_errors(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [str(ROOT / "bench" / "run"), "--quick", "--duration", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    rows = {(row["system"], row["conns"]): row for row in results["relay"]}
    expected = {
        *(
            (system, conns)
            for system in ("sipbridge", "kamailio", "bare-pjsua2")
            for conns in (1, 50, 200)
        ),
        ("sipp-uac", 50),
        ("sipp-uac", 200),
    }
    assert set(rows) == expected
    for key, row in rows.items():
        assert row["errors"] == 0 and row["crossed"] == 0, key
        assert row["commands"] > 0, key
    for system in ("sipbridge", "kamailio", "bare-pjsua2", "sipp-uac"):
        assert system in done.stdout
    tracker = results["tracker"]
    assert tracker["served_after_restart"] == 200
    # HTTP feed: phones p0..pN-1 and N calls; REGISTERs refresh p1..pN/5 (sipp counts from 1).
    assert tracker["phones_and_calls_after_restart"] == 2 * tracker["items"]
    assert tracker["registers_ok"] == tracker["registers"]
