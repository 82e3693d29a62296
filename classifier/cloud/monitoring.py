"""Cloud Monitoring, read over its REST API with Application Default Credentials (no extra client library).

Only one figure is read: the subscription's backlog. Pub/Sub's own API does not report it; Cloud Monitoring does
(`subscription/num_undelivered_messages`, sampled every minute, visible a few minutes late). The emulator has no
Monitoring at all, so locally there is no figure, and the dashboard says so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from classifier.config import Config

API = "https://monitoring.googleapis.com/v3"
SCOPE = "https://www.googleapis.com/auth/monitoring.read"
METRIC = "pubsub.googleapis.com/subscription/num_undelivered_messages"
LOOKBACK = timedelta(minutes=10)
TIMEOUT_S = 5.0


class Unavailable(Exception):
    """No backlog figure: on the local stack, or Monitoring refused or did not answer (the reason says which)."""


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def undelivered_messages(cfg: Config) -> int:
    """Messages waiting in the pipeline's subscription, as Cloud Monitoring last sampled them."""
    if cfg.local:
        raise Unavailable("the Pub/Sub emulator reports no backlog (Cloud Monitoring exists only on GCP)")
    import google.auth
    from google.auth.exceptions import GoogleAuthError
    from google.auth.transport.requests import AuthorizedSession

    now = datetime.now(UTC)
    params = {
        "filter": f'metric.type="{METRIC}" AND resource.labels.subscription_id="{cfg.subscription}"',
        "interval.startTime": _stamp(now - LOOKBACK),
        "interval.endTime": _stamp(now),
    }
    try:
        credentials, _ = google.auth.default(scopes=[SCOPE])
        response = AuthorizedSession(credentials).get(
            f"{API}/projects/{cfg.project}/timeSeries", params=params, timeout=TIMEOUT_S
        )
    except (GoogleAuthError, OSError) as exc:
        raise Unavailable(f"Cloud Monitoring did not answer: {exc}") from exc
    if response.status_code != 200:
        raise Unavailable(f"Cloud Monitoring answered {response.status_code} (needs roles/monitoring.viewer)")
    series = response.json().get("timeSeries", [])
    points = series[0].get("points", []) if series else []
    if not points:
        raise Unavailable(f"no sample of {METRIC} in the last {LOOKBACK.seconds // 60} minutes")
    return int(points[0]["value"]["int64Value"])  # newest first
