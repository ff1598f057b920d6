"""`geoembed geolocate` with a tiny model trained on the Blue Marble: galleries, the embedding cache, top-K points
and their probabilities, refinement, probability maps, bad input and the command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from osgeo import ogr, osr
from PIL import Image
from pyproj import Transformer
from scipy.spatial import cKDTree

from geoembed.cli import main
from geoembed.coords import fibonacci_lattice, great_circle_km, unit_vectors
from geoembed.embedder import LocationEmbedder
from geoembed.errors import Cancelled, InputError
from geoembed.geolocation import galleries
from geoembed.geolocation.cache import cache_path, gallery_embeddings
from geoembed.geolocation.galleries import fibonacci_gallery, geoclip_gallery, points_gallery
from geoembed.geolocation.geolocate import geolocate
from geoembed.geolocation.images import read_image_files, read_raster_patches
from geoembed.geolocation.regions import extent_region, mask_region
from geoembed.geolocation.search import SEPARATION, Refiner
from geoembed.image_embedder import ImageEmbedder
from geoembed.progress import Progress
from geoembed.store import ModelStore

from ..conftest import geoclip_wheel
from .test_training_run import result_of, train, world, write_config  # noqa: F401  (world: a fixture)

WORLD_MAP = "/usr/share/qgis/resources/data/world_map.gpkg"
PLACES = {"paris": (2.35, 48.85), "sahara": (10.0, 23.0), "amazon": (-60.0, -5.0)}


@pytest.fixture(scope="module")
def home(tmp_path_factory, world) -> Path:  # noqa: F811
    """A store holding 'tiny', trained for a few steps on 16-pixel Blue Marble patches."""
    folder = tmp_path_factory.mktemp("geolocation")
    config = write_config(folder, world, model_id="tiny", schedule={"batch_size": 64, "steps": 6})
    result_of(train(config, folder / "home"))
    return folder / "home"


@pytest.fixture(scope="module")
def models(home):
    store = ModelStore(home)
    return ImageEmbedder("tiny", store), LocationEmbedder("tiny", store)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, world) -> Path:  # noqa: F811
    """A folder of 16 x 16 crops of the Blue Marble at PLACES, and a file that is no image."""
    folder = tmp_path_factory.mktemp("photos")
    with rasterio.open(world) as ds:
        pixels = ds.read()
        for name, (lon, lat) in PLACES.items():
            row, col = ds.index(lon, lat)
            Image.fromarray(pixels[:, row - 8:row + 8, col - 8:col + 8].transpose(1, 2, 0)).save(folder / f"{name}.png")
    (folder / "notes.jpg").write_text("not an image")
    return folder


def layer(path: Path, geometries: list[str], epsg: int = 4326) -> Path:
    """A GeoJSON layer of WKT ``geometries`` in EPSG:``epsg``."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds = ogr.GetDriverByName("GeoJSON").CreateDataSource(str(path))
    lyr = ds.CreateLayer(path.stem, srs)
    for wkt in geometries:
        feature = ogr.Feature(lyr.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        lyr.CreateFeature(feature)
    ds = None
    return path


def read_layer(path: Path) -> tuple[list[dict], dict]:
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    rows = [{k: f.GetField(k) for k in ("image", "rank", "score", "probability", "lon", "lat", "refined")} | {
        "xy": (f.GetGeometryRef().GetX(), f.GetGeometryRef().GetY())} for f in lyr]
    return rows, lyr.GetMetadata()


def test_lattice_rows_are_those_of_the_fibonacci_lattice():
    lon, lat = fibonacci_lattice(1000)
    part = fibonacci_lattice(1000, 200, 300)
    assert np.array_equal(part[0], lon[200:300]) and np.array_equal(part[1], lat[200:300])


def test_galleries_inside_extents_and_masks(tmp_path):
    globe = fibonacci_gallery(2000)
    assert len(globe) == 2000 and globe.sha256 == fibonacci_gallery(2000).sha256 != fibonacci_gallery(2001).sha256

    europe = fibonacci_gallery(3000, extent_region("2500000,1500000,6000000,5000000", "EPSG:3035"))
    x, y = np.array(Transformer.from_crs(4326, 3035, always_xy=True).transform(*europe.lonlat.T))
    assert 2940 <= len(europe) <= 3060 and ((x >= 2.5e6) & (x <= 6e6) & (y >= 1.5e6) & (y <= 5e6)).all()

    pacific = fibonacci_gallery(500, extent_region("170,-20,190,0"))  # across the antimeridian
    assert len(pacific) == 500 and ((pacific.lonlat[:, 0] >= 170) | (pacific.lonlat[:, 0] <= -170)).all()

    triangle = layer(tmp_path / "triangle.geojson", ["POLYGON ((0 0, 20 0, 0 20, 0 0))"])
    inside = fibonacci_gallery(1000, mask_region(str(triangle)))
    lon, lat = inside.lonlat.T
    assert 980 <= len(inside) <= 1020 and (lon + lat <= 20).all() and (lon >= 0).all() and (lat >= 0).all()
    nearest = cKDTree(unit_vectors(lon, lat)).query(unit_vectors(lon, lat), k=2)[0][:, 1]
    assert nearest.min() > 0.6 * np.median(nearest)  # an even lattice, not random draws that may nearly coincide

    land = mask_region(WORLD_MAP, "countries")
    on_land = fibonacci_gallery(2000, land)
    assert land.inside(*on_land.lonlat.T).all() and 1900 <= len(on_land) <= 2100

    xy = Transformer.from_crs(4326, 3857, always_xy=True).transform([2.35, -120.0], [48.85, 34.0])
    cities = layer(tmp_path / "cities.geojson", [f"POINT ({x} {y})" for x, y in zip(*xy)], 3857)
    assert np.allclose(points_gallery(str(cities)).lonlat, [[2.35, 48.85], [-120.0, 34.0]])


def test_geoclip_gallery_is_read_lat_lon_from_the_wheel(tmp_path):
    gallery = geoclip_gallery(geoclip_wheel())
    assert len(gallery) == 100_000 and np.abs(gallery.lonlat[:, 1]).max() <= 90
    assert gallery.lonlat[1].tolist() == [-118.599931, 34.201047]  # the file's second row: Los Angeles, as LAT,LON
    land = mask_region(WORLD_MAP, "countries")
    assert land.inside(*gallery.lonlat[:5000].T).mean() > 0.85  # photos are taken on land
    assert gallery.sha256 == geoclip_gallery(geoclip_wheel()).sha256

    forged = tmp_path / "geoclip-1.3.0-py3-none-any.whl"
    with zipfile.ZipFile(forged, "w") as zf:
        zf.writestr(galleries.GEOCLIP_MEMBER, "LAT,LON\n0,0\n")
    with pytest.raises(InputError, match="sha256") as err:
        geoclip_gallery(forged)
    assert err.value.parameter == "GEOCLIP_WHEEL"


def test_gallery_embeddings_are_cached_per_model_and_gallery(tmp_path, home, models):
    _, embedder = models
    gallery = fibonacci_gallery(3000)
    calls = []
    first, hit = gallery_embeddings(embedder, gallery, lambda done, total: calls.append(done), print)
    assert not hit and calls and cache_path(embedder, gallery).parent == home / "cache" / "galleries"
    with np.load(cache_path(embedder, gallery), allow_pickle=False) as stored:
        assert stored["embeddings"].dtype == np.float16 and str(stored["gallery_sha256"]) == gallery.sha256
    calls.clear()
    again, hit = gallery_embeddings(embedder, gallery, lambda done, total: calls.append(done), print)
    assert hit and not calls and np.array_equal(first, again)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=2e-3)

    _, hit = gallery_embeddings(embedder, fibonacci_gallery(3001), None, print)
    assert not hit

    retrained = LocationEmbedder("tiny", ModelStore(home))
    retrained.card = {**retrained.card, "weights": {**retrained.card["weights"], "sha256": "0" * 64}}
    assert cache_path(retrained, gallery) == cache_path(embedder, gallery)
    _, hit = gallery_embeddings(retrained, gallery, None, print)
    assert not hit
    _, hit = gallery_embeddings(embedder, gallery, None, print)  # the file now holds the other weights' key
    assert not hit


def test_top_k_points_probabilities_and_refinement(tmp_path, models, photos):
    image_embedder, embedder = models
    images = read_image_files([str(photos)], 16, 3, print)
    assert images.names == [f"{photos.name}/{name}.png" for name in ("amazon", "paris", "sahara")]
    assert list(images.skipped.values()) == ["not a readable image"]
    gallery = fibonacci_gallery(5000)
    plain = tmp_path / "plain.gpkg"
    result = geolocate(images, image_embedder, embedder, gallery, top_k=4, output=plain, refine=False)
    assert result["images"] == 3 and result["skipped"] == 1 and result["gallery_size"] == 5000

    rows, metadata = read_layer(plain)
    assert metadata["geoembed_model_id"] == "tiny" and metadata["geoembed_gallery_sha256"] == gallery.sha256
    assert metadata["geoembed_weights_sha256"] == embedder.weights_sha256
    keys, _ = gallery_embeddings(embedder, gallery, None, print)
    queries = image_embedder.embed(images.pixels)
    logits = queries @ keys.T / image_embedder.temperature
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    radius_km = embedder.resolution_km / 4
    assert radius_km > 0
    for q, name in enumerate(images.names):
        mine = [r for r in rows if r["image"] == name]
        assert [r["rank"] for r in mine] == [1, 2, 3, 4] and not any(r["refined"] for r in mine)
        # ranked by the probability of the 50 most probable gallery points within a quarter of the resolution
        best = np.argsort(-softmax[q])[:50]
        lon, lat = gallery.lonlat[best, 0], gallery.lonlat[best, 1]
        near = great_circle_km(lon[:, None], lat[:, None], lon[None, :], lat[None, :]) <= radius_km
        mass = near.astype(np.float64) @ softmax[q, best]
        expected = best[sorted(range(50), key=lambda i: (-round(mass[i] / mass.max(), 9), -softmax[q, best[i]]))[:4]]
        assert np.allclose([r["xy"] for r in mine], gallery.lonlat[expected])
        assert np.allclose([r["probability"] for r in mine], softmax[q, expected], rtol=1e-4)
        assert np.allclose([r["score"] for r in mine], (queries @ keys.T)[q, expected], atol=1e-5)
        assert sum(r["probability"] for r in mine) <= 1.0
        assert all(r["xy"] == (r["lon"], r["lat"]) for r in mine)

    refined_out = tmp_path / "refined.gpkg"
    geolocate(images, image_embedder, embedder, gallery, top_k=4, output=refined_out)
    refined, _ = read_layer(refined_out)
    refiner = Refiner(gallery, embedder)
    spacing = refiner.spacing(np.arange(len(gallery))).max()
    moved = 0
    for before, after in zip(rows, refined):
        assert (after["image"], after["rank"]) == (before["image"], before["rank"])
        if after["rank"] == 1:  # the most probable place is always the first candidate
            assert after["probability"] == before["probability"]
            assert after["score"] >= before["score"] - 2e-3  # the exact score never drops below the gallery point's
            assert great_circle_km(*before["xy"], *after["xy"]) <= 1.3 * spacing * 6371.0088
        if after["refined"]:
            moved += 1
            assert great_circle_km(*after["xy"], *gallery.lonlat.T).min() > 0.01  # off the gallery
    assert moved > 0
    for name in images.names:  # candidates started from gallery points at least SEPARATION spacings apart
        mine = [r for r in refined if r["image"] == name]
        assert [r["rank"] for r in mine] == [1, 2, 3, 4]
        xy = np.array([r["xy"] for r in mine])
        apart = great_circle_km(xy[:, None, 0], xy[:, None, 1], xy[None, :, 0], xy[None, :, 1])
        assert apart[np.triu_indices(4, 1)].min() > 1.0  # never the same place


def test_distinct_candidates_keep_apart(models):
    _, embedder = models
    gallery = fibonacci_gallery(2000)
    refiner = Refiner(gallery, embedder)
    ranked = np.argsort(great_circle_km(2.35, 48.85, *gallery.lonlat.T))[None, :40]  # near Paris, nearest first
    columns = refiner.distinct(ranked, 4)[0]
    assert columns[0] == 0
    chosen = ranked[0, columns]
    angles = great_circle_km(*gallery.lonlat[chosen][:, None].T, *gallery.lonlat[chosen][None, :].T) / 6371.0088
    reach = SEPARATION * refiner.spacing(chosen)
    for i in range(4):
        for j in range(i):
            assert angles[i, j] >= max(reach[i], reach[j]) - 1e-12


def test_probability_map_over_a_region(tmp_path, models, photos):
    image_embedder, embedder = models
    images = read_image_files([str(photos / "paris.png"), str(photos / "sahara.png")], 16, 3, print)
    region = extent_region("-20,0,40,60")
    raster = tmp_path / "p.tif"
    result = geolocate(images, image_embedder, embedder, fibonacci_gallery(800, region), top_k=2,
                       output=tmp_path / "points.geojson", raster=raster, pixel_size=2.0)
    assert result["raster_size"] == [30, 30]
    with rasterio.open(raster) as ds:
        assert ds.descriptions == ("paris.png", "sahara.png") and ds.crs.to_epsg() == 4326
        density = ds.read(masked=True)
        lat = ds.bounds.top - (np.arange(ds.height) + 0.5) * 2.0
    area = 6371.0088 ** 2 * np.radians(2.0) * (np.sin(np.radians(lat + 1)) - np.sin(np.radians(lat - 1)))
    assert np.allclose((density * area[None, :, None]).sum(axis=(1, 2)), 1.0, rtol=1e-4)
    assert not density.mask.any() and (density > 0).all()
    with open(tmp_path / "points.geojson") as f:
        points = json.load(f)
    assert json.loads(points["description"])["geoembed_gallery_size"] == "800"  # the provenance
    lon, lat = np.array([f["geometry"]["coordinates"] for f in points["features"]]).T
    assert region.inside(lon, lat).all()  # refined points too stay in the region


def test_images_are_embedded_over_the_symmetries_of_training(models):
    """'tiny' was trained with flips and quarter turns: a turned or mirrored image is the same query."""
    images, _ = models
    assert images.flips and images.rotations
    pixels = np.random.default_rng(0).integers(0, 256, (3, images.in_channels, images.patch_size,
                                                           images.patch_size)).astype(np.uint8)
    embedded = images.embed(pixels)
    for other in (np.rot90(pixels, 1, axes=(2, 3)), pixels[..., ::-1], np.rot90(pixels[..., ::-1], 3, axes=(2, 3))):
        assert np.allclose(images.embed(np.ascontiguousarray(other)), embedded, atol=1e-5)
    shift, scale = images.mean[None, :, None, None], 1.0 / images.std[None, :, None, None]
    with torch.no_grad():
        plain = torch.nn.functional.normalize(images.network(torch.from_numpy(
            ((pixels - shift) * scale).astype(np.float32))), dim=-1).numpy()
    assert not np.allclose(plain, embedded, atol=1e-3)


def test_raster_patches_at_points(tmp_path, models, world):  # noqa: F811
    image_embedder, embedder = models
    points = layer(tmp_path / "centres.geojson", ["POINT (2.35 48.85)", "POINT (0 0)", "POINT (0 89.9)"])
    images = read_raster_patches(str(world), str(points), None, 16, 3, print)
    assert images.names == ["centres #1", "centres #2"] and images.pixels.shape == (2, 3, 16, 16)
    assert images.skipped == {"centres #3": "patch not wholly on the raster"}  # 89.9 N: too near the edge
    with pytest.raises(InputError) as err:
        read_raster_patches(str(world), str(points), None, 16, 4, print)
    assert err.value.parameter == "RASTER" and "3 band(s)" in err.value.reason
    assert image_embedder.downsample == image_embedder.card["image_encoder"]["downsample"] == 1


def test_raster_patches_are_averaged_as_in_training(tmp_path, world):  # noqa: F811
    """A model trained with downsample 2 sees 2 x 2 pixel means; the patches to geolocate are cut the same way."""
    points = layer(tmp_path / "paris.geojson", ["POINT (2.35 48.85)"])
    images = read_raster_patches(str(world), str(points), None, 8, 3, print, downsample=2)
    with rasterio.open(world) as ds:
        pixels = ds.read().astype(np.float64)
        col, row = ~ds.transform * (2.35, 48.85)  # continuous pixel coordinates
    height, width = pixels.shape[1] // 2, pixels.shape[2] // 2  # the odd last row is left out
    coarse = pixels[:, :2 * height, :2 * width].reshape(3, height, 2, width, 2).mean(axis=(2, 4))
    row, col = int(np.floor(row / 2 - 3.5)), int(np.floor(col / 2 - 3.5))  # the 8 x 8 coarse pixels around it
    assert np.abs(images.pixels[0].astype(np.float64) - coarse[:, row:row + 8, col:col + 8]).max() <= 0.5


def test_bad_input(tmp_path, models, photos, home):
    image_embedder, embedder = models
    images = read_image_files([str(photos / "paris.png")], 16, 3, print)
    with pytest.raises(InputError) as err:
        geolocate(images, image_embedder, embedder, fibonacci_gallery(10), top_k=11, output=tmp_path / "x.gpkg")
    assert err.value.parameter == "TOP_K" and "only 10 points" in err.value.reason

    far = layer(tmp_path / "far.geojson", ["POINT (100 0)"])
    with pytest.raises(InputError) as err:
        points_gallery(str(far), region=extent_region("-10,35,30,60"))
    assert err.value.parameter == "EXTENT" and "no gallery point" in err.value.reason
    sliver = layer(tmp_path / "sliver.geojson", ["POLYGON ((0 0, 60 60.0001, 60 60, 0 0))"])  # no area to speak of
    with pytest.raises(InputError) as err:
        fibonacci_gallery(20, mask_region(str(sliver)))
    assert err.value.parameter == "MASK"

    with pytest.raises(InputError) as err:
        read_image_files([str(photos / "notes.jpg"), str(tmp_path / "missing.png")], 16, 3, print)
    assert err.value.parameter == "IMAGES" and "1 not a readable image, 1 no such file" in err.value.reason
    with pytest.raises(InputError, match="RGB"):
        read_image_files([str(photos)], 16, 4, print)

    plain = ModelStore(home).models_dir / "no-images"
    shutil.copytree(ModelStore(home).path("tiny"), plain)
    card = json.loads((plain / "card.json").read_text())
    del card["image_encoder"]
    (plain / "card.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="no image encoder"):
        ImageEmbedder("no-images", ModelStore(home))

    class StopWhileSearching(Progress):
        def report(self, fraction, message=""):
            self.cancelled = self.cancelled or message.startswith("geolocating")

    with pytest.raises(Cancelled):
        geolocate(images, image_embedder, embedder, fibonacci_gallery(100), top_k=1, output=tmp_path / "c.gpkg",
                  progress=StopWhileSearching("none"))
    assert not (tmp_path / "c.gpkg").exists() and not list(tmp_path.glob(".c.*"))


def test_command_line(tmp_path, home, photos, monkeypatch):
    out = tmp_path / "found.shp"
    env = {**os.environ, "GEOEMBED_HOME": str(home)}
    command = [sys.executable, "-m", "geoembed", "--progress", "json", "geolocate", "--model", "tiny", "--images",
               str(photos), "--gallery-size", "4000", "--top-k", "3", "--output", str(out)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    result = result_of(proc)
    assert (result["images"], result["skipped"], result["gallery_size"]) == (3, 1, 4000)
    assert result["output"] == str(out) and result["cache_hit"] is False
    assert {p.suffix for p in tmp_path.iterdir()} >= {".shp", ".dbf", ".shx", ".prj"}
    assert not list(tmp_path.glob(".*partial*"))
    ds = ogr.Open(str(out))
    assert ds.GetLayer(0).GetFeatureCount() == 9 and ds.GetLayer(0).GetLayerDefn().GetFieldIndex("probabilit") >= 0

    monkeypatch.setenv("GEOEMBED_HOME", str(home))
    base = ["--progress", "none", "geolocate", "--model", "tiny", "--images", str(photos), "--output",
            str(tmp_path / "again.gpkg")]
    assert main([*base, "--gallery-size", "4000", "--top-k", "3"]) == 0  # cached now
    assert main([*base, "--gallery-size", "4000", "--top-k", "4001"]) == 2
    assert main([*base, "--gallery", "geoclip", "--gallery-size", "10"]) == 2
    assert main([*base, "--extent", "0,0,1,1", "--mask", WORLD_MAP]) == 2
    assert main(["geolocate", "--model", "tiny", "--output", "x.gpkg"]) == 2  # no images
