"""What the data-quality counters cost: our predictor with them and with `--no-input-quality`, in turns.

    python -m benchmarks.input_quality [--quick] [--rounds 4]

Both servers run at once on the registered Ames champion (as benchmarks.serving finds it). One-row
V2 requests at concurrency 32 go to one server, then to the other, in alternating blocks (A B B A
...), while the other waits: both sides see about the same machine, so their ratio is what the
counting costs. Two request rows: a clean held-out row, and the same row with an unseen category
and a number above its training range, which takes the counters' slower path. Target: the counters
cost at most 3 % of requests/s at c32.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from benchmarks.loadgen import Target, fetch, measure
from benchmarks.serving import MODEL_NAME, MODEL_URI, Running, build_workload, default_tracking_uri, ours
from lifecycle.contract.protocol import v2_infer_path

CONCURRENCY = 32
TARGET_COST = 0.03


def dirty_row(frame):
    """The row with its first text column set to a category never seen in training, and its first
    numeric column set far above any training value."""
    from pandas.api.types import is_numeric_dtype

    dirty = frame.copy()
    text = next(name for name in frame.columns if frame[name].dtype == object)
    number = next(name for name in frame.columns if is_numeric_dtype(frame[name]) and frame[name].dtype != bool)
    dirty[text] = "never seen in training"
    dirty[number] = dirty[number].astype("float64") * 1000 + 1e9
    return dirty, f"{text} unseen, {number} out of range"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short blocks (a smoke run, figures are rough)")
    p.add_argument("--rounds", type=int, default=4, help="blocks per server and row (default 4)")
    args = p.parse_args(argv)
    warmup, duration, most = (0.5, 2.0, 3_000) if args.quick else (1.0, 8.0, 20_000)
    tracking_uri = default_tracking_uri()
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    workload = build_workload(MODEL_URI)
    dirty, what = dirty_row(workload.frame_one)
    rows = {"clean": workload.v2(workload.frame_one), "dirty": workload.v2(dirty)}
    logs = Path(tempfile.mkdtemp(prefix="input-quality-bench-"))
    servers = {
        "on": ours("on", "python -m serving", [], tracking_uri),
        "off": ours("off", "python -m serving --no-input-quality", ["--no-input-quality"], tracking_uri),
    }
    print(f"model    {MODEL_URI} ({tracking_uri})\nrows     clean held-out row; dirty: {what}", flush=True)
    print(f"blocks   c{CONCURRENCY}, {warmup:g} s warm-up then {duration:g} s or {most} requests; logs {logs}")
    running = {name: Running(server, logs / f"{name}.log") for name, server in servers.items()}
    try:
        for server in running.values():
            server.wait_ready(240)
        rps: dict[tuple[str, str], list[float]] = {}
        for kind, body in rows.items():
            targets = {name: Target(server.port, v2_infer_path(MODEL_NAME), body) for name, server in running.items()}
            answers = {name: fetch(target) for name, target in targets.items()}
            outputs = {
                name: json.loads(body)["outputs"] if status == 200 else status
                for name, (status, body) in answers.items()
            }
            if outputs["on"] != outputs["off"] or not isinstance(outputs["on"], list):
                raise RuntimeError(f"{kind} row: the two servers do not answer alike: {answers}")
            for turn in range(args.rounds):
                order = ("on", "off") if turn % 2 == 0 else ("off", "on")
                for name in order:
                    result = measure(targets[name], CONCURRENCY, warmup, duration, most)
                    if result.errors:
                        raise RuntimeError(f"{name} {kind}: {result.errors} errors")
                    rps.setdefault((name, kind), []).append(result.rps)
                    print(f"   {kind:<5} {name:<3} block {turn + 1}: {result.rps:8.1f} req/s", flush=True)
    finally:
        for server in running.values():
            server.stop()
    print(f"\n{'row':<6} {'counters on':>12} {'off':>12} {'on/off':>7} {'cost':>6}  target <= {TARGET_COST:.0%}")
    worst = 0.0
    for kind in rows:
        on, off = statistics.median(rps[("on", kind)]), statistics.median(rps[("off", kind)])
        cost = 1 - on / off
        worst = max(worst, cost)
        print(f"{kind:<6} {on:10.1f}/s {off:10.1f}/s {on / off:6.3f}x {cost:6.1%}")
    print(f"\nworst cost {worst:.1%}: {'met' if worst <= TARGET_COST else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
