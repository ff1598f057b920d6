"""Read the GeoEmbed model store directly (no backend call): ``<home>/models/<id>/card.json``.

home = $GEOEMBED_HOME, else the settings dialog's store, else $XDG_DATA_HOME/geoembed, else
~/.local/share/geoembed (as in geoembed.store).
"""

import json
import os
import re

from qgis.core import QgsApplication

from .settings import backend_environment

DEFAULT_MODEL = "geoclip"
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def store_home():
    """$GEOEMBED_HOME, else the store chosen in the settings dialog, else the backend's default."""
    if os.environ.get("GEOEMBED_HOME"):
        return os.path.expanduser(os.environ["GEOEMBED_HOME"])
    configured = backend_environment().get("GEOEMBED_HOME")
    if configured:
        return os.path.expanduser(configured)
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "geoembed")


def is_model_id(text):
    """Whether ``text`` can name a model in the store (as geoembed.store checks it)."""
    return bool(_ID.match(text or ""))


def refresh_algorithms():
    """Reload the GeoEmbed algorithms so that their Model lists show the store as it is now."""
    provider = QgsApplication.processingRegistry().providerById("geoembed")
    if provider is not None:
        provider.refreshAlgorithms()


def model_cards():
    """{id: card} for every readable card in the store (empty if there is no store)."""
    models_dir = os.path.join(store_home(), "models")
    cards = {}
    try:
        names = sorted(os.listdir(models_dir))
    except OSError:
        return cards
    for name in names:
        path = os.path.join(models_dir, name, "card.json")
        if not _ID.match(name) or not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                card = json.load(f)
        except (OSError, ValueError):
            continue
        cards[name] = card if isinstance(card, dict) else {}
    return cards


def model_ids():
    """Installed model ids, the default first; ['geoclip'] when the store is empty so the backend can explain."""
    ids = list(model_cards())
    if DEFAULT_MODEL in ids:
        ids.remove(DEFAULT_MODEL)
    return [DEFAULT_MODEL] + ids


def _spec_text(spec):
    params = ", ".join(f"{key}={value}" for key, value in spec.items() if key != "name")
    return f"{spec.get('name', '?')}({params})"


def encoder_summary(architecture):
    """One line: 'sh(degrees=10, ...) -> siren(...)' for the encoder architecture, 'geoclip(...)' otherwise."""
    params = architecture.get("params") or {}
    if architecture.get("name") == "encoder":
        return " -> ".join(_spec_text(params.get(part) or {}) for part in ("encoding", "network"))
    return _spec_text({"name": architecture.get("name"), **params})


def image_model_ids():
    """Installed models that can embed images (trained with `geoembed train`: their card has an image encoder)."""
    return [model_id for model_id, card in model_cards().items() if card.get("image_encoder")]
