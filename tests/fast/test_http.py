"""classifier/cloud/http.py: the environment read once, unless a proxy needs requests' per-request lookup."""

from __future__ import annotations

import pytest
import requests

from classifier.cloud import http

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*PROXY_VARIABLES, "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_a_proxy_the_environment_is_read_once(no_proxy_env: pytest.MonkeyPatch) -> None:
    no_proxy_env.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/the-operators-bundle.pem")
    session = http.read_environment_once(requests.Session())
    assert session.trust_env is False
    assert session.verify == "/etc/ssl/certs/the-operators-bundle.pem"  # still the bundle the variable names
    # Later changes are no longer looked up per request (that lookup is the CPU this saves).
    no_proxy_env.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    settings = session.merge_environment_settings("https://storage.googleapis.com/x", {}, None, None, None)
    assert settings["proxies"] == {}


def test_without_a_bundle_variable_requests_default_verification_stays(no_proxy_env: pytest.MonkeyPatch) -> None:
    session = http.read_environment_once(requests.Session())
    assert session.trust_env is False and session.verify is True


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"])
def test_with_a_proxy_requests_keeps_looking_per_request(no_proxy_env: pytest.MonkeyPatch, variable: str) -> None:
    no_proxy_env.setenv(variable, "http://proxy.internal:3128")
    session = http.read_environment_once(requests.Session())
    assert session.trust_env is True
    settings = session.merge_environment_settings("https://storage.googleapis.com/x", {}, None, None, None)
    assert "proxy.internal" in str(settings["proxies"])
