"""Apply a trained probe: a prediction raster over a grid, or prediction fields on a copy of a point layer."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from osgeo import ogr, osr

from ..atomic import write_files_via
from ..coords import wrap_lon
from ..embedder import LocationEmbedder
from ..errors import InputError
from ..grid import RasterGrid
from ..progress import Progress
from ..rasters import DEFAULT_MAX_GB, RasterOutput, check_size, provenance, render_raster
from .labels import open_vector, pick_layer
from .probe import Probe

ogr.UseExceptions()
osr.UseExceptions()

VECTOR_DRIVERS = {".gpkg": "GPKG", ".shp": "ESRI Shapefile", ".geojson": "GeoJSON", ".json": "GeoJSON"}
CHUNK = 8192


def _probe_tags(probe: Probe) -> dict[str, str]:
    tags = {"geoembed_probe": json.dumps(probe.describe(), sort_keys=True)}
    if probe.task == "classification":
        tags["geoembed_classes"] = json.dumps({str(i + 1): str(c) for i, c in enumerate(probe.classes)})
    elif probe.units:
        tags["geoembed_units"] = probe.units
    return tags


def apply_raster(embedder: LocationEmbedder, probe: Probe, grid: RasterGrid, output: Path,
                 dtype: str = "float32", max_gb: float = DEFAULT_MAX_GB, progress: Progress | None = None,
                 evaluation: str = "auto", tolerance: float = 1e-3) -> dict:
    """Classification: bands ``class`` (1-based code into ``probe.classes``) and ``confidence`` (max class
    probability); regression: one band ``prediction``, ``prediction (<units>)`` when the probe knows them."""
    progress = progress or Progress("none")
    probe.check_compatible(embedder.model_id, embedder.weights_sha256, embedder.dim)
    classes = probe.task == "classification"
    names = ["class", "confidence"] if classes else [f"prediction ({probe.units})" if probe.units else "prediction"]
    check_size(grid, len(names), dtype, max_gb)
    low, high = np.inf, -np.inf

    def finish(features: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        nonlocal low, high
        prediction = probe.predict(features, lon, lat)
        if classes:
            return np.stack([prediction.values + 1.0, prediction.confidence], axis=1).astype(np.float32)
        values = prediction.values.astype(np.float32)
        if len(values):
            low, high = min(low, float(values.min())), max(high, float(values.max()))
        return values[:, None]

    tags = {**provenance(embedder, "probe", grid, {"dtype": dtype, "evaluation": evaluation,
                                                   "tolerance": tolerance}), **_probe_tags(probe)}
    valid = render_raster(embedder, grid, [RasterOutput(output, names, dtype, tags, finish)], lambda e: e,
                          evaluation, tolerance, progress, probe.smooth_km)
    result = {"output": str(output), "width": grid.width, "height": grid.height, "bands": len(names),
              "valid_pixels": valid, "task": probe.task, "label": probe.label}
    if classes:
        result["classes"] = [str(c) for c in probe.classes]
    else:
        result["units"] = probe.units
        if valid:
            result["range"] = [low, high]
    return result


def check_vector_output(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser().absolute()
    if p.suffix.lower() not in VECTOR_DRIVERS:
        raise InputError("OUTPUT", f"{p.name}: use a {', '.join(VECTOR_DRIVERS)} file name for the output layer")
    if not p.parent.is_dir():
        raise InputError("OUTPUT", f"folder {p.parent} does not exist; create it or choose another location")
    if not os.access(p.parent, os.W_OK):
        raise InputError("OUTPUT", f"cannot write to {p.parent}: permission denied; choose a writable location")
    return p


def _open_points(path: str, layer_name: str | None):
    source = open_vector(str(path))
    layer = pick_layer(source, layer_name)
    if ogr.GT_Flatten(layer.GetGeomType()) not in (ogr.wkbPoint, ogr.wkbUnknown):
        raise InputError("INPUT", f"layer {layer.GetName()!r} has {ogr.GeometryTypeToName(layer.GetGeomType())} "
                                  "geometries; give a layer of single points (explode multipoints, or use "
                                  "centroids of polygons first)")
    if layer.GetFeatureCount() == 0:
        raise InputError("INPUT", f"layer {layer.GetName()!r} in {path} has no features")
    return source, layer


def _to_wgs84(layer) -> osr.CoordinateTransformation | None:
    srs = layer.GetSpatialRef()
    if srs is None:
        raise InputError("INPUT", f"layer {layer.GetName()!r} has no CRS; assign one (e.g. EPSG:4326) first")
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    for ref in (srs, wgs84):
        ref.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return osr.CoordinateTransformation(srs, wgs84)


def _prediction_fields(layer_defn, task: str) -> tuple[str, str | None]:
    existing = {layer_defn.GetFieldDefn(i).GetName().lower() for i in range(layer_defn.GetFieldCount())}

    def free(name: str) -> str:
        candidate, n = name, 1
        while candidate.lower() in existing:
            candidate, n = f"{name}_{n}", n + 1
        return candidate
    return free("prediction"), free("confidence") if task == "classification" else None


def apply_points(embedder: LocationEmbedder, probe: Probe, source_path: str, output: Path,
                 layer_name: str | None = None, progress: Progress | None = None) -> dict:
    """Copy the point layer to ``output`` with a ``prediction`` field (and ``confidence`` for classes).

    Features without a usable point keep null predictions. Written under a temporary name, renamed on success.
    """
    progress = progress or Progress("none")
    probe.check_compatible(embedder.model_id, embedder.weights_sha256, embedder.dim)
    source, layer = _open_points(source_path, layer_name)  # the layer lives as long as its source
    transform = _to_wgs84(layer)
    total = layer.GetFeatureCount()
    driver = ogr.GetDriverByName(VECTOR_DRIVERS[output.suffix.lower()])
    defn = layer.GetLayerDefn()
    value_field, confidence_field = _prediction_fields(defn, probe.task)
    counts = {}

    def write(tmp: Path) -> None:
        target = driver.CreateDataSource(str(tmp))
        try:
            out_layer = target.CreateLayer(output.stem, layer.GetSpatialRef(), ogr.wkbPoint)
            for i in range(defn.GetFieldCount()):
                out_layer.CreateField(defn.GetFieldDefn(i))
            kind = ogr.OFTString if probe.task == "classification" else ogr.OFTReal
            value = ogr.FieldDefn(value_field, kind)
            if probe.units:  # the alias QGIS shows (GeoPackage keeps it; a Shapefile has only the metadata)
                value.SetAlternativeName(f"{value_field} ({probe.units})")
                out_layer.SetMetadataItem("geoembed_units", probe.units)
            out_layer.CreateField(value)
            if confidence_field:
                out_layer.CreateField(ogr.FieldDefn(confidence_field, ogr.OFTReal))
            predicted = done = 0
            layer.ResetReading()
            out_layer.StartTransaction()
            while True:
                chunk = [f for f in (layer.GetNextFeature() for _ in range(CHUNK)) if f is not None]
                if not chunk:
                    break
                predicted += _predict_chunk(embedder, probe, chunk, transform, out_layer, value_field,
                                            confidence_field)
                done += len(chunk)
                progress(done / max(total, 1), f"{done:,} of {total:,} points")
            out_layer.CommitTransaction()
            counts.update(done=done, predicted=predicted)
        finally:
            target = out_layer = None  # closes the files before they are renamed or removed

    write_files_via(output, write)  # a Shapefile's .shx, .dbf and .prj are renamed with its .shp
    done, predicted = counts["done"], counts["predicted"]
    result = {"output": str(output), "features": done, "predicted": predicted, "task": probe.task,
              "label": probe.label, "field": value_field}
    if probe.task == "classification":
        result["classes"] = [str(c) for c in probe.classes]
    elif probe.units:
        result["units"] = probe.units
    return result


def _predict_chunk(embedder: LocationEmbedder, probe: Probe, features: list, transform, out_layer,
                   value_field: str, confidence_field: str | None) -> int:
    """Predict at the features' points and write them to ``out_layer``; returns how many got a prediction."""
    lon = np.full(len(features), np.nan)
    lat = np.full(len(features), np.nan)
    for i, feature in enumerate(features):
        geometry = feature.GetGeometryRef()
        if geometry is None or geometry.IsEmpty():
            continue
        point = geometry.Clone()
        point.Transform(transform)
        lon[i], lat[i] = point.GetX(), point.GetY()
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90.0)
    lon[ok] = wrap_lon(lon[ok])
    values = confidence = None
    if ok.any():
        prediction = probe.predict(embedder.embed(lon[ok], lat[ok], smooth_km=probe.smooth_km), lon[ok], lat[ok])
        values, confidence = prediction.values, prediction.confidence
    rows = np.flatnonzero(ok)
    position = {row: k for k, row in enumerate(rows)}
    for i, feature in enumerate(features):
        out = ogr.Feature(out_layer.GetLayerDefn())
        out.SetFrom(feature)
        k = position.get(i)
        if k is not None:
            if probe.task == "classification":
                out.SetField(value_field, str(probe.classes[int(values[k])]))
                out.SetField(confidence_field, float(confidence[k]))
            else:
                out.SetField(value_field, float(values[k]))
        out_layer.CreateFeature(out)
    return len(rows)
