"""The candidate points as a vector layer in EPSG:4326 (GeoPackage, Shapefile or GeoJSON by extension), written
under a temporary name and renamed when complete. One feature per image and rank."""

from __future__ import annotations

import json
from pathlib import Path

from osgeo import ogr, osr

from ..atomic import write_files_via
from ..probes.apply import VECTOR_DRIVERS
from .search import Candidates

ogr.UseExceptions()
osr.UseExceptions()

FIELDS = (("image", ogr.OFTString), ("rank", ogr.OFTInteger), ("score", ogr.OFTReal), ("probability", ogr.OFTReal),
          ("lon", ogr.OFTReal), ("lat", ogr.OFTReal), ("refined", ogr.OFTInteger))
HOLDS_METADATA = {"GPKG": "layer metadata", "GeoJSON": "the layer description"}


def _wgs84() -> osr.SpatialReference:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _fields(layer) -> None:
    for name, kind in FIELDS:
        field = ogr.FieldDefn(name, kind)
        if name == "refined":
            field.SetSubType(ogr.OFSTBoolean)
        layer.CreateField(field)


def _features(layer, names: list[str], found: Candidates) -> None:
    defn = layer.GetLayerDefn()
    for q, name in enumerate(names):
        for r in range(found.index.shape[1]):
            lon, lat = (float(v) for v in found.lonlat[q, r])
            feature = ogr.Feature(defn)
            values = (name, r + 1, float(found.score[q, r]), float(found.probability[q, r]), lon, lat,
                      int(found.refined[q, r]))
            for i, value in enumerate(values):  # by index: a Shapefile cuts names to 10 characters
                feature.SetField(i, value)
            point = ogr.Geometry(ogr.wkbPoint)
            point.AddPoint_2D(lon, lat)
            feature.SetGeometry(point)
            layer.CreateFeature(feature)


def write_candidates(output: Path, names: list[str], found: Candidates, metadata: dict[str, str]) -> str:
    """Write the layer; ``metadata`` (provenance) goes where the format can hold it. Returns where it went, or
    "nowhere" (Shapefiles)."""
    driver_name = VECTOR_DRIVERS[output.suffix.lower()]

    def write(tmp: Path) -> None:
        target = ogr.GetDriverByName(driver_name).CreateDataSource(str(tmp))
        try:
            options = [f"DESCRIPTION={json.dumps(metadata, sort_keys=True)}"] if driver_name == "GeoJSON" else []
            layer = target.CreateLayer(output.stem, _wgs84(), ogr.wkbPoint, options=options)
            _fields(layer)
            if driver_name == "GPKG":
                layer.SetMetadata(metadata)
            layer.StartTransaction()
            _features(layer, names, found)
            layer.CommitTransaction()
        finally:
            target = layer = None  # closes the files before they are renamed or removed

    write_files_via(output, write)
    return HOLDS_METADATA.get(driver_name, "nowhere")
