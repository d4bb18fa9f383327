"""How long the Rasa server takes to load the trained model: Rasa's own load (one training step
to build the weights) against ``rasa_plugins/model_load.py`` (weights restored as the prediction
path creates them).

    .venv/bin/python bench/bench_rasa_load.py [--rounds 3] [--model models/paybot.tar.gz]

Each load runs in a fresh Python process (TensorFlow imported, then ``Agent.load``), the two
ways taken alternately, so a machine whose speed drifts affects both alike. Prints wall-clock
and CPU seconds of each load, then the medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, os, resource, sys, time
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
from rasa.core.agent import Agent
if sys.argv[1] == "ours":
    from rasa_plugins import model_load
    model_load.install()
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
wall, used = time.perf_counter(), cpu()
Agent.load(sys.argv[2])
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": cpu() - used}))
"""


def load_once(way: str, model: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, way, str(model)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "paybot.tar.gz")
    args = parser.parse_args()
    if not args.model.is_file():
        parser.error(f"no model at {args.model}: run make train")
    runs: dict[str, list[dict[str, float]]] = {"rasa": [], "ours": []}
    for i in range(args.rounds):
        for way in ("rasa", "ours"):
            run = load_once(way, args.model)
            runs[way].append(run)
            print(f"round {i + 1} {way:<5} load {run['wall']:6.1f} s   CPU {run['cpu']:6.1f} s")
    median = {way: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu")}
              for way, rs in runs.items()}  # fmt: skip
    for way, m in median.items():
        print(f"median {way:<5} load {m['wall']:6.1f} s   CPU {m['cpu']:6.1f} s")
    print(f"ours / rasa: load {median['ours']['wall'] / median['rasa']['wall']:.2f}, "
          f"CPU {median['ours']['cpu'] / median['rasa']['cpu']:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
