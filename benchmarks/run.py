"""`make bench`: run the benchmarks and write their sections into docs/benchmarks.md."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from common import machine, update_section  # noqa: E402

SUITES = {
    "rasters": "rasters_bench",
    "speed": "speed_bench",
    "sh": "sh_bench",
    "probes": "probe_bench",
    "warm": "warm_bench",
    "training": "train_bench",
    "geolocation": "geolocate_bench",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default=str(Path(__file__).parents[1] / "docs" / "benchmarks.md"))
    parser.add_argument("--only", nargs="*", choices=sorted(SUITES), help="run only these suites")
    args = parser.parse_args()
    doc = Path(args.output)
    for name in args.only or SUITES:
        print(f"running benchmark suite {name!r} ...", flush=True)
        suite = __import__(SUITES[name])
        body = suite.report()
        measured = f"_Measured {date.today().isoformat()} on {machine()}._"
        update_section(doc, name, f"## {suite.TITLE}\n\n{measured}\n\n{body}")
        print(body, flush=True)
    print(f"wrote {doc}")


if __name__ == "__main__":
    main()
