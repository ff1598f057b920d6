"""The algorithms through `qgis_process.bin`, with the plugin deployed into a temporary QGIS profile.

The backend interpreter is found through the deployed backend.json (GEOEMBED_PYTHON is unset for these runs).
"""

import json
import subprocess

import pytest

from .helpers import band_names, leftovers, open_raster, value_at


def qgis_process(env, *args, timeout=180):
    return subprocess.run([env["exe"], *args], env=env["env"], capture_output=True, text=True, timeout=timeout)


def test_algorithms_are_listed_with_help(qgis_process_env):
    listing = qgis_process(qgis_process_env, "list")
    assert listing.returncode == 0, listing.stderr
    assert "geoembed:embeddingraster" in listing.stdout and "geoembed:similarityraster" in listing.stdout
    helped = qgis_process(qgis_process_env, "help", "geoembed:similarityraster")
    assert helped.returncode == 0, helped.stderr
    for text in ("REFERENCE", "EXTENT", "TARGET_CRS", "PIXEL_SIZE", "MODEL", "DIMS", "OUTPUT", "Example"):
        assert text in helped.stdout


def test_similarity_through_qgis_process(qgis_process_env, tmp_path):
    out = tmp_path / "sim.tif"
    done = qgis_process(qgis_process_env, "--json", "run", "geoembed:similarityraster", "--",
                        "EXTENT=-10,6,30,46 [EPSG:4326]", "PIXEL_SIZE=2", "REFERENCE=-3,39 [EPSG:4326]",
                        "MODEL=geoclip", f"OUTPUT={out}")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout[done.stdout.index("{"):])["results"]
    assert results["OUTPUT"] == str(out) and results["WIDTH"] == 8 and results["BANDS"] == 1
    layer = open_raster(out)
    assert (layer.width(), layer.height(), layer.crs().authid()) == (8, 8, "EPSG:4326")
    assert band_names(layer) == ["similarity"]
    assert value_at(layer, -3, 39) == pytest.approx(1.0, abs=1e-4)
    assert value_at(layer, -1, 39) > value_at(layer, 5, 31)
    # styled when opened later, thanks to the sidecar .qml
    assert sorted(leftovers(tmp_path)) == ["sim.qml", "sim.tif"]
    assert layer.renderer().type() == "singlebandpseudocolor"


def test_embedding_through_qgis_process(qgis_process_env, tmp_path):
    out = tmp_path / "emb.tif"
    done = qgis_process(qgis_process_env, "run", "geoembed:embeddingraster", "--",
                        "EXTENT=3800000,3900000,2800000,2900000 [EPSG:3035]", "TARGET_CRS=EPSG:3857",
                        "PIXEL_SIZE=20000", "DIMS=4", f"OUTPUT={out}")
    assert done.returncode == 0, done.stdout + done.stderr
    layer = open_raster(out)
    assert layer.crs().authid() == "EPSG:3857"
    assert layer.bandCount() == 4 and band_names(layer) == ["pca_000", "pca_001", "pca_002", "pca_003"]
    assert layer.width() >= 5 and layer.height() >= 5
    assert "PREVIEW" not in done.stdout  # the optional preview is not written unless asked for


@pytest.mark.parametrize("parameter, args", [
    ("PIXEL_SIZE", ["EXTENT=0,4,40,44 [EPSG:4326]", "PIXEL_SIZE=-1", "REFERENCE=1,41 [EPSG:4326]"]),
    ("REFERENCE", ["EXTENT=0,4,40,44 [EPSG:4326]", "PIXEL_SIZE=1", "REFERENCE=1,95 [EPSG:4326]"]),
])
def test_bad_input_through_qgis_process(qgis_process_env, tmp_path, parameter, args):
    done = qgis_process(qgis_process_env, "run", "geoembed:similarityraster", "--", *args,
                        f"OUTPUT={tmp_path / 'out.tif'}")
    assert done.returncode != 0
    assert parameter in done.stdout + done.stderr
    assert leftovers(tmp_path) == []


def test_training_runs_in_the_foreground_with_progress(qgis_process_env, tmp_path):
    """qgis_process on a server: Train location encoder runs to the end with progress and installs the model."""
    from .helpers import blue_marble

    env = {**qgis_process_env, "env": {**qgis_process_env["env"], "GEOEMBED_HOME": str(tmp_path / "home")}}
    done = qgis_process(env, "run", "geoembed:trainencoder", "--", f"RASTERS={blue_marble(tmp_path)}",
                        "MODEL_ID=server-tiny", "SAMPLES=300", "PATCH_SIZE=16", "DIMENSION=8", "DEGREES=4",
                        "EPOCHS=1", "BATCH_SIZE=64", f"RUN_DIR={tmp_path / 'run'}", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "step " in done.stdout and "ETA" in done.stdout  # the trainer's progress reached the console
    assert (tmp_path / "home" / "models" / "server-tiny" / "image_encoder.safetensors").is_file()
    assert (tmp_path / "run" / "training.png").is_file()
