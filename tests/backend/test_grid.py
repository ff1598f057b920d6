"""Pixel grids and where their centres fall on the globe, in geographic and projected CRSs."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import CRS

from geoembed.errors import InputError
from geoembed.grid import RasterGrid, parse_crs, to_lonlat


def test_grid_geometry_and_windows():
    grid = RasterGrid.create(CRS.from_epsg(4326), (-10, 40, 10.5, 50), 0.5)
    assert (grid.width, grid.height) == (41, 20)
    assert grid.transform.c == -10 and grid.transform.f == 50
    windows = list(grid.windows(block=16))
    assert sum(w.width * w.height for w in windows) == 41 * 20
    lon, lat, valid = grid.lonlat(windows[0])
    assert valid.all() and lon[0, 0] == pytest.approx(-9.75) and lat[0, 0] == pytest.approx(49.75)


def test_antimeridian_extent_wraps_longitudes():
    grid = RasterGrid.create(CRS.from_epsg(4326), (170, -10, 190, 10), 1.0)
    lon, lat, valid = grid.lonlat(next(grid.windows()))
    assert valid.all()
    assert lon.max() < 180 and lon.min() >= -180
    assert lon[0, -1] == pytest.approx(-170.5)  # 189.5 east is 170.5 west


def test_poles_in_geographic_and_polar_crs():
    grid = RasterGrid.create(CRS.from_epsg(4326), (-180, 80, 180, 90), 1.0)
    lon, lat, valid = grid.lonlat(next(grid.windows()))
    assert valid.all() and lat.max() == pytest.approx(89.5)
    # Polar stereographic centred on the North Pole: the centre pixel is the pole itself.
    polar = RasterGrid.create(CRS.from_epsg(3413), (-50_000, -50_000, 50_000, 50_000), 20_000)
    lon, lat, valid = polar.lonlat(next(polar.windows()))
    assert valid.all()
    assert lat[2, 2] == pytest.approx(90.0, abs=1e-9) and np.isfinite(lon[2, 2])


def test_pixels_off_the_projection_domain_are_invalid():
    # Mollweide: the corners of its bounding rectangle lie outside the ellipse of the globe.
    grid = RasterGrid.create(CRS.from_string("ESRI:54009"), (-18_100_000, -9_100_000, 18_100_000, 9_100_000),
                             200_000)
    lon, lat, valid = grid.lonlat(next(grid.windows()))
    assert not valid[0, 0] and not valid[-1, -1]
    assert valid[grid.height // 2, grid.width // 2]
    assert np.isnan(lon[0, 0]) and np.isfinite(lon[valid]).all() and (np.abs(lat[valid]) <= 90).all()


def test_latitudes_beyond_poles_in_epsg4326():
    lon, lat, valid = to_lonlat(CRS.from_epsg(4326), np.array([0.0, 0.0]), np.array([95.0, 45.0]))
    assert valid.tolist() == [False, True]


@pytest.mark.parametrize("extent", [(0, 0, 0, 10), (10, 0, 0, 10), (0, 10, 10, 0)])
def test_zero_area_or_inverted_extent(extent):
    with pytest.raises(InputError) as err:
        RasterGrid.create(CRS.from_epsg(4326), extent, 1.0)
    assert err.value.parameter == "EXTENT"


@pytest.mark.parametrize("size", [0.0, -1.0, float("nan")])
def test_bad_pixel_size(size):
    with pytest.raises(InputError) as err:
        RasterGrid.create(CRS.from_epsg(4326), (0, 0, 1, 1), size)
    assert err.value.parameter == "PIXEL_SIZE"


def test_unknown_crs():
    with pytest.raises(InputError) as err:
        parse_crs("EPSG:999999", "TARGET_CRS")
    assert err.value.parameter == "TARGET_CRS" and "EPSG:999999" in str(err.value)
