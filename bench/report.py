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


Row = tuple[str, str]


def _bare_rows(m: dict[str, Any]) -> list[Row]:
    threads = m["bare"]["threads"]
    return [
        (
            f"bare {label if 'process' in label else f'{label}, {threads} threads'}, batch {b} (img/s)",
            f"{rate:.2f}  ({m['bare']['cpu_ms_per_image'][label][b]:.0f} CPU ms/img)",
        )
        for label, rates in m["bare"]["images_per_s"].items()
        for b, rate in rates.items()
    ]


def _original_row(m: dict[str, Any]) -> Row:
    if "original" not in m:
        return ("original", "skipped")
    return ("original per-image (img/s)", f"{m['original']['images_per_s']:.2f}  [{m['original']['how']}]")


def _burst_row(m: dict[str, Any]) -> Row:
    p, burst = m["pipeline"], m["burst"]
    return (
        f"pipeline burst of {burst['images']} (img/s)",
        f"{burst['images_per_s']:.2f}  ({p['workers']} workers x {p['threads_per_worker']} threads"
        f"{', fork' if p['fork'] else ', in-process'}, batch {p.get('batch', 1)}; {burst['rows']} rows, {len(burst['failures'])} failures;"
        f" uploads {burst['uploads_per_s']:.1f}/s; median of {_rates(burst)})",
    )


def _after_uploads(m: dict[str, Any]) -> str:
    if not m["burst"].get("after_uploads_images_per_s"):
        return "-"
    return f"{m['burst']['after_uploads_images_per_s']:.2f}; {m['ratios']['after_uploads_over_bare_best']:.2f}"


def _ratio_rows(r: dict[str, Any]) -> list[Row]:
    return [
        ("pipeline / bare (best backend, best batch)", f"{r['pipeline_over_bare_best']:.2f}"),
        ("pipeline / bare (same backend)", f"{r['pipeline_over_bare_same_backend']:.2f}"),
        ("pipeline / original", f"{r['pipeline_over_original']:.2f}" if "pipeline_over_original" in r else "-"),
    ]


def _latency_rows(m: dict[str, Any]) -> list[Row]:
    r = m["ratios"]
    return [
        ("burst latency median / p95 / max (s)", _lat(m["burst"])),
        (
            f"steady {m.get('steady', {}).get('rate_per_s', '-')}/s latency median / p95 / max (s)",
            _lat(m.get("steady")),
        ),
        (
            "steady median under 1.5 x single + 0.3 s",
            f"{r.get('steady_latency_met', '-')} (budget {r.get('steady_latency_budget_s', '-')} s)",
        ),
    ]


def _cpu(cpu: dict[str, Any]) -> str:
    figures = (
        f"{cpu['bare_best_ms_per_image']:.0f} / {cpu['pipeline_workers_ms_per_image']:.0f} / "
        f"{cpu['pipeline_total_ms_per_image']:.0f}"
    )
    if "original_ms_per_image" not in cpu:
        return figures
    return f"{figures}  (original {cpu['original_ms_per_image']:.0f})"


def _process_rows(m: dict[str, Any]) -> list[Row]:
    by_process = m["burst"].get("cpu_ms_per_image", {})
    return [
        ("burst CPU ms per image, by process", ", ".join(f"{k} {v:.0f}" for k, v in by_process.items())),
        ("CPU ms per image: bare best / pipeline workers / pipeline all processes", _cpu(m["cpu"])),
        ("peak RSS MiB", ", ".join(f"{k} {v:.0f}" for k, v in m["peak_rss_mib"].items() if v is not None)),
        ("load average (before / at burst / after)", f"{m['load_before']} / {m['load_at_burst']} / {m['load_after']}"),
    ]


def _profile_rows(m: dict[str, Any]) -> list[Row]:
    profile = m["burst"].get("profile")
    if not profile:
        return []
    rows: list[Row] = [("worker CPU ms per image, by stage (all workers)", "")]
    rows += [(f"  {stage}", f"{ms:.2f}") for stage, ms in profile["worker_cpu_ms_per_image"].items()]
    rows += [
        ("  workers in all", f"{profile['workers_total_ms_per_image']:.2f}"),
        (
            "worker Redis commands / round trips per image",
            f"{profile['redis_commands_per_image']} / {profile['redis_round_trips_per_image']}",
        ),
        ("emulators' CPU ms per image (Redis, Pub/Sub, GCS, BigQuery)", f"{profile['emulators_ms_per_image']}"),
        ("load average (1, 5 min) at the median burst's start / end", m["burst"].get("load", "-")),
    ]
    return rows


def _met(target: dict[str, Any], bound: str) -> str:
    return f"{target['value']} ({bound} {target[bound]}): {'met' if target['met'] else 'NOT met'}"


def _target_rows(m: dict[str, Any]) -> list[Row]:
    t = m.get("targets")
    if not t:
        return []
    rows: list[Row] = [
        (
            "TARGET worker CPU ms beyond bare (same backend)",
            f"{t['workers_cpu_ms']} - {t['bare_same_backend_cpu_ms']} = {_met(t['beyond_bare_ms'], 'max')}",
        ),
        ("TARGET worker CPU efficiency (bare / workers)", _met(t["efficiency"], "min")),
    ]
    if "original_over_workers_cpu" in t:
        rows.append(("TARGET original / workers, CPU per image", _met(t["original_over_workers_cpu"], "min")))
    if "steady_latency" in t:
        rows.append(("TARGET 1 upload/s median latency (s)", _met(t["steady_latency"], "max")))
    return rows


def _rows(m: dict[str, Any]) -> list[Row]:
    return [
        ("model", f"{m['model']} (pipeline backend: {m['pipeline_backend']})"),
        *_bare_rows(m),
        ("single image through the model (s)", f"{m['single_image_s']:.3f}"),
        _original_row(m),
        _burst_row(m),
        ("pipeline after the last upload returned (img/s; / bare best)", _after_uploads(m)),
        *_ratio_rows(m["ratios"]),
        *_latency_rows(m),
        *_process_rows(m),
        *_profile_rows(m),
        *_target_rows(m),
    ]


def _aligned(rows: list[Row]) -> list[str]:
    width = max(len(k) for k, _ in rows)
    return [f"{k.ljust(width)}  {v}" for k, v in rows]


def table(results: dict[str, Any]) -> str:
    lines: list[str] = [f"CPU: {results.get('cpu_model', '?')}, {results.get('cores', '?')} cores", ""]
    for m in results["models"]:
        lines += [*_aligned(_rows(m)), ""]
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
