"""The geolocation error of stored Blue Marble models under two rules: the most similar gallery point, and the
most probable place (probable_place.py: the most probability within a quarter of the resolution among the 50 most
similar points), on each model's own validation split, against the 100,000-point equal-area gallery; the latter
also with each image embedded as the mean over the flips and quarter turns it was trained with (what validation
and Geolocate images now do).

    .venv/bin/python benchmarks/place_rule_bench.py [MODEL ...]   (default: the models named in MODELS)

Models come from the training benchmark's store (train_bench.BENCH_HOME); the validation patches are sampled and
split as their training run did (the downsample of the card's training config picks the config).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
from train_bench import BENCH_HOME, CONFIG, NATIVE, split_data

MODELS = ("exp-float32-10", "exp-native-mode-10", "exp-native-mode-60", "bench-10min", "bench-60min")


def evaluate(model_id: str) -> dict:
    from geoembed.coords import great_circle_km
    from geoembed.embedder import LocationEmbedder
    from geoembed.image_embedder import ImageEmbedder
    from geoembed.probable_place import MODE_CANDIDATES, by_probability_mass, mode_radius_km
    from geoembed.training.augment import embed_symmetric
    from geoembed.training.metrics import error_summary, gallery_lonlat, top_k

    images, locations = ImageEmbedder(model_id), LocationEmbedder(model_id)
    trained = locations.card["training"]["config"]["data"]["downsample"]  # older cards lack image_encoder's
    data, _, val = split_data(NATIVE if trained == 1 else CONFIG)

    def queries(flips: bool, rotations: bool) -> torch.Tensor:
        with torch.inference_mode():  # the split's patches are normalised already: the network takes them as they are
            return torch.cat([embed_symmetric(images.network, torch.from_numpy(
                data.images[val[s:s + 512]].astype(np.float32)), flips, rotations) for s in range(0, len(val), 512)])
    gallery = gallery_lonlat(100_000)
    keys = torch.nn.functional.normalize(torch.from_numpy(locations.embed(gallery[:, 0], gallery[:, 1])), dim=-1)
    truth = data.lonlat[val]
    radius = mode_radius_km(locations.resolution_km)

    def summary(query: torch.Tensor, rule: str) -> dict:
        cosine, index = (t.numpy() for t in top_k(query, keys, MODE_CANDIDATES))
        column = np.zeros(len(index), np.int64) if rule == "most similar" else \
            by_probability_mass(gallery[index], cosine, images.temperature, radius)[:, 0]
        guess = gallery[index[np.arange(len(index)), column]]
        return error_summary(great_circle_km(guess[:, 0], guess[:, 1], truth[:, 0], truth[:, 1]))
    one = queries(False, False)
    return {"most similar": summary(one, "most similar"), "most probable": summary(one, "most probable"),
            "most probable, mean over symmetries": summary(queries(images.flips, images.rotations), "most probable")}


def main() -> None:
    os.environ.setdefault("GEOEMBED_HOME", str(BENCH_HOME))
    from geoembed.runtime import configure_threads

    configure_threads()
    for model_id in sys.argv[1:] or MODELS:
        found = evaluate(model_id)
        print(f"{model_id}: " + "; ".join(f"{rule} {m['median_km']:,.0f} km, {m['within_750_km']:.1f} % within 750 km"
                                          for rule, m in found.items()), flush=True)


if __name__ == "__main__":
    main()
