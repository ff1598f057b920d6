"""geoembed:modelcard - a model's card (dimension, encoder, source, licence, checksums) as an HTML table."""

import html
import json

from qgis.core import QgsProcessingException, QgsProcessingOutputString, QgsProcessingParameterFileDestination

from . import model_store
from .algorithm_base import GeoEmbedAlgorithm
from .model_store import DEFAULT_MODEL, encoder_summary, model_cards


def _rows(entry, prefix=""):
    """(dotted key, value) for every leaf of a nested card entry."""
    for key, value in entry.items():
        if isinstance(value, dict) and value:
            yield from _rows(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def card_html(card):
    """The card as a standalone HTML page: a summary line, then one table row per entry."""
    rows = [("encoder", encoder_summary(card.get("architecture") or {})), *_rows(card)]
    cells = "\n".join(f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>"
                      for key, value in rows)
    title = html.escape(f"{card.get('id', '?')}: {card.get('name', '')}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n"
            "<style>th{text-align:left;vertical-align:top;padding-right:1em}td{font-family:monospace}</style>"
            f"</head><body>\n<h2>{title}</h2>\n<table>\n{cells}\n</table>\n</body></html>\n")


class ModelCardAlgorithm(GeoEmbedAlgorithm):
    OUTPUT = "OUTPUT"
    CARD = "CARD"
    GROUP = ("models", "Models")

    def name(self):
        return "modelcard"

    def displayName(self):
        return "Show model card"

    def tags(self):
        return ["model", "card", "metadata", "provenance", "licence", "dimension", "encoder", "source"]

    def shortDescription(self):
        return "Shows what a model is: dimension, encoder, resolution, source, licence and checksums."

    def shortHelpString(self):
        return (
            "Writes the card of a model from the GeoEmbed model store as an HTML table (open it from the Results "
            "Viewer) and returns it as JSON text: dimension, encoder (positional encoding and network with their "
            "parameters), resolution, input order, source file and sha256, licence and training data.<br><br>"
            "<b>Example</b>:<br>"
            "<code>qgis_process run geoembed:modelcard -- MODEL=geoclip OUTPUT=geoclip_card.html</code>"
        )

    def initAlgorithm(self, config=None):
        self.add_model_parameter()
        self._add(QgsProcessingParameterFileDestination(self.OUTPUT, "Model card", "HTML files (*.html)"),
                  "Where to write the card as an HTML page.")
        self.addOutput(QgsProcessingOutputString(self.CARD, "Model card (JSON)"))

    def processAlgorithm(self, parameters, context, feedback):
        model = self.parameterAsEnumString(parameters, self.MODEL, context) or DEFAULT_MODEL
        card = model_cards().get(model)
        if card is None:
            raise QgsProcessingException(
                f"MODEL: model {model!r} is not installed in the model store {model_store.store_home()}; install "
                "the default with `geoembed models install-default` or import one with Import model.")
        card = {"id": model, **card}
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        with open(output, "w", encoding="utf-8") as f:
            f.write(card_html(card))
        feedback.pushInfo(f"{model}: {card.get('dimension', '?')}-d, "
                          f"{encoder_summary(card.get('architecture') or {})}")
        return {self.OUTPUT: output, self.CARD: json.dumps(card, indent=2)}
