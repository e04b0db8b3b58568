"""Plots for the report, as inline base64 PNG (matplotlib, Agg backend, no files, no network)."""

from __future__ import annotations

import base64
import io

import numpy as np

__all__ = ["calibration_plot", "depth_plot", "diffusion_plot", "to_data_uri"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "autospec"})
    return plt


def to_data_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def calibration_plot(cell: dict) -> str:
    """Histogram of the p-values and their QQ plot against U(0, 1)."""
    plt = _pyplot()
    p = np.sort(np.asarray(cell["evidence"]["p_values"], dtype=float))
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 2.6))
    left.hist(p, bins=10, range=(0, 1), color="#4c72b0", edgecolor="white")
    left.axhline(len(p) / 10, color="#c44e52", lw=1, ls="--", label="uniform")
    left.set_xlabel("p-value")
    left.set_ylabel("runs")
    left.legend(loc="upper right", fontsize=7)
    expected = (np.arange(1, len(p) + 1) - 0.5) / max(len(p), 1)
    right.plot(expected, p, ".", color="#4c72b0", ms=4)
    right.plot([0, 1], [0, 1], color="#c44e52", lw=1)
    right.set_xlabel("uniform quantile")
    right.set_ylabel("p-value quantile")
    fig.suptitle(f"{cell['sampler']} on {cell['target']}: KS p = {cell['evidence']['p_value']:.3g}", fontsize=9)
    return to_data_uri(fig)


def depth_plot(cells: list[dict]) -> str:
    """log-log mean rounds and queries per sample versus n, fitted exponents and theory slopes."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.0))
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    for index, cell in enumerate(cells):
        ev = cell["evidence"]
        ns = np.asarray(ev["ns"], dtype=float)
        color = colors[index % len(colors)]
        for ax, key, prefix in ((axes[0], "mean_rounds", "rounds"), (axes[1], "mean_queries", "queries")):
            values = np.asarray(ev[key], dtype=float)
            slope, intercept = ev[f"{prefix}_exponent"], ev[f"{prefix}_intercept"]
            ax.loglog(ns, values, "o", color=color, ms=4)
            if ev.get(f"{prefix}_ci"):  # 95% intervals of the means
                low, high = np.asarray(ev[f"{prefix}_ci"], dtype=float).T
                ax.errorbar(ns, values, yerr=[values - low, high - values], fmt="none", ecolor=color, lw=1)
            ax.loglog(ns, np.exp(intercept) * ns**slope, "-", color=color, lw=1,
                      label=f"{cell['sampler']}: n^{slope:.2f}")
            theory = ev.get("theory_exponent")
            if prefix == "rounds" and theory is not None:
                ax.loglog(ns, values[0] * (ns / ns[0]) ** theory, ":", color=color, lw=1, label=f"theory n^{theory:.2f}")
    axes[0].set_title("adaptive rounds per sample")
    axes[1].set_title("oracle queries per sample")
    for ax in axes:
        ax.set_xlabel("n")
        ax.legend(fontsize=6, loc="upper left")
    return to_data_uri(fig)


def diffusion_plot(cells: list[dict]) -> str:
    """Histograms of one output coordinate of each diffusion sampler."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 3.0))
    exact = None
    for cell in cells:
        hist = cell["evidence"].get("histogram")
        if not hist:
            continue
        edges = np.asarray(hist["edges"])
        counts = np.asarray(hist["counts"], dtype=float)
        density = counts / max(counts.sum(), 1) / np.diff(edges)
        ax.step(edges[:-1], density, where="post", label=cell["sampler"], lw=1)
        exact = exact or hist.get("chain_normal")
    if exact:
        mean, var = exact
        grid = np.linspace(mean - 4 * var**0.5, mean + 4 * var**0.5, 200)
        ax.plot(grid, np.exp(-(grid - mean) ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var), "k--", lw=1.5,
                label="exact K-step chain law")
    ax.set_xlabel("coordinate 0 of the output")
    ax.set_ylabel("density")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return to_data_uri(fig)
