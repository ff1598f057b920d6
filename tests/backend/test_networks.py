"""Networks, the "encoder" architecture and its round trip through the model store."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from geoembed.models import registry
from geoembed.models.networks import NETWORKS, build_network
from geoembed.store import WEIGHTS, ModelStore

LONLAT = torch.tensor([[2.35, 48.86], [151.2, -33.87], [0.0, 90.0], [-180.0, -90.0]], dtype=torch.float64)


def _architecture(encoding: dict, network: dict) -> dict:
    return {"name": "encoder", "params": {"encoding": encoding, "network": network}}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_network_shapes_and_determinism(name):
    torch.manual_seed(0)
    net = build_network({"name": name, "dim_out": 7}, dim_in=16).eval()
    x = torch.randn(5, 16)
    assert net(x).shape == (5, 7)
    assert torch.equal(net(x), net(x))


def test_siren_initialisation_bounds():
    net = build_network({"name": "siren", "dim_out": 8, "hidden": 64, "layers": 2}, dim_in=100)
    assert net.layers[0].weight.abs().max() <= 1 / 100
    assert net.layers[1].weight.abs().max() <= (6 / 64) ** 0.5
    assert net.layers[0].w0 == 30.0 and net.layers[1].w0 == 1.0


ENCODING_SPECS = [{"name": "sh", "degrees": 8}, {"name": "sh", "degrees": 4, "convention": "satclip"},
                  {"name": "rff", "frequencies": 8, "projection": "equal_earth"},
                  {"name": "spherem+", "frequency_num": 3}, {"name": "wrap"}]


@pytest.mark.parametrize("encoding", ENCODING_SPECS)
@pytest.mark.parametrize("network", ["linear", "mlp", "fcnet", "siren"])
def test_any_encoding_with_any_network(encoding, network):
    model = registry.build(_architecture(encoding, {"name": network, "dim_out": 6})).eval()
    out = model(LONLAT)
    assert out.shape == (4, 6) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_card_round_trip_through_the_store(tmp_path):
    from geoembed.embedder import LocationEmbedder

    architecture = _architecture({"name": "rff", "frequencies": 16, "sigma": 4.0, "seed": 3},
                                 {"name": "siren", "dim_out": 12, "hidden": 32})
    torch.manual_seed(1)
    model = registry.build(architecture).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / WEIGHTS))
    card = {"name": "test", "architecture": architecture, "dimension": 12,
            "input": {"order": "lon,lat", "units": "degrees", "crs": "EPSG:4326"}}
    store = ModelStore(tmp_path / "home")
    store.install("roundtrip", {WEIGHTS: tmp_path / WEIGHTS}, card)
    loaded = registry.load(store.card("roundtrip")["architecture"], store.path("roundtrip") / WEIGHTS)
    torch.testing.assert_close(loaded(LONLAT), model(LONLAT), rtol=0, atol=0)
    embedded = LocationEmbedder("roundtrip", store).embed(LONLAT[:, 0].numpy(), LONLAT[:, 1].numpy())
    torch.testing.assert_close(torch.from_numpy(embedded), model(LONLAT))


def test_mismatched_weights_are_refused(tmp_path):
    small = registry.build(_architecture({"name": "sh", "degrees": 4}, {"name": "mlp", "dim_out": 8}))
    save_file({k: v.contiguous() for k, v in small.state_dict().items()}, str(tmp_path / WEIGHTS))
    with pytest.raises(ValueError, match="(?s)do not fit architecture .encoder.*size mismatch"):
        registry.load(_architecture({"name": "sh", "degrees": 5}, {"name": "mlp", "dim_out": 8}), tmp_path / WEIGHTS)


def test_bad_network_specs():
    with pytest.raises(ValueError, match="unknown network 'transformer'"):
        build_network({"name": "transformer", "dim_out": 3}, dim_in=4)
    with pytest.raises(ValueError, match="network 'mlp'"):
        build_network({"name": "mlp", "dim_out": 3, "width": 9}, dim_in=4)
    with pytest.raises(ValueError, match="hidden"):
        build_network({"name": "siren", "dim_out": 3, "hidden": 0}, dim_in=4)
    with pytest.raises(ValueError, match="unknown encoding"):
        registry.build(_architecture({"name": "nope"}, {"name": "linear", "dim_out": 2}))
