"""Spherical harmonics speed, peak memory and accuracy: GeoEmbed vs torchgeo and MarcCoru/locationencoder.

The public implementations are imported from copies outside this repository (default /tmp/ext, override with
$GEOEMBED_EXT): ``torchgeo/torchgeo_satclip_sh.py`` (class SphericalHarmonics from torchgeo/models/satclip.py) and
``locationencoder/spherical_harmonics*.py`` (its SymPy-generated analytic file and its closed form); a missing
copy is skipped. Every (implementation, L) runs in a fresh process with a fixed thread count,
OMP_WAIT_POLICY=PASSIVE, THP_MEM_ALLOC_ENABLE=1 and freed memory kept for reuse (the backend's own settings,
geoembed.runtime; torchgeo also without either, its fastest run counts), on float64 (lon, lat) input, in batches;
outputs are discarded. Time is extrapolated to all points when a run exceeds its time cap. Errors are max |y -
mpmath| on a random subsample plus both poles, each implementation in its own convention (torchgeo: SatCLIP's;
locationencoder: theta = lat + 90, phi = lon + 180, textbook m = 0; its closed form also has the Condon-Shortley
phase).

    python benchmarks/sh_bench.py [--points 1000000] [--threads 2] [--degrees 10 40 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

EXT = Path(os.environ.get("GEOEMBED_EXT", "/tmp/ext"))
IMPLEMENTATIONS = ("geoembed", "torchgeo", "locationencoder", "locationencoder-closed-form")
# (THP_MEM_ALLOC_ENABLE, freed memory kept for reuse) each implementation runs with; the fastest run counts.
# GeoEmbed's backend sets both; torchgeo also runs without either (huge pages made it 1.4x slower at L = 100), so
# that each is compared at its best.
BACKEND_SETTINGS = (("1", True),)
SETTINGS = {"torchgeo": (("1", True), ("0", True), ("1", False), ("0", False))}


def _load(impl: str, degrees: int):
    """(callable on (N, 2) float64 lon/lat, convention for the reference), or why it is skipped."""
    import torch

    if impl == "geoembed":
        from geoembed.encodings.spherical_harmonics import SphericalHarmonics

        sh = SphericalHarmonics(degrees, "satclip")
        return (lambda x: sh(x)), "satclip"
    if impl == "torchgeo":
        if not (EXT / "torchgeo" / "torchgeo_satclip_sh.py").is_file():
            return f"no copy under {EXT / 'torchgeo'}"
        sys.path[:0] = [str(EXT / "site"), str(EXT / "torchgeo")]
        from torchgeo_satclip_sh import SphericalHarmonics

        return SphericalHarmonics(degrees), "satclip"
    folder = EXT / "locationencoder"
    analytic = impl == "locationencoder"
    if not (folder / "spherical_harmonics.py").is_file() or (analytic and not (folder / "spherical_harmonics_ylm.py")
                                                             .is_file()):
        return f"no copy under {folder}"
    sys.path[:0] = [str(EXT), str(EXT / "site")]
    import importlib

    module = importlib.import_module("locationencoder.spherical_harmonics")
    if analytic and not hasattr(importlib.import_module("locationencoder.spherical_harmonics_ylm"),
                                f"Yl{degrees - 1}_m{degrees - 1}"):
        return f"its generated analytic file stops below degree {degrees - 1}"
    sh = module.SphericalHarmonics(degrees, "analytic" if analytic else "closed-form")
    torch.set_grad_enabled(False)
    return sh, "locationencoder" if analytic else "locationencoder-condon-shortley"


def _child(impl: str, degrees: int, points: int, batch: int, threads: int, cap_s: float, keep_freed: bool) -> dict:
    import resource

    import numpy as np
    import torch

    from geoembed.runtime import keep_freed_memory

    if keep_freed:
        keep_freed_memory()
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    loaded = _load(impl, degrees)
    if isinstance(loaded, str):
        return {"impl": impl, "L": degrees, "skipped": loaded}
    fn, convention = loaded
    rng = np.random.default_rng(0)
    lonlat = np.stack([rng.uniform(-180, 180, points), np.degrees(np.arcsin(rng.uniform(-1, 1, points)))], axis=1)
    x = torch.from_numpy(lonlat)
    base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn(x[:min(batch, 1000)])  # warm-up (and JIT for the analytic file)
    done, start = 0, time.perf_counter()
    while done < points and time.perf_counter() - start < cap_s:
        fn(x[done:done + batch])
        done += len(x[done:done + batch])
    elapsed = time.perf_counter() - start
    peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_kib) / 1024
    sample = np.concatenate([lonlat[:25], [[0.0, 90.0], [45.0, -90.0]]])
    got = fn(torch.from_numpy(sample)).double().numpy()
    from geoembed.encodings.sh_reference import reference

    if convention.startswith("locationencoder"):  # theta = lat + 90, phi = lon + 180; closed form: (-1)^m
        from geoembed.encodings.sh_reference import real_sh

        ref = np.array([real_sh(degrees, lat + 90.0, lon + 180.0) for lon, lat in sample])
        if convention.endswith("condon-shortley"):
            order = np.concatenate([np.arange(-deg, deg + 1) for deg in range(degrees)])
            ref *= (-1.0) ** np.abs(order)
    else:
        ref = reference(degrees, sample, convention)
    err = np.abs(got - ref)
    return {"impl": impl, "L": degrees, "points": points, "measured_points": done,
            "seconds": elapsed * points / done, "extrapolated": done < points, "peak_mib": round(peak_mib, 1),
            "max_error": float(np.nanmax(err)) if np.isfinite(got).any() else float("nan"),
            "max_error_poles": float(np.nanmax(err[-2:])), "non_finite": int((~np.isfinite(got)).sum()),
            "threads": threads, "batch": batch}


def run(points: int = 1_000_000, degrees=(10, 40, 100), threads: int = 2, batch: int = 10_000,
        cap_s: float = 120.0, implementations=IMPLEMENTATIONS) -> list[dict]:
    """Each (implementation, L) in a fresh process; returns one dict per run (see module docstring)."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    results = []
    for L in degrees:
        for impl in implementations:
            runs = []
            for huge_pages, keep_freed in SETTINGS.get(impl, BACKEND_SETTINGS):
                args = json.dumps([impl, L, points, batch, threads, cap_s, keep_freed])
                proc = subprocess.run([sys.executable, __file__, "--child", args], capture_output=True, text=True,
                                      env={**env, "THP_MEM_ALLOC_ENABLE": huge_pages})
                if proc.returncode != 0:
                    runs.append({"impl": impl, "L": L, "failed": proc.stderr.strip().splitlines()[-1:]})
                else:
                    runs.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "huge_pages": huge_pages == "1",
                                 "keep_freed": keep_freed})
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
            results.append(min(runs, key=lambda r: r.get("seconds", float("inf"))))
    return results


def table(results: list[dict]) -> str:
    """Markdown table, with the speed-up of GeoEmbed over each implementation at the same L."""
    ours = {r["L"]: r["seconds"] for r in results if r["impl"] == "geoembed" and "seconds" in r}
    lines = ["| L | implementation | time (s) | x GeoEmbed | peak MiB | max error | error at poles | non-finite |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "seconds" not in r:
            lines.append(f"| {r['L']} | {r['impl']} | {r.get('skipped') or r.get('failed')} | | | | | |")
            continue
        settings = [name for name, on in (("huge pages", r["huge_pages"]), ("freed memory kept", r["keep_freed"]))
                    if not on]
        t = f"{r['seconds']:.2f}" + (f" (extrap. from {r['measured_points']})" if r["extrapolated"] else "") + (
            f", without {' or '.join(settings)}" if settings else "")
        ratio = r["seconds"] / ours[r["L"]] if r["L"] in ours else float("nan")
        lines.append(f"| {r['L']} | {r['impl']} | {t} | {ratio:.1f} | {r['peak_mib']} | {r['max_error']:.1e} | "
                     f"{r['max_error_poles']:.1e} | {r['non_finite']} |")
    return "\n".join(lines)


TITLE = "Spherical harmonics: GeoEmbed against torchgeo and locationencoder (CPU)"


def report() -> str:
    """The Markdown section for `make bench`: 1,000,000 points at L = 10, 40, 100 on 2 threads."""
    intro = ("Command: `.venv/bin/python benchmarks/run.py --only sh` (or `benchmarks/sh_bench.py`). 1,000,000 "
             "(lon, lat) points, float64, 2 torch threads, OMP_WAIT_POLICY=PASSIVE, THP_MEM_ALLOC_ENABLE=1, freed "
             "memory kept for reuse (the backend's settings; torchgeo also without huge pages and/or without keeping "
             "freed memory, its fastest run is shown), batches of 10,000, each run in "
             f"a fresh process. Public implementations are read from copies in {EXT} (never committed); a missing "
             "copy is reported as skipped.")
    return intro + "\n\n" + table(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--degrees", type=int, nargs="+", default=[10, 40, 100])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--cap", type=float, default=120.0, help="seconds per run before extrapolating")
    parser.add_argument("--impl", nargs="+", default=list(IMPLEMENTATIONS), choices=IMPLEMENTATIONS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*json.loads(args.child))))
        return
    results = run(args.points, args.degrees, args.threads, args.batch, args.cap, args.impl)
    print(f"{args.points} points, {args.threads} threads, batches of {args.batch}, float64 input\n")
    print(table(results))


if __name__ == "__main__":
    main()
