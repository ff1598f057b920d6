"""Embedding and similarity rasters written through the backend API."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from pyproj import CRS

from geoembed.errors import Cancelled, GeoEmbedError, InputError
from geoembed.geotiff import NODATA
from geoembed.grid import RasterGrid
from geoembed.progress import Progress
from geoembed.rasters import embedding_raster, similarity_raster


@pytest.fixture(scope="module")
def small_grid():
    return RasterGrid.create(CRS.from_epsg(4326), (0, 40, 6, 44), 0.5)  # 12 x 8


def test_embedding_raster_is_self_describing(embedder, small_grid, tmp_path):
    out = tmp_path / "emb.tif"
    result = embedding_raster(embedder, small_grid, out)
    assert result["bands"] == 512 and result["valid_pixels"] == 96
    with rasterio.open(out) as ds:
        assert (ds.width, ds.height, ds.count) == (12, 8, 512)
        assert ds.crs.to_epsg() == 4326 and ds.nodata == NODATA
        assert ds.descriptions[0] == "emb_000" and ds.descriptions[-1] == "emb_511"
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
        tags = ds.tags()
        data = ds.read()
    assert tags["geoembed_model_id"] == "geoclip"
    assert tags["geoembed_weights_sha256"] == embedder.weights_sha256
    assert json.loads(tags["geoembed_parameters"])["pixel_size"] == 0.5
    # The pixel at row 1, col 2 has its centre at (1.25, 43.25).
    expected = embedder.embed([1.25], [43.25])[0]
    np.testing.assert_allclose(data[:, 1, 2], expected, rtol=1e-5, atol=1e-5)
    assert list(tmp_path.iterdir()) == [out]


def test_pca_and_float16(embedder, small_grid, tmp_path):
    out = tmp_path / "pca.tif"
    embedding_raster(embedder, small_grid, out, dims=3, dtype="float16")
    with rasterio.open(out) as ds:
        assert ds.count == 3 and ds.descriptions == ("pca_000", "pca_001", "pca_002")
        assert ds.tags(1, "IMAGE_STRUCTURE").get("NBITS") == "16"
        data = ds.read()
    expected = embedder.pca.project(embedder.embed([1.25], [43.25]), 3)[0]
    np.testing.assert_allclose(data[:, 1, 2], expected, rtol=2e-3, atol=2e-3)
    with pytest.raises(InputError) as err:
        embedding_raster(embedder, small_grid, tmp_path / "x.tif", dims=4096)
    assert err.value.parameter == "DIMS"


def test_preview_is_the_first_three_components_stretched(embedder, small_grid, tmp_path):
    """One pass writes the embedding raster and its RGB preview: the preview's bands are the first three PCA bands
    of the same grid, stretched between their 2nd and 98th percentiles to 1..255."""
    out, preview = tmp_path / "emb.tif", tmp_path / "preview.tif"
    result = embedding_raster(embedder, small_grid, out, preview=preview)
    assert result["preview"] == str(preview) and result["bands"] == 512
    pca = tmp_path / "pca.tif"
    embedding_raster(embedder, small_grid, pca, dims=3)
    with rasterio.open(preview) as ds, rasterio.open(pca) as ref, rasterio.open(out) as main:
        assert ds.count == 3 and ds.dtypes == ("uint8",) * 3 and ds.nodata == 0
        assert ds.descriptions == ("pca_000", "pca_001", "pca_002")
        assert [c.name for c in ds.colorinterp] == ["red", "green", "blue"]
        assert (ds.crs, ds.transform) == (ref.crs, ref.transform)
        tags, main_tags = ds.tags(), main.tags()
        rgb, components = ds.read().astype(np.float64), ref.read().astype(np.float64)
    assert tags["geoembed_kind"] == "embedding preview" and main_tags["geoembed_kind"] == "embedding"
    for key in ("geoembed_model_id", "geoembed_weights_sha256", "geoembed_parameters", "geoembed_evaluation"):
        assert tags[key] == main_tags[key]
    stretch = json.loads(tags["geoembed_preview"])
    low, high = (np.array(stretch[k])[:, None, None] for k in ("low", "high"))
    # a grid this small is sampled whole: the stretch holds the percentiles of every pixel
    np.testing.assert_allclose(low[:, 0, 0], np.percentile(components.reshape(3, -1), 2, axis=1), rtol=1e-4)
    np.testing.assert_allclose(high[:, 0, 0], np.percentile(components.reshape(3, -1), 98, axis=1), rtol=1e-4)
    expected = 1 + np.round(254 * np.clip((components - low) / (high - low), 0, 1))
    assert np.abs(rgb - expected).max() <= 1
    assert rgb.min() == 1 and rgb.max() == 255
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.tif", "pca.tif", "preview.tif"]


def test_preview_is_nodata_outside_the_projection(embedder, tmp_path):
    grid = RasterGrid.create(CRS.from_string("ESRI:54009"), (-18_100_000, -9_100_000, 18_100_000, 9_100_000),
                             1_000_000)
    preview = tmp_path / "preview.tif"
    embedding_raster(embedder, grid, tmp_path / "emb.tif", dims=1, preview=preview)
    with rasterio.open(preview) as ds:
        rgb = ds.read()
    assert (rgb[:, 0, 0] == 0).all() and (rgb[:, grid.height // 2, grid.width // 2] > 0).all()


def test_similarity_is_one_at_reference_and_ranks_near_above_far(embedder, tmp_path):
    grid = RasterGrid.create(CRS.from_epsg(4326), (100, 10, 130, 30), 1.0)
    out = tmp_path / "sim.tif"
    similarity_raster(embedder, grid, out, reference=(114.5, 22.5))  # a pixel centre
    with rasterio.open(out) as ds:
        sim = ds.read(1)
        assert ds.descriptions == ("similarity",)
        row, col = ds.index(114.5, 22.5)
        near = sim[ds.index(113.5, 23.5)]
        far = sim[ds.index(129.5, 10.5)]
    assert sim[row, col] == pytest.approx(1.0, abs=1e-5)
    assert sim.max() <= 1.0 and sim.min() >= -1.0
    assert near > far


def test_nodata_outside_projection(embedder, tmp_path):
    grid = RasterGrid.create(CRS.from_string("ESRI:54009"), (-18_100_000, -9_100_000, 18_100_000, 9_100_000),
                             3_000_000)
    out = tmp_path / "moll.tif"
    similarity_raster(embedder, grid, out, reference=(0.0, 0.0))
    with rasterio.open(out) as ds:
        sim = ds.read(1)
    assert sim[0, 0] == NODATA and sim[grid.height // 2, grid.width // 2] != NODATA


def test_size_limit_refused_before_writing(embedder, small_grid, tmp_path):
    with pytest.raises(InputError) as err:
        embedding_raster(embedder, small_grid, tmp_path / "big.tif", max_gb=1e-6)
    assert err.value.parameter == "PIXEL_SIZE" and "GB" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_cancel_leaves_nothing(embedder, tmp_path):
    class CancelAfterFirstWindow(Progress):
        def __call__(self, fraction, message=""):
            self.cancelled = True
            super().__call__(fraction, message)

    grid = RasterGrid.create(CRS.from_epsg(4326), (0, 0, 100, 10), 0.2)  # two windows wide
    with pytest.raises(Cancelled):
        embedding_raster(embedder, grid, tmp_path / "c.tif", dims=2, progress=CancelAfterFirstWindow("none"),
                         preview=tmp_path / "p.tif")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("small_disk", [256 << 10], indirect=True)
def test_a_full_disk_stops_the_render_and_leaves_nothing(embedder, small_disk):
    """Windows are written by a writer thread while the next is computed: its failure (here: no space left) ends
    the render with the reason, and no file, partial or temporary, remains."""
    grid = RasterGrid.create(CRS.from_epsg(4326), (0, 40, 30, 41), 0.1)  # 300 x 10: two windows, 512 bands
    with pytest.raises(GeoEmbedError, match="is full") as err:
        embedding_raster(embedder, grid, small_disk / "emb.tif")
    assert "choose another folder" in str(err.value) and list(small_disk.iterdir()) == []
