"""The HTTP sessions under the Google clients that speak JSON over HTTP (Cloud Storage, BigQuery)."""

from __future__ import annotations

import os

import requests
import requests.utils


def read_environment_once(session: requests.Session) -> requests.Session:
    """Settle once, at start-up, what requests would otherwise look up in the environment on every request.

    With `trust_env` set, requests walks every environment variable for proxy settings, reads the CA-bundle variables
    and looks for a ~/.netrc on each request: ~0.6-1 CPU ms per request measured here, paid on a worker's download
    of each image and insert of each batch, and on each dashboard query. Where no proxy is configured the answer
    never changes, so it is taken once: the CA bundle a variable names stays in use, and netrc credentials (never
    Google's) are not looked for. Where a proxy is configured, requests keeps its own per-request lookup (its
    no_proxy matching is per host).
    """
    if requests.utils.getproxies():
        return session
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and session.verify is True:
        session.verify = bundle
    session.trust_env = False
    return session
