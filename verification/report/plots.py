"""Plots for the report, as inline base64 PNG (matplotlib, Agg backend, no files, no network)."""

from __future__ import annotations

import base64
import io

import numpy as np

__all__ = ["calibration_figure", "calibration_plot", "depth_figure", "depth_plot", "diffusion_figure", "diffusion_plot",
           "to_data_uri"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9.5, "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "autospec"})
    return plt


def to_data_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


VERDICT_COLOURS = {"pass": "#1f7a3a", "caught": "#1f7a3a", "flagged": "#1f7a3a", "fail": "#a11d21", "error": "#a11d21",
                   "missed": "#a66f00", "undetected": "#a66f00"}


def calibration_plot(cell: dict, level: float = 0.99) -> str:
    return to_data_uri(calibration_figure(cell, level))


def calibration_figure(cell: dict, level: float = 0.99):
    """Histogram of the p-values with the band uniform p-values stay in, and their QQ plot with the KS band.

    Band on the histogram: every bin count inside it with probability ``level``
    under uniform p-values (binomial quantiles, Bonferroni over the bins).
    Band on the QQ plot: the KS acceptance region at the same level.
    """
    from scipy import stats

    plt = _pyplot()
    ev = cell["evidence"]
    p = np.sort(np.asarray(ev["p_values"], dtype=float))
    runs, bins = len(p), 10
    fig, (left, right) = plt.subplots(1, 2, figsize=(6.4, 3.0))  # two side by side on a laptop, at full size
    left.hist(p, bins=bins, range=(0, 1), color="#4c72b0", edgecolor="white", zorder=2)
    low, high = stats.binom.interval(1 - (1 - level) / bins, runs, 1 / bins)
    left.axhspan(low, high, color="#c44e52", alpha=0.15, lw=0, zorder=1,
                 label=f"{level:.0%} band, uniform ({low:.0f} to {high:.0f} per bin)")
    left.axhline(runs / bins, color="#c44e52", lw=1, ls="--", zorder=3)
    left.set_xlabel("p-value")
    left.set_ylabel(f"runs (of {runs})")
    left.set_ylim(0, max(high * 1.35, np.histogram(p, bins=bins, range=(0, 1))[0].max() * 1.15))
    left.legend(loc="upper right", fontsize=8, framealpha=0.9)
    expected = (np.arange(1, runs + 1) - 0.5) / max(runs, 1)
    right.plot(expected, p, ".", color="#4c72b0", ms=3.5)
    right.plot([0, 1], [0, 1], color="#c44e52", lw=1)
    if runs:
        d = stats.kstwo.ppf(level, runs)
        grid = np.linspace(0, 1, 101)
        right.fill_between(grid, np.clip(grid - d, 0, 1), np.clip(grid + d, 0, 1), color="#c44e52", alpha=0.12, lw=0,
                           label=f"KS {level:.0%} band")
        right.legend(loc="upper left", fontsize=8, framealpha=0.9)
    right.set_xlabel("uniform quantile")
    right.set_ylabel("p-value quantile")
    right.set_xlim(0, 1)
    right.set_ylim(0, 1)
    rejections = ev.get("rejections")
    interval = ev.get("binomial_interval")
    extra = f"; rejections {rejections} (allowed {interval[0]} to {interval[1]})" if rejections is not None and interval else ""
    fig.suptitle(f"{cell['sampler']} on {cell['target']}: KS p = {ev['p_value']:.3g}{extra}", fontsize=10)
    fig.tight_layout()
    return fig


def depth_plot(cells: list[dict]) -> str:
    return to_data_uri(depth_figure(cells))


def depth_figure(cells: list[dict]):
    """log-log mean rounds and queries per sample versus n (95% intervals), fitted exponents and theory slopes."""
    from matplotlib.ticker import FixedLocator, LogLocator, NullFormatter, NullLocator

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.4))
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    all_ns: set[int] = set()
    for index, cell in enumerate(cells):
        ev = cell["evidence"]
        ns = np.asarray(ev["ns"], dtype=float)
        all_ns.update(int(n) for n in ns)
        color = colors[index % len(colors)]
        for ax, key, prefix in ((axes[0], "mean_rounds", "rounds"), (axes[1], "mean_queries", "queries")):
            values = np.asarray(ev[key], dtype=float)
            slope, intercept = ev[f"{prefix}_exponent"], ev[f"{prefix}_intercept"]
            ax.plot(ns, values, "o", color=color, ms=5, zorder=3)
            if ev.get(f"{prefix}_ci"):  # 95% intervals of the means
                low, high = np.asarray(ev[f"{prefix}_ci"], dtype=float).T
                ax.errorbar(ns, values, yerr=[values - low, high - values], fmt="none", ecolor=color, lw=1, capsize=2)
            label = f"{cell['sampler']}: fit n^{slope:.2f}" if ax is axes[0] else None
            ax.plot(ns, np.exp(intercept) * ns**slope, "-", color=color, lw=1.2, label=label)
            theory = ev.get("theory_exponent")
            if prefix == "rounds" and theory is not None:
                ax.plot(ns, values[0] * (ns / ns[0]) ** theory, ":", color=color, lw=1.2, label=f"theory n^{theory:.2f}")
    ticks = sorted(all_ns)
    for ax, title in ((axes[0], "adaptive rounds per sample"), (axes[1], "oracle queries per sample")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # labels 5, 10, 20, 50...: readable
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("n (log scale)")
        ax.set_title(title, fontsize=10)
        ax.margins(x=0.08)
    # The legend below the axes: it never covers a point.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, max(len(labels), 1)), fontsize=8.5, frameon=False)
    fig.tight_layout(rect=(0, 0.06 * (1 + (len(labels) - 1) // 3), 1, 1))
    return fig


def diffusion_plot(cells: list[dict]) -> str:
    return to_data_uri(diffusion_figure(cells))


def diffusion_figure(cells: list[dict]):
    """One panel per diffusion sampler: its histogram of output coordinate 0 against the exact chain density."""
    plt = _pyplot()
    panels = [c for c in cells if c["evidence"].get("histogram")]
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.7 * columns, 2.5 * rows), sharex=True, sharey=True, squeeze=False)
    for ax, cell in zip(axes.flat, panels):
        hist = cell["evidence"]["histogram"]
        edges = np.asarray(hist["edges"])
        counts = np.asarray(hist["counts"], dtype=float)
        density = counts / max(counts.sum(), 1) / np.diff(edges)
        ax.stairs(density, edges, fill=True, color="#4c72b0", alpha=0.55)
        exact = hist.get("chain_normal")
        if exact:
            mean, var = exact
            grid = np.linspace(mean - 4 * var**0.5, mean + 4 * var**0.5, 200)
            ax.plot(grid, np.exp(-(grid - mean) ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var), "k--", lw=1.2)
        name = cell["sampler"].replace("mutant:", "mutant ")
        ax.set_title(f"{name[:34]}: {cell['verdict']}", fontsize=8.5, color=VERDICT_COLOURS.get(cell["verdict"], "#222"))
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("coordinate 0")
    for ax in axes[:, 0]:
        ax.set_ylabel("density")
    fig.tight_layout()
    return fig
