"""POST JSON to a webhook: the one place the alerts open an outside connection over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

TIMEOUT_S = 10


class DeliveryError(Exception):
    pass


def post_json(url: str, body: dict[str, Any]) -> None:
    if not url.startswith(("https://", "http://")):
        raise DeliveryError(f"not an http(s) URL: {url[:60]!r}")
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "sightline-alerts"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # the scheme is checked above
            response.read(1024)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} from the webhook") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DeliveryError(f"{exc.__class__.__name__}: {exc}") from None
