"""Live figures, recorded by the workers as they write: rows and failures per minute and the upload-to-row latency
as a histogram per minute, in Redis. The dashboard and /metrics read these instead of scanning BigQuery.

Per minute: `sightline:stats:<minute>` is a hash of counters (`rows`, `failures`, `lat_sum_ms`, `b<i>` per
latency bucket), kept seven hours (the objective's longest burn window is six). Per hour: `sightline:stats:h:<hour>`,
the same counters, kept HOUR_KEEP_DAYS days: the objective's 30-day window reads these, never the table.
`sightline:stats:total` holds the same counters since the Redis began, for the Prometheus counter and histogram.
`sightline:stats:counted-since` says from when the counters hold every row and failure written (set once, at the
first record): a lost Redis restarts the counts at zero, as a restarted exporter's would, and the objective says
that it counts only since then (`window_counts`).

The newest rows themselves, as written, are kept in `sightline:stats:recent-rows` (a sorted set scored by
`processed_at`, capped at RECENT_CAP): the dashboard's live list (page 1 of the last day, unfiltered) is read from
it, so a refresh makes no BigQuery query (see `recent_rows`).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis

from classifier import ledger

PREFIX = "sightline:stats:"
TOTAL_KEY = PREFIX + "total"
KEEP_S = 7 * 3600
HOUR_PREFIX = PREFIX + "h:"
# The objective's window (SLO_WINDOW_DAYS, 30 by default) and a margin: 35 x 24 small hashes, about 0.5 MB.
HOUR_KEEP_DAYS = 35
HOUR_KEEP_S = HOUR_KEEP_DAYS * 86_400
COUNTED_SINCE_KEY = PREFIX + "counted-since"
# From when the per-hour counters are whole because they were filled from the tables (`hours_fill`).
HOURS_SINCE_KEY = PREFIX + "hours-since"
# A worker's clock a little ahead of the web's stamps rows in its future: the windows count them (as the list's).
AHEAD = timedelta(minutes=5)
# Upper bounds in seconds: fine enough for p50/p95 by interpolation inside a bucket (the last is open-ended).
BUCKETS_S = (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1800, 3600)


def minute_of(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(second=0, microsecond=0)


def _key(minute: datetime) -> str:
    return f"{PREFIX}{minute.strftime('%Y%m%d%H%M')}"


def hour_of(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_key(hour: datetime) -> str:
    return f"{HOUR_PREFIX}{hour.strftime('%Y%m%d%H')}"


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed is not None and parsed.tzinfo is None else parsed


def parse_time(value: Any) -> datetime | None:
    """A time as a row holds it (a datetime, or ISO text as the workers write it), timezone-aware."""
    return _parse(value)


def record(redis: Redis, *, rows: Iterable[dict[str, Any]] = (), failures: Iterable[dict[str, Any]] = ()) -> None:
    """Count written rows (with their upload-to-row latency) and failure records, in one round trip; keep the
    rows among the newest (RECENT_KEY)."""
    rows = list(rows)  # read twice: counted, then kept
    counts: dict[str, dict[str, float]] = {}

    def add(minute: datetime, field: str, value: float) -> None:
        for key in (_key(minute), _hour_key(minute), TOTAL_KEY):
            bucket = counts.setdefault(key, {})
            bucket[field] = bucket.get(field, 0) + value

    for row in rows:
        done = _parse(row.get("processed_at")) or datetime.now(UTC)
        add(minute_of(done), "rows", 1)
        upload = _parse(row.get("upload"))
        if upload is not None:
            latency = max(0.0, (done - upload).total_seconds())
            add(minute_of(done), f"b{bisect.bisect_left(BUCKETS_S, latency)}", 1)
            add(minute_of(done), "lat_sum_ms", round(latency * 1000))
    for failure in failures:
        add(minute_of(_parse(failure.get("failed_at")) or datetime.now(UTC)), "failures", 1)
    if not counts:
        return
    recent = _recent_members(rows)
    with redis.pipeline(transaction=False) as pipe:
        # Before the counts: a reader that sees counts sees the time from which they are whole.
        pipe.set(COUNTED_SINCE_KEY, repr(datetime.now(UTC).timestamp()), nx=True)
        for key, fields in counts.items():
            for field, value in fields.items():
                pipe.hincrby(key, field, int(value))
            if key.startswith(HOUR_PREFIX):
                pipe.expire(key, HOUR_KEEP_S)
            elif key != TOTAL_KEY:
                pipe.expire(key, KEEP_S)
        if recent:
            _recent_add(pipe, recent)
        pipe.execute()


def _counts(raw: Mapping[bytes | str, bytes | str]) -> dict[str, int]:
    return {ledger.text(k): int(v) for k, v in raw.items()}


def percentile(histogram: list[int], pct: float) -> float | None:
    """The pct-th percentile of a bucketed histogram, interpolated linearly inside its bucket."""
    total = sum(histogram)
    if not total:
        return None
    rank = total * pct / 100
    seen = 0
    for i, count in enumerate(histogram):
        if count and seen + count >= rank:
            lo = BUCKETS_S[i - 1] if i > 0 else 0.0
            hi = BUCKETS_S[i] if i < len(BUCKETS_S) else BUCKETS_S[-1] * 2
            return lo + (hi - lo) * (rank - seen) / count
        seen += count
    return BUCKETS_S[-1]


def _histogram(counts: dict[str, int]) -> list[int]:
    return [counts.get(f"b{i}", 0) for i in range(len(BUCKETS_S) + 1)]


def throughput(redis: Redis, *, minutes: int, now: datetime | None = None) -> dict[str, Any]:
    """Rows per minute, latency p50/p95 and failures over the last `minutes`, from the per-minute counters."""
    now = now or datetime.now(UTC)
    start = minute_of(now) - timedelta(minutes=minutes - 1)
    minute_list = [start + timedelta(minutes=i) for i in range(minutes)]
    with redis.pipeline(transaction=False) as pipe:
        for minute in minute_list:
            pipe.hgetall(_key(minute))
        per_minute = [_counts(raw) for raw in pipe.execute()]
    total_hist = [0] * (len(BUCKETS_S) + 1)
    series: list[dict[str, Any]] = []
    for minute, counts in zip(minute_list, per_minute, strict=True):
        hist = _histogram(counts)
        total_hist = [a + b for a, b in zip(total_hist, hist, strict=True)]
        series.append(
            {"minute": minute, "count": counts.get("rows", 0), "p50": percentile(hist, 50), "p95": percentile(hist, 95)}
        )
    rows = sum(int(s["count"]) for s in series)
    return {
        "minutes": minutes,
        "series": series,
        "rows": rows,
        "per_minute": rows / minutes,
        "last_minute": series[-1]["count"] if series else 0,
        "p50": percentile(total_hist, 50),
        "p95": percentile(total_hist, 95),
        "failed": sum(c.get("failures", 0) for c in per_minute),
    }


def within_fields(within_s: float) -> list[str]:
    """The histogram fields whose rows were surely within `within_s` (every bucket whose upper bound is not above
    it): exact when `within_s` is one of BUCKETS_S, as SLO_LATENCY_S should be; otherwise a lower bound."""
    return [f"b{i}" for i, bound in enumerate(BUCKETS_S) if bound <= within_s]


def _stamp(raw: Any) -> datetime | None:
    """A moment these keys store (a UNIX time as text), or None where none was stored."""
    return datetime.fromtimestamp(float(raw), UTC) if raw is not None else None


def counted_since(redis: Redis) -> datetime | None:
    """From when the counters hold every row and failure the workers recorded; None before the first record."""
    return _stamp(redis.get(COUNTED_SINCE_KEY))


def hours_filled_since(redis: Redis) -> datetime | None:
    """From when the per-hour counters were filled from the tables (`hours_fill`); None if they never were."""
    return _stamp(redis.get(HOURS_SINCE_KEY))


def window_counts(
    redis: Redis, *, windows_s: list[int], within_s: float, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Per window (seconds back from now, whole minutes up to KEEP_S, whole hours beyond): rows, rows surely
    within `within_s` of their upload ("good"), failures, and from when the counters hold every one of them
    (`counted_since`, None when nothing was ever recorded) with `complete` when that is before the window began.

    A window ends with the current minute (or hour) and spans as many as it holds: 5 minutes are the current one
    and the 4 before, as `throughput` counts them; 30 days are 720 hours. It also counts rows stamped up to AHEAD
    later than this clock (a worker's clock a little ahead). One round trip for every window."""
    now = now or datetime.now(UTC)
    fields = ["rows", "failures", *within_fields(within_s)]
    plans: list[tuple[list[str], datetime, bool]] = []
    for window in windows_s:
        hourly = window > KEEP_S
        step = timedelta(hours=1) if hourly else timedelta(minutes=1)
        floor = hour_of if hourly else minute_of
        first = floor(now) - step * (max(1, -(-window // int(step.total_seconds()))) - 1)
        keys, at = [], first
        while at <= floor(now + AHEAD):
            keys.append((_hour_key if hourly else _key)(at))
            at += step
        plans.append((keys, first, hourly))
    wanted = sorted({key for keys, _, _ in plans for key in keys})
    with redis.pipeline(transaction=False) as pipe:
        pipe.get(COUNTED_SINCE_KEY)
        pipe.get(HOURS_SINCE_KEY)
        for key in wanted:
            pipe.hmget(key, fields)
        since_raw, hours_raw, *values = pipe.execute()
    sums = {key: [int(v or 0) for v in vals] for key, vals in zip(wanted, values, strict=True)}
    live = _stamp(since_raw)
    # Hours filled from the table (`hours_fill`) reach back further than the live counters: hourly windows only.
    filled = _stamp(hours_raw)
    # A window longer than the hours are kept (SLO_WINDOW_DAYS over HOUR_KEEP_DAYS - 1) is never whole.
    kept_from = hour_of(now) - timedelta(hours=HOUR_KEEP_DAYS * 24 - 1)
    out = []
    for keys, first, hourly in plans:
        since = min(d for d in (live, filled) if d is not None) if hourly and (live or filled) else live
        if hourly and since is not None:
            since = max(since, kept_from)
        out.append(
            {
                "rows": sum(sums[k][0] for k in keys),
                "good": sum(sum(sums[k][2:]) for k in keys),
                "failed": sum(sums[k][1] for k in keys),
                "counted_since": since,
                "complete": since is not None and since <= first,
            }
        )
    return out


def hours_fill(redis: Redis, hours: Mapping[datetime, Mapping[str, int]], *, since: datetime) -> None:
    """Replace the per-hour counters of `hours` (each hour's fields, as `record` names them) with counts taken from
    the tables, and say that hourly counts are whole from `since` (the first hour filled). For a Redis that lost
    its counters: the objective's 30-day window is whole again without waiting 30 days."""
    with redis.pipeline(transaction=True) as pipe:
        for hour, fields in hours.items():
            key = _hour_key(hour_of(hour))
            pipe.delete(key)
            if fields:
                pipe.hset(key, mapping={f: int(v) for f, v in fields.items()})
                pipe.expire(key, HOUR_KEEP_S)
        pipe.set(HOURS_SINCE_KEY, repr(since.timestamp()))
        pipe.execute()


def totals(redis: Redis) -> dict[str, Any]:
    """Since the Redis began: rows, failures, and the latency histogram as Prometheus wants it (cumulative)."""
    counts = _counts(redis.hgetall(TOTAL_KEY))
    hist = _histogram(counts)
    cumulative, running = [], 0
    for bound, count in zip(BUCKETS_S, hist, strict=False):
        running += count
        cumulative.append((str(float(bound)), running))
    observed = sum(hist)
    return {
        "rows": counts.get("rows", 0),
        "failures": counts.get("failures", 0),
        "buckets": [*cumulative, ("+Inf", observed)],
        "sum_s": counts.get("lat_sum_ms", 0) / 1000,
    }


# --- The newest rows, for the dashboard's live list -----------------------------------------------------------------

RECENT_KEY = PREFIX + "recent-rows"
# When the set began (epoch seconds, set once): every row recorded since is in it, unless trimmed away as one of
# the oldest. A Redis that lost its data loses both keys, and the set begins again, claiming nothing earlier.
RECENT_SINCE_KEY = PREFIX + "recent-rows:since"
# Page 1 needs 21 rows; the rest is slack for bursts and for the rows of a second model written beside the first.
RECENT_CAP = 500


def _recent_members(rows: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Each written row as JSON, scored by its processed_at (epoch seconds)."""
    members = {}
    for row in rows:
        done = _parse(row.get("processed_at"))
        if done is not None and row.get("image_name") is not None:  # a whole row, as a worker writes it
            members[json.dumps(row, sort_keys=True, default=str)] = done.timestamp()
    return members


def _recent_add(pipe: Any, members: dict[str, float]) -> None:
    # Now, not the rows' processed_at: a row recorded before a loss of Redis may have been processed later than a
    # slow one recorded after it. Every row processed from now on is recorded after now, so it is in the set.
    pipe.set(RECENT_SINCE_KEY, repr(datetime.now(UTC).timestamp()), nx=True)
    pipe.zadd(RECENT_KEY, members)
    pipe.zremrangebyrank(RECENT_KEY, 0, -(RECENT_CAP + 1))  # the lowest scores go: the oldest rows


def recent_rows(
    redis: Redis, *, start: datetime, end: datetime, limit: int
) -> tuple[list[tuple[dict[str, Any], float]], float]:
    """Up to `limit` (row, processed_at epoch) with processed_at in [start, end), newest first, and the epoch from
    which the set holds every row written (+inf when it cannot say: it proves nothing then)."""
    with redis.pipeline(transaction=False) as pipe:
        pipe.zrevrangebyscore(RECENT_KEY, f"({end.timestamp()!r}", repr(start.timestamp()), 0, limit, withscores=True)
        pipe.get(RECENT_SINCE_KEY)
        pipe.zcard(RECENT_KEY)
        pipe.zrange(RECENT_KEY, 0, 0, withscores=True)
        found, since, size, lowest = pipe.execute()
    complete_from = float(since) if since is not None else float("inf")
    if size >= RECENT_CAP and lowest:  # trimmed: rows older than the lowest kept may be gone
        complete_from = max(complete_from, float(lowest[0][1]))
    return [(json.loads(member), float(score)) for member, score in found], complete_from
