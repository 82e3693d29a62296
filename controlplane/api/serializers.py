"""Inputs of the API, checked before anything acts; they also describe the OpenAPI document."""

from __future__ import annotations

from rest_framework import serializers

RANGES = ("15m", "1h", "24h", "7d")


class ClassificationQuery(serializers.Serializer):
    # A field named like Field.label: DRF collects declared fields off the class, so it shadows nothing at run time.
    label = serializers.CharField(required=False, allow_blank=True, max_length=200)  # type: ignore[assignment]
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    range = serializers.ChoiceField(choices=RANGES, required=False, help_text="Uploads within the last ...")
    since = serializers.DateTimeField(required=False, help_text="Uploads at or after (ISO 8601; UTC if no offset).")
    until = serializers.DateTimeField(required=False, help_text="Uploads before.")
    before = serializers.DateTimeField(required=False, help_text="The window ends here: the previous window's start.")
    page = serializers.IntegerField(required=False, min_value=1, max_value=10_000, default=1)


class FailureQuery(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    page = serializers.IntegerField(required=False, min_value=1, max_value=10_000, default=1)


class ObjectQuery(serializers.Serializer):
    name = serializers.CharField(max_length=1024, help_text="An object name, or an RQ job id (classify-...).")


class ObjectRef(serializers.Serializer):
    bucket = serializers.CharField(max_length=222)
    name = serializers.CharField(max_length=1024)
    generation = serializers.IntegerField(min_value=0)


class RequeueAll(serializers.Serializer):
    expected = serializers.IntegerField(
        min_value=0, help_text="How many open failures you saw; refused (409) if the number changed."
    )


class ReconcileInput(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="Only objects created since (UTC).")


class ApplyInput(serializers.Serializer):
    checksum = serializers.CharField(max_length=64, help_text="The checksum of the plan you reviewed (GET infra/plan).")


class DestroyInput(serializers.Serializer):
    checksum = serializers.CharField(max_length=64)
    confirmation = serializers.CharField(max_length=200, help_text="The words the destroy plan asks for.")
    delete_data = serializers.BooleanField(default=False)


class UploadInput(serializers.Serializer):
    images = serializers.ListField(child=serializers.FileField(), min_length=1)
    folder = serializers.CharField(required=False, allow_blank=True, max_length=900)
