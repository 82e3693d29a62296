"""The delivery contract, counted object by object: every key has exactly one row or exactly one failure."""

from __future__ import annotations

from collections.abc import Iterable

from classifier import ledger, outcomes
from classifier.cloud import gcs
from classifier.config import Config


def upload(cfg: Config, name: str, data: bytes, content_type: str | None = None) -> str:
    generation = gcs.upload(cfg, name=name, data=data, content_type=content_type)
    return ledger.object_key(cfg.bucket, name, generation)


def found(cfg: Config, keys: Iterable[str]) -> dict[str, list[str]]:
    """Key -> every outcome BigQuery holds for it (a doubled row shows as ["row", "row"])."""
    keys = list(keys)
    held = outcomes.find(cfg, keys) if keys else {}
    return {k: sorted(held.get(k, [])) for k in keys}


def violations(cfg: Config, expected: dict[str, str]) -> dict[str, tuple[str, list[str]]]:
    """Keys whose BigQuery outcomes are not exactly [expected]; expected is "row", "failure:<code>" or "failure:*"."""
    held = found(cfg, expected)
    bad = {}
    for key, want in expected.items():
        got = held[key]
        ok = len(got) == 1 and (got[0] == want or (want == "failure:*" and got[0].startswith("failure:")))
        if not ok:
            bad[key] = (want, got)
    return bad


def settled(cfg: Config, keys: Iterable[str]) -> bool:
    """Every key has at least one outcome (then `violations` tells whether it is exactly one)."""
    return all(found(cfg, keys).values())


def drain(cfg: Config) -> None:
    """Run every queued job in this process (a burst SimpleWorker), as a worker would."""
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    from classifier.queue import queue

    q = queue(cfg)
    SimpleWorker([q], connection=q.connection, serializer=JSONSerializer).work(burst=True, logging_level="WARNING")


QUIET_BUCKET = "sightline-test-quiet"


def quiet(cfg: Config) -> Config:
    """The same pipeline with a bucket nobody is notified about: in-process tests run their jobs themselves, and
    the session's real listener and worker (when a test started them) never race them for these objects."""
    import dataclasses

    gcs.bucket_create(cfg, QUIET_BUCKET)
    return dataclasses.replace(cfg, bucket=QUIET_BUCKET)
