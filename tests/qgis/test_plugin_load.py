"""The plugin loads headless and registers its provider, algorithms and parameters."""

import configparser

from qgis.core import QgsApplication, QgsProcessingParameterDefinition

from .helpers import ALGORITHMS, EXAMPLE_MODELS, RASTER_ALGORITHMS, REPO


def test_provider_registers_every_algorithm(plugin):
    provider = QgsApplication.processingRegistry().providerById("geoembed")
    assert provider is not None
    assert provider.name() == "GeoEmbed"
    assert not provider.icon().isNull()
    assert {alg.id() for alg in provider.algorithms()} == ALGORITHMS | EXAMPLE_MODELS
    assert provider.supportedOutputRasterLayerExtensions() == ["tif"]


def test_every_algorithm_has_help_an_example_and_an_icon(plugin):
    registry = QgsApplication.processingRegistry()
    for alg_id in ALGORITHMS:
        alg = registry.algorithmById(alg_id)
        assert "Example" in alg.shortHelpString() and alg.shortDescription()
        assert not alg.icon().isNull()
        for p in alg.parameterDefinitions():
            assert p.help(), f"{alg_id} {p.name()} has no help"


def test_parameters_help_and_defaults(plugin):
    registry = QgsApplication.processingRegistry()
    for alg_id in RASTER_ALGORITHMS:
        alg = registry.algorithmById(alg_id)
        names = [p.name() for p in alg.parameterDefinitions()]
        expected = ["EXTENT", "TARGET_CRS", "PIXEL_SIZE", "MODEL", "DIMS", "DTYPE", "DEVICE", "EVALUATION", "TOLERANCE",
                    "OUTPUT"]
        if alg_id.endswith("similarityraster"):
            expected.insert(0, "REFERENCE")
        else:
            expected.append("PREVIEW")  # the optional PCA false-colour preview
        assert names == expected
        assert "Example" in alg.shortHelpString()
        assert not alg.icon().isNull()
        for p in alg.parameterDefinitions():
            assert p.help(), f"{alg_id} {p.name()} has no help"
        model = alg.parameterDefinition("MODEL")
        assert "geoclip" in model.options() and model.defaultValue() == "geoclip" and model.usesStaticStrings()
        assert alg.parameterDefinition("TARGET_CRS").flags() & QgsProcessingParameterDefinition.FlagOptional
        assert alg.parameterDefinition("DIMS").flags() & QgsProcessingParameterDefinition.FlagOptional
        for advanced in ("DTYPE", "DEVICE"):
            assert alg.parameterDefinition(advanced).flags() & QgsProcessingParameterDefinition.FlagAdvanced
        assert alg.parameterDefinition("DTYPE").options() == ["float32", "float16"]


def test_model_list_comes_from_the_store(plugin, tmp_path, monkeypatch):
    card = tmp_path / "models" / "mymodel" / "card.json"
    card.parent.mkdir(parents=True)
    card.write_text('{"id": "mymodel", "name": "Mine", "dimension": 16}')
    monkeypatch.setenv("GEOEMBED_HOME", str(tmp_path))
    alg = QgsApplication.processingRegistry().createAlgorithmById("geoembed:embeddingraster")
    # the default model stays listed even when it is not installed, so that the backend explains how to get it
    assert alg.parameterDefinition("MODEL").options() == ["geoclip", "mymodel"]


def test_metadata_is_complete():
    meta = configparser.ConfigParser()
    meta.read(REPO / "metadata.txt")
    general = meta["general"]
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository",
                "tracker", "homepage", "icon", "tags", "category", "experimental", "license"):
        assert general.get(key), key  # the changelog comes from CHANGELOG.md (make plugin; tests/test_package.py)
    assert general["name"] == "GeoEmbed"
    assert general["hasProcessingProvider"] == "yes"
    assert general["qgisMinimumVersion"] == "3.22"
    assert (REPO / general["icon"]).is_file()


def test_model_help_summarises_each_card(plugin, store):
    alg = QgsApplication.processingRegistry().createAlgorithmById("geoembed:embeddingraster")  # a fresh instance
    help_text = alg.parameterDefinition("MODEL").help()
    assert "geoclip (512-d" in help_text and "encoder geoclip(" in help_text and "source GeoCLIP" in help_text
