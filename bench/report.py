"""The printed table and the PNG chart (throughput over time, latency histograms)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _lat(block: dict[str, Any] | None) -> str:
    if not block:
        return "-"
    lat = block["latency_s"]
    return f"{lat['median']:.2f} / {lat['p95']:.2f} / {lat['max']:.2f}" if lat["median"] is not None else "-"


def _rates(burst: dict) -> str:
    rates = burst.get("all_images_per_s", [burst["images_per_s"]])
    return " / ".join(f"{r:.1f}" for r in rates)


def table(results: dict[str, Any]) -> str:
    lines = []
    for m in results["models"]:
        bare = m["bare"]["images_per_s"]
        threads = m["bare"]["threads"]
        p = m["pipeline"]
        r = m["ratios"]
        burst = m["burst"]
        rows = [
            ("model", f"{m['model']} (pipeline backend: {m['pipeline_backend']})"),
            *[
                (
                    f"bare {label if 'process' in label else f'{label}, {threads} threads'}, batch {b} (img/s)",
                    f"{rate:.2f}  ({m['bare']['cpu_ms_per_image'][label][b]:.0f} CPU ms/img)",
                )
                for label, rates in bare.items()
                for b, rate in rates.items()
            ],
            ("single image through the model (s)", f"{m['single_image_s']:.3f}"),
            ("original per-image (img/s)", f"{m['original']['images_per_s']:.2f}  [{m['original']['how']}]")
            if "original" in m
            else ("original", "skipped"),
            (
                f"pipeline burst of {burst['images']} (img/s)",
                f"{burst['images_per_s']:.2f}  ({p['workers']} workers x {p['threads_per_worker']} threads"
                f"{', fork' if p['fork'] else ', in-process'}, batch {p.get('batch', 1)}; {burst['rows']} rows, {len(burst['failures'])} failures;"
                f" uploads {burst['uploads_per_s']:.1f}/s; median of {_rates(burst)})",
            ),
            (
                "pipeline after the last upload returned (img/s; / bare best)",
                f"{burst['after_uploads_images_per_s']:.2f}; {r['after_uploads_over_bare_best']:.2f}"
                if burst.get("after_uploads_images_per_s")
                else "-",
            ),
            ("pipeline / bare (best backend, best batch)", f"{r['pipeline_over_bare_best']:.2f}"),
            ("pipeline / bare (same backend)", f"{r['pipeline_over_bare_same_backend']:.2f}"),
            ("pipeline / original", f"{r['pipeline_over_original']:.2f}" if "pipeline_over_original" in r else "-"),
            ("burst latency median / p95 / max (s)", _lat(burst)),
            (
                f"steady {m.get('steady', {}).get('rate_per_s', '-')}/s latency median / p95 / max (s)",
                _lat(m.get("steady")),
            ),
            (
                "steady median under 1.5 x single + 0.3 s",
                f"{r.get('steady_latency_met', '-')} (budget {r.get('steady_latency_budget_s', '-')} s)",
            ),
            (
                "burst CPU ms per image, by process",
                ", ".join(f"{k} {v:.0f}" for k, v in burst.get("cpu_ms_per_image", {}).items()),
            ),
            (
                "CPU ms per image: bare best / pipeline workers / pipeline all processes",
                f"{m['cpu']['bare_best_ms_per_image']:.0f} / {m['cpu']['pipeline_workers_ms_per_image']:.0f} / "
                f"{m['cpu']['pipeline_total_ms_per_image']:.0f}"
                + (
                    f"  (original {m['cpu']['original_ms_per_image']:.0f})"
                    if "original_ms_per_image" in m["cpu"]
                    else ""
                ),
            ),
            ("peak RSS MiB", ", ".join(f"{k} {v:.0f}" for k, v in m["peak_rss_mib"].items() if v is not None)),
            (
                "load average (before / at burst / after)",
                f"{m['load_before']} / {m['load_at_burst']} / {m['load_after']}",
            ),
        ]
        width = max(len(k) for k, _ in rows)
        lines += [f"{k.ljust(width)}  {v}" for k, v in rows] + [""]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = results["models"]
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 4 * len(models)), squeeze=False)
    for row, m in zip(axes, models, strict=True):
        times = m["burst"]["row_times_s"]
        ax = row[0]
        if times:
            bins = range(0, int(max(times)) + 2)
            ax.hist(times, bins=list(bins), color="tab:blue", alpha=0.6, label="rows per second")
            ax2 = ax.twinx()
            ax2.plot(times, range(1, len(times) + 1), color="tab:orange", label="rows (cumulative)")
            ax2.set_ylabel("rows (cumulative)")
        for label, rate, style in (
            ("bare best", max(v for rates in m["bare"]["images_per_s"].values() for v in rates.values()), "--"),
            ("original", m.get("original", {}).get("images_per_s"), ":"),
        ):
            if rate:
                ax.axhline(rate, linestyle=style, color="gray", label=f"{label} {rate:.1f}/s")
        ax.set_title(f"{m['model']}: burst of {m['burst']['images']} ({m['burst']['images_per_s']:.1f} img/s)")
        ax.set_xlabel("seconds since the first upload")
        ax.set_ylabel("rows per second")
        ax.legend(loc="upper left", fontsize=8)
        ax = row[1]
        ax.hist(m["burst"]["latencies_s"], bins=30, alpha=0.6, label="burst")
        if "steady" in m:
            ax.hist(m["steady"]["latencies_s"], bins=30, alpha=0.8, label=f"steady {m['steady']['rate_per_s']}/s")
        ax.set_title(f"{m['model']}: upload-to-row latency")
        ax.set_xlabel("seconds")
        ax.set_ylabel("images")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
