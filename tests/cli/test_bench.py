"""`herald bench`: runs the chosen benchmarks end to end and writes a result
file of the documented shape (bench/suite.py). No figure is asserted: the
speed is the benchmark's to measure, not the test's."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.support import HERALD


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HERALD), "bench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,  # not the repository: `herald bench` finds bench/ itself
        env=os.environ.copy(),
    )


def test_quick_edge_bench_writes_a_result_file_with_figures_beside_baselines(
    tmp_path: Path,
) -> None:
    # a cheap benchmark: nginx and Redis in front of one Herald on Tansu
    output = tmp_path / "out" / "bench.json"
    done = _bench(
        "--quick", "--only", "edge", "--broker", "tansu", "--output", str(output), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["schema"] == 1 and result["quick"] is True
    machine = result["machine"]
    assert machine["cores"] >= 1
    assert machine["store"].startswith("SecantusDB") and machine["broker"].startswith("Tansu")
    (edge,) = result["benchmarks"]
    assert edge["name"] == "edge" and edge["ok"] is True, edge
    assert edge["error"] is None and edge["sizes"]["rounds"] == 1
    (replay,) = edge["figures"]
    assert replay["unit"] == "req/s" and replay["value"] > 0
    assert replay["baseline"] == "unique requests through the edge to the app"
    assert replay["baseline_value"] > 0
    assert replay["ratio"] == round(replay["value"] / replay["baseline_value"], 3)
    assert set(replay) == {
        "path", "value", "unit", "baseline", "baseline_value", "ratio", "goal"
    }  # fmt: skip
    # the same figures in the printed table, with the machine's cores first
    assert done.stdout.startswith(f"machine: {machine['cores']} cores")
    assert replay["path"] in done.stdout and replay["baseline"] in done.stdout


def test_an_unknown_benchmark_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    done = _bench("--only", "nosuch", "--output", str(tmp_path / "x.json"), cwd=tmp_path)
    assert done.returncode == 2
    assert "nosuch" in done.stderr and "paging" in done.stderr
    assert not (tmp_path / "x.json").exists()  # nothing ran, nothing written
