"""The training report: loss and validation curves as a PNG beside the run's metrics.json."""

from __future__ import annotations

from pathlib import Path

from ..atomic import write_via

FILE = "training.png"


def _plot(metrics: dict, title: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    history = metrics["validation"]
    fig, (loss_ax, km_ax) = plt.subplots(1, 2, figsize=(12, 4.8))
    curve = metrics["loss_curve"]
    loss_ax.plot(curve["step"], curve["loss"], color="tab:blue", label="training loss")
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("contrastive loss")
    loss_ax.set_title("training loss")
    steps = [h["step"] for h in history]
    km_ax.plot(steps, [h["median_km"] for h in history], "o-", color="tab:red", label="median error (km)")
    km_ax.set_xlabel("step")
    km_ax.set_ylabel("validation median geolocation error (km)", color="tab:red")
    if history and min(h["median_km"] for h in history) > 0:  # errors fall from thousands to hundreds of km
        km_ax.set_yscale("log")
        km_ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))  # 200, 300, 500, 1,000
        km_ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
        km_ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    share = km_ax.twinx()
    share.plot(steps, [h["within_750_km"] for h in history], "s--", color="tab:green", label="% within 750 km")
    share.plot(steps, [h["retrieval_top1"] for h in history], "^:", color="tab:purple",
               label="retrieval top-1 (%)")
    share.set_ylabel("percent")
    share.set_ylim(0, 100)
    km_ax.set_title(f"validation on held-out blocks (gallery of {history[-1]['gallery']:,} points)"
                    if history else "validation")
    lines = km_ax.get_legend_handles_labels()[0] + share.get_legend_handles_labels()[0]
    km_ax.legend(lines, [ln.get_label() for ln in lines], loc="upper right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plot(metrics: dict, title: str, run_dir: Path) -> Path:
    path = Path(run_dir) / FILE
    write_via(path, lambda tmp: _plot(metrics, title, tmp))
    return path
