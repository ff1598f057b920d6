"""The training report of a probe: JSON, Markdown with the metrics table, and a PNG (confusion matrices or
predicted against true values), random and spatial-block cross-validation side by side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import write_text, write_via
from ..markdown_html import markdown_to_html

SPLITS = {"random": "random folds", "block": "spatial blocks"}
HEAD_NOTES = {
    "linear head": "logistic / ridge regression on the standardised embedding and coordinate features",
    "mlp head": "one hidden layer on the same inputs (on small training sets, several averaged)",
    "knn head": "k nearest neighbours on unit vectors (no embedding)",
    "kernel head": "kernel ridge regression on embedding similarity + geographic proximity (+ latitude)",
}


def _table(report: dict) -> list[str]:
    validation = report["validation"]
    keys = ("accuracy", "macro_f1") if report["task"] == "classification" else ("r2", "mae", "max_error")
    names = {"accuracy": "accuracy", "macro_f1": "macro-F1", "r2": "R²", "mae": "MAE", "max_error": "max error"}
    header = [f"{names[k]} ({SPLITS[s]})" for k in keys for s in validation]
    lines = ["| model | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    labels = {"probe": "**probe (blend)**", **{b: f"baseline: {d}" for b, d in report["baselines"].items()}}
    for who in validation["random"]:
        cells = [f"{validation[s][who][k]:.3f}" if k in ("accuracy", "macro_f1", "r2")
                 else f"{validation[s][who][k]:.4g}" for k in keys for s in validation]
        lines.append(f"| {labels.get(who, who)} | " + " | ".join(cells) + " |")
    return lines


def _head(head: dict) -> str:
    settings = ", ".join(f"{k} {v}" for k, v in head.items()
                         if k not in ("kind", "weight", "inner_cv_score", "fit_seconds"))
    return f"{head['kind']} (weight {head['weight']:.2f}; {settings})"


def _smoothing(radii: list[float]) -> str:
    """How the probe's embeddings were smoothed, in words."""
    parts = [f"smoothed over {km:g} km" if km else "not smoothed" for km in radii]
    text = " and ".join(parts) + (", side by side" if len(parts) > 1 else "")
    return text + (" (a smoothed embedding is the mean over each place and 6 places around it)" if any(radii) else "")


def _markdown(report: dict, png: str) -> str:
    model, classes = report["model"], report["classes"]
    heads = ", ".join(_head(h) for h in report["probe"]["heads"])
    lines = [
        f"# Probe report: {report['label']}", "",
        f"- task: {report['task']}" + (f", {len(classes)} classes" if classes else "")
        + (f", values in {report['units']}" if report.get("units") else ""),
        f"- labelled points: {report['samples']:,}",
        f"- model: {model['model_id']} ({model['dimension']}-d, weights sha256 {model['weights_sha256']})",
        f"- embeddings: {_smoothing(report['probe'].get('smooth_km', [0.0]))}",
        f"- heads and blend weights (chosen by inner cross-validation): {heads}",
        f"- final fit: {report['fit_seconds']:.1f} s", "",
        f"## Cross-validation: {report['folds']} random folds and {report['folds']} folds of spatial blocks of "
        f"{report['block_km']:g} km", "",
        "Every number is measured on points held out from training. With spatial blocks no training point lies "
        "in a test point's block, so they show how the probe extrapolates to unseen areas. Baselines use the "
        "raw coordinates only: they show what the embedding adds. Heads are the probe's parts, each alone.", "",
        *_table(report), "",
        *[f"- {name}: {note}" for name, note in HEAD_NOTES.items() if name in report["validation"]["random"]], "",
        f"![cross-validated predictions]({png})", ""]
    return "\n".join(lines)


def _plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = report["plots"]
    fig, axes = plt.subplots(1, len(plots), figsize=(6.5 * len(plots), 6), squeeze=False)
    for ax, (split, data) in zip(axes[0], plots.items()):
        if data["kind"] == "confusion":
            matrix = np.asarray(data["matrix"], np.float64)
            shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
            ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
            ticks = np.arange(len(data["classes"]))
            ax.set_xticks(ticks, data["classes"], rotation=90, fontsize=7)
            ax.set_yticks(ticks, data["classes"], fontsize=7)
            ax.set_xlabel("predicted class")
            ax.set_ylabel("true class (rows sum to 1)")
        else:
            truth, predicted = np.asarray(data["truth"]), np.asarray(data["predicted"])
            ax.scatter(truth, predicted, s=4, alpha=0.4)
            low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
            ax.plot([low, high], [low, high], color="black", linewidth=0.8)
            label = report["label"] + (f" ({report['units']})" if report.get("units") else "")
            ax.set_xlabel(f"true {label}")
            ax.set_ylabel(f"predicted {label}")
        ax.set_title(f"cross-validated, {SPLITS[split]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_table(report: dict) -> str:
    """The metrics table (probe, heads and baselines; random folds beside spatial blocks) in Markdown."""
    return "\n".join(_table(report))


def write_report(report: dict, directory: str | Path, stem: str) -> list[Path]:
    """Write ``<stem>_report.json``, ``.md``, ``.png`` and ``.html`` into ``directory``; returns their paths."""
    directory = Path(directory)
    paths = [directory / f"{stem}_report.{ext}" for ext in ("json", "md", "png", "html")]
    write_text(paths[0], json.dumps(report, indent=1) + "\n")
    write_via(paths[2], lambda tmp: _plot(report, tmp))
    markdown = _markdown(report, paths[2].name)
    write_text(paths[1], markdown)
    write_text(paths[3], markdown_to_html(markdown, f"GeoEmbed probe report: {report['label']}"))
    return paths
