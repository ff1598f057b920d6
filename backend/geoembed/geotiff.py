"""GeoTIFF output written block by block under a temporary name and renamed on success."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

# GDAL caches dirty blocks up to GDAL_CACHEMAX (default 5% of RAM); a fixed cap keeps memory independent of RAM
# and of the raster's size. Set before rasterio first touches GDAL; a user's own setting wins.
os.environ.setdefault("GDAL_CACHEMAX", "64")

import rasterio  # noqa: E402

from .atomic import partial_path  # noqa: E402
from .errors import GeoEmbedError, InputError  # noqa: E402
from .grid import BLOCK, RasterGrid  # noqa: E402

NODATA = -32768.0  # exact in float32 and float16
BYTE_NODATA = 0  # uint8 rasters (RGB previews) hold their values in 1..255
DTYPES = {"float32": 4, "float16": 2, "uint8": 1}


def check_output_path(path: str | os.PathLike, parameter: str = "OUTPUT") -> Path:
    """The output path as a Path, or InputError(parameter, ...) if it cannot be written."""
    p = Path(path).expanduser().absolute()
    if p.suffix.lower() not in (".tif", ".tiff"):
        raise InputError(parameter, f"{p.name} is not a GeoTIFF name; use a .tif file name")
    if p.is_dir():
        raise InputError(parameter, f"{p} is a folder; give a .tif file name inside it")
    if not p.parent.is_dir():
        raise InputError(parameter, f"folder {p.parent} does not exist; create it or choose another location")
    if not os.access(p.parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise InputError(parameter, f"cannot write to {p}: permission denied; choose a writable location")
    return p


def estimated_bytes(grid: RasterGrid, bands: int, dtype: str) -> int:
    return grid.width * grid.height * bands * DTYPES[dtype]


class AtomicGeoTIFF:
    """A tiled, compressed GeoTIFF that appears at ``path`` only when closed without error.

    float32 and float16 (stored as 16-bit floats) have nodata -32768; uint8 has nodata 0 and, with three bands,
    is an RGB image.
    """

    def __init__(self, path: Path, grid: RasterGrid, band_names: list[str], dtype: str = "float32",
                 tags: dict[str, str] | None = None):
        if dtype not in DTYPES:
            raise InputError("DTYPE", f"unknown data type {dtype!r}; use float32 or float16")
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self.grid = grid
        self.band_names = band_names
        self.dtype = dtype
        self.tags = tags or {}
        self.dataset = None

    def __enter__(self) -> AtomicGeoTIFF:
        byte = self.dtype == "uint8"
        options = dict(tiled=True, blockxsize=BLOCK, blockysize=BLOCK, compress="deflate", predictor=2 if byte else 3,
                       interleave="band", bigtiff="IF_SAFER", num_threads="ALL_CPUS")  # compress on every core
        if self.dtype == "float16":
            options["nbits"] = 16
        if byte and len(self.band_names) == 3:
            options["photometric"] = "RGB"
        self.dataset = rasterio.open(
            self.tmp, "w", driver="GTiff", width=self.grid.width, height=self.grid.height,
            count=len(self.band_names), dtype="uint8" if byte else "float32", crs=self.grid.crs.to_wkt(),
            transform=self.grid.transform, nodata=BYTE_NODATA if byte else NODATA, **options)
        for i, name in enumerate(self.band_names, start=1):
            self.dataset.set_band_description(i, name)
        self.dataset.update_tags(**self.tags)
        return self

    def write(self, window, data: np.ndarray, valid: np.ndarray) -> None:
        """Write float32 (bands, rows, cols) ``data``; pixels where ``valid`` is False become nodata (in place)."""
        data[:, ~valid] = self.dataset.nodata
        try:
            self.dataset.write(data.astype(self.dataset.dtypes[0], copy=False), window=window)
        except (rasterio.errors.RasterioError, OSError) as err:  # RasterioIOError is an OSError
            raise self._write_failed(err) from None

    def _write_failed(self, err: Exception) -> GeoEmbedError:
        """The error to report when GDAL cannot write: a full disk says so and what to do."""
        free = shutil.disk_usage(self.tmp.parent).free
        size = estimated_bytes(self.grid, len(self.band_names), self.dtype)
        if free < min(size, 256 << 20):
            return GeoEmbedError(f"cannot write {self.path}: the disk holding {self.path.parent} is full "
                                 f"({free / 1e6:.1f} MB free; the raster is up to {size / 1e9:.2f} GB before "
                                 "compression). Free some space or choose another folder; nothing was written.")
        return GeoEmbedError(f"cannot write {self.path}: {err}")

    def update_tags(self, tags: dict[str, str]) -> None:
        """Add dataset tags, e.g. a report known only once every window is written."""
        self.dataset.update_tags(**tags)

    def __exit__(self, exc_type, exc, tb) -> None:
        ok = exc_type is None
        try:
            self.dataset.close()
        except (rasterio.errors.RasterioError, OSError) as err:  # RasterioIOError is an OSError
            ok = False
            raise self._write_failed(err) from None
        except BaseException:
            ok = False
            raise
        finally:
            if ok:
                os.replace(self.tmp, self.path)
                Path(f"{self.path}.aux.xml").unlink(missing_ok=True)  # stale statistics of an older file
            else:
                for leftover in (self.tmp, Path(f"{self.tmp}.aux.xml")):
                    leftover.unlink(missing_ok=True)
