"""A batching worker's batch: several queued jobs' images downloaded and classified in one forward pass, and their
rows written in one BigQuery insert, before each job runs through rq on its own (docs/delivery.md, Batched insert).

The worker (classifier.worker.ClassifierWorker) creates one `Batch` per batch and hands it to each of the batch's
jobs on their `BatchJob`; nothing of a batch outlives it or lives in a module.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis import Redis
from rq.job import Job

from classifier import delivery, ledger, stages
from classifier.cloud import bigquery, gcs
from classifier.config import Config
from classifier.delivery import ObjectRef
from classifier.logsafe import shown

if TYPE_CHECKING:
    import torch

    from classifier.model import Classifier, Prediction

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """What was prepared for a batch's jobs, by ledger key: blobs downloaded, predictions made, rows written.

    A job takes its entry or, when there is none, does the work itself and meets its own error.
    """

    blobs: dict[str, gcs.Blob] = field(default_factory=dict)
    predictions: dict[str, list[Prediction]] = field(default_factory=dict)
    written: dict[str, tuple[list[Prediction], str]] = field(default_factory=dict)  # key -> (predictions, model)
    model_name: str = ""
    inference_ms: float | None = None  # each image's share of the batch's forward pass

    def blob(self, key: str) -> gcs.Blob | None:
        return self.blobs.get(key)

    def take_predictions(self, key: str) -> list[Prediction] | None:
        """This key's predictions, once: its job is their only reader."""
        prediction = self.predictions.pop(key, None)
        if prediction is not None:
            self.blobs.pop(key, None)
        return prediction

    def take_written(self, key: str) -> tuple[list[Prediction], str] | None:
        """(predictions, model) when `write_rows` wrote this key's row; once."""
        return self.written.pop(key, None)

    def prefetch(self, cfg: Config, redis: Redis, clf: Classifier, objects: Sequence[ObjectRef]) -> int:
        """Download and preprocess each object, then run one forward pass for all of them.

        Anything that goes wrong for one object is left for its own job to meet and record (per-image failure
        isolation): this only keeps what succeeded. Returns how many predictions are ready.
        """
        self.model_name = clf.name
        tensors: dict[str, torch.Tensor] = {}
        with stages.stage(stages.LEDGER):
            done = ledger.outcome_get_many(redis, [obj.key for obj in objects])  # one round trip for the batch
        for obj in objects:
            key = obj.key
            if done[key] is not None:
                continue
            try:
                with stages.stage(stages.DOWNLOAD):
                    self.blobs[key] = gcs.download(
                        cfg, bucket=obj.bucket, name=obj.name, generation=obj.generation, created=obj.event_time is None
                    )
                tensors[key] = clf.preprocess(self.blobs[key].data)
            except Exception as exc:  # its job meets the same error and records it
                log.debug("prefetch of %s left to its job: %s", shown(key), shown(exc))
        if tensors:
            try:
                started = time.perf_counter()
                self.predictions.update(zip(tensors, clf.predict(list(tensors.values())), strict=True))
                self.inference_ms = (time.perf_counter() - started) * 1000 / len(tensors)
            except Exception:
                log.exception("batched inference failed; each job classifies its own image")
        return len(self.predictions)

    def write_rows(self, cfg: Config, redis: Redis, objects: Sequence[ObjectRef]) -> int:
        """Write the rows of the prefetched classifications in ONE BigQuery insert; returns how many were written.

        Each object whose image the batch classified is written under the same rules as `delivery.write_once`, key
        by key: a claim, no outcome yet, then the `inserting` marker, the insert (row id = key) and the outcome.
        Anything that `write_once` would handle specially is simply left to the object's own job, which then runs
        `write_once` as usual: a key whose claim is held elsewhere, a key that already has an outcome or an
        `inserting` marker (an earlier attempt died mid-write), and every key while the ledger is untrusted.
        Failure records are never batched. If the insert (or anything else here) fails, this raises: the markers
        stay, so each job asks BigQuery whether its row landed before inserting it itself (the crash path of
        `write_once`). A job whose key was written here returns its row result (see `delivery.classify`).
        """
        token = f"local:batch-{uuid.uuid4().hex}"  # never taken over: expires after CLAIM_TTL_S if this process dies
        claimed: list[str] = []
        # The ledger's batch forms: each step is one Redis round trip for the whole batch, not one per key.
        try:
            with stages.stage(stages.LEDGER):
                if not ledger.trusted(redis):
                    return 0
                candidates = self._claim_rows(redis, objects, token, claimed)
                if not candidates:
                    return 0
                ledger.inserting_mark_many(redis, [key for key, _, _ in candidates])
            with stages.stage(stages.INSERT):
                bigquery.insert_rows(
                    cfg, cfg.table_id, [row for _, row, _ in candidates], row_ids=[k for k, _, _ in candidates]
                )
                # The live figures count the live model's rows only: a reprocessed row's upload may be days old.
                live = [row for key, row, _ in candidates if ledger.split_model(key)[1] is None]
                delivery.record_stats(redis, rows=live, failures=[])
            with stages.stage(stages.LEDGER):
                ledger.outcome_set_rows(redis, [key for key, _, _ in candidates])
                for key, _, predictions in candidates:
                    self.written[key] = (predictions, self.model_name)
                    self.blobs.pop(key, None)
                    self.predictions.pop(key, None)
            return len(candidates)
        finally:
            with stages.stage(stages.LEDGER):
                ledger.claim_release_many(redis, claimed, token)

    def _claim_rows(
        self, redis: Redis, objects: Sequence[ObjectRef], token: str, claimed: list[str]
    ) -> list[tuple[str, dict[str, Any], list[Prediction]]]:
        """(key, row, predictions) of each classified object whose write this batch may do; `claimed` collects every
        claim taken, for the caller to release. A key whose claim is held elsewhere (a live holder: its job waits for
        it as usual), that has an outcome, or an `inserting` marker is left to its job."""
        classified = {
            obj.key: obj for obj in objects if obj.key in self.blobs and self.predictions.get(obj.key) is not None
        }
        if not classified:
            return []
        claimed += ledger.claim_many(redis, list(classified), token, delivery.CLAIM_TTL_S)
        if not claimed:
            return []
        outcomes, inserting = ledger.outcome_get_many(redis, claimed), ledger.inserting_many(redis, claimed)
        candidates: list[tuple[str, dict[str, Any], list[Prediction]]] = []
        for key in claimed:
            if outcomes[key] is not None or inserting[key]:
                continue
            predictions = self.predictions[key]
            with stages.stage(stages.ROWS):
                row = delivery.classification_row(
                    classified[key], self.blobs[key], predictions, self.model_name, self.inference_ms
                )
            candidates.append((key, row, predictions))
        return candidates


class BatchJob(Job):
    """An rq job that may run as part of a batch: the worker sets `batch` before running it."""

    batch: Batch | None = None

    def perform(self) -> Any:
        with stages.stage(stages.JOB):
            return super().perform()
