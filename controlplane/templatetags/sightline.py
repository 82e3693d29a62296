"""Template pieces that several pages share: links to one object generation, its hidden form inputs, its label bars."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from django import template
from django.urls import reverse

register = template.Library()


@register.simple_tag
def object_url(view: str, bucket: str, name: str, generation: int, **extra: Any) -> str:
    """`{% object_url 'object_image' row.bucket row.image_name row.generation size='thumb' %}`; the page escapes it."""
    query = {"bucket": bucket, "name": name, "generation": generation, **extra}
    return f"{reverse(view)}?{urlencode(query)}"


@register.inclusion_tag("controlplane/_object_inputs.html")
def object_inputs(bucket: str, name: str, generation: int) -> dict[str, Any]:
    """The hidden inputs that name one object generation in a requeue or dismiss form."""
    return {"bucket": bucket, "name": name, "generation": generation}


@register.inclusion_tag("controlplane/_labels.html")
def label_bars(classifications: Iterable[dict[str, Any]] | None) -> dict[str, Any]:
    """Top-5 labels as bars; each confidence is a probability in [0, 1], shown as a whole percent. A row with no
    labels shows none (bqemulator hands back an empty REPEATED column as NULL, where BigQuery gives [])."""
    return {
        "labels": [
            {"name": c["classification"], "percent": round(c["confidence"] * 100)} for c in classifications or ()
        ]
    }


@register.simple_tag
def find_url(name: str) -> str:
    """The object page of one name: `{% find_url row.image_name %}`."""
    return f"{reverse('object_find')}?{urlencode({'name': name})}"
