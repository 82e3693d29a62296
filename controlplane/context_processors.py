from typing import Any

from django.http import HttpRequest

from controlplane import selectors


def sightline(request: HttpRequest) -> dict[str, Any]:
    return {"sightline": selectors.pipeline_identity()}
