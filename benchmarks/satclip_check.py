"""GeoEmbed's import of a SatCLIP checkpoint against SatCLIP's own location encoder, run from a copy outside the
repository (never committed).

Needs a copy of SatCLIP's ``satclip`` folder at $GEOEMBED_EXT/satclip (default /tmp/ext) whose
``positional_encoding/spherical_harmonics_ylm.py`` was generated for at least L degrees by SatCLIP's own
``spherical_harmonics_generate_ylms.py L``, and einops importable (e.g. in $GEOEMBED_EXT/site). A seeded checkpoint
laid out like SatCLIP's (tests/satclip_checkpoint.py) is loaded into SatCLIP's LocationEncoder in float64 and
imported with ``geoembed models import``; both embed the same points (uniform on the sphere, and poleward of 70
degrees), SatCLIP in one batch and also one point at a time.

    .venv/bin/python benchmarks/satclip_check.py [L]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

EXT = Path(os.environ.get("GEOEMBED_EXT", "/tmp/ext"))


def main(degrees: int = 40) -> None:
    sys.path[:0] = [str(EXT / "satclip"), str(EXT / "site"), str(Path(__file__).resolve().parents[1])]
    import location_encoder
    import positional_encoding

    from tests.satclip_checkpoint import checkpoint

    ckpt = checkpoint(seed=3, legendre_polys=degrees, capacity=256, embed_dim=256, num_hidden_layers=2)
    hp = ckpt["hyper_parameters"]
    network = location_encoder.SirenNet(dim_in=degrees ** 2, dim_hidden=hp["capacity"],
                                        num_layers=hp["num_hidden_layers"], dim_out=hp["embed_dim"])
    prefix = "model.location.nnet."
    network.load_state_dict({k.removeprefix(prefix): v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)})
    satclip = location_encoder.LocationEncoder(positional_encoding.SphericalHarmonics(legendre_polys=degrees),
                                               network).double().eval()
    rng = np.random.default_rng(0)
    lat = np.concatenate([np.degrees(np.arcsin(rng.uniform(-1, 1, 2000))), rng.uniform(70, 90, 500),
                          -rng.uniform(70, 90, 500), [90.0, -90.0, 89.99, -89.99]])
    lonlat = torch.from_numpy(np.stack([rng.uniform(-180, 180, len(lat)), lat], axis=1))
    with torch.no_grad():
        batch = satclip(lonlat).numpy()
        alone = np.concatenate([satclip(lonlat[k:k + 1]).numpy() for k in range(len(lonlat))])

    with tempfile.TemporaryDirectory() as home:
        os.environ["GEOEMBED_HOME"] = home
        from geoembed.cli import main as geoembed
        from geoembed.embedder import LocationEmbedder

        path = Path(home) / f"satclip-l{degrees}.ckpt"
        torch.save(ckpt, path)
        if geoembed(["models", "import", str(path), "--id", "satclip-check"]) != 0:
            raise SystemExit("the import failed")
        ours = LocationEmbedder("satclip-check").embed(lonlat[:, 0].numpy(), lonlat[:, 1].numpy())
    scale = max(1.0, float(np.abs(batch).max()))
    polar = np.abs(lat) >= 70
    for name, a, b in (("GeoEmbed vs SatCLIP (one batch)", ours, batch),
                       ("SatCLIP one point at a time vs one batch", alone, batch)):
        error = np.abs(a - b).max(axis=1) / scale
        print(f"{name}: max |difference| / max(1, |SatCLIP|) = {error[~polar].max():.1e} equatorward of 70 deg, "
              f"{error[polar].max():.1e} poleward")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
