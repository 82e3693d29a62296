"""Schema diffing, field by field: what BigQuery changes in place and what needs a re-created table."""

from __future__ import annotations

from classifier.cloud import bigquery
from controlplane.infra.schema import SchemaDiff, schema_diff

F = bigquery.SchemaField


def test_the_same_schema_is_no_drift_whatever_the_type_alias_or_an_unset_mode():
    desired = [F("n", "INTEGER", mode="NULLABLE"), F("x", "FLOAT"), F("ok", "BOOLEAN"), F("r", "RECORD", fields=[])]
    live = [F("n", "INT64"), F("x", "FLOAT64", mode="NULLABLE"), F("ok", "BOOL"), F("r", "STRUCT", fields=[])]
    assert schema_diff(desired, live).empty


def test_the_application_schemas_match_themselves():
    assert schema_diff(bigquery.CLASSIFICATIONS_SCHEMA, bigquery.CLASSIFICATIONS_SCHEMA) == SchemaDiff()
    assert schema_diff(bigquery.FAILURES_SCHEMA, bigquery.FAILURES_SCHEMA) == SchemaDiff()


def test_a_missing_nullable_or_repeated_field_is_added_in_place():
    desired = [F("a", "STRING"), F("tags", "STRING", mode="REPEATED")]
    diff = schema_diff(desired, [F("a", "STRING")])
    assert diff == SchemaDiff(additive=("missing field tags (STRING, REPEATED): will be added",))


def test_a_missing_required_field_cannot_be_added():
    diff = schema_diff([F("a", "STRING", mode="REQUIRED")], [])
    assert diff.destructive == ("missing field a (STRING, REQUIRED): a REQUIRED field cannot be added",)
    assert not diff.additive


def test_required_relaxed_to_nullable_is_additive_and_the_reverse_is_destructive():
    relaxed = schema_diff([F("a", "STRING")], [F("a", "STRING", mode="REQUIRED")])
    assert relaxed.additive == ("field a: mode REQUIRED, wanted NULLABLE: will be relaxed",) and not relaxed.destructive
    tightened = schema_diff([F("a", "STRING", mode="REQUIRED")], [F("a", "STRING")])
    assert tightened.destructive == ("field a: mode NULLABLE, wanted REQUIRED",)


def test_a_changed_type_and_an_extra_field_are_destructive():
    diff = schema_diff([F("a", "INTEGER")], [F("a", "STRING"), F("old", "STRING")])
    assert diff.destructive == (
        "field a: type STRING, wanted INTEGER",
        "extra field old (STRING, NULLABLE): not in the desired schema",
    )


def test_nested_fields_are_compared_with_their_path():
    desired = [F("c", "RECORD", mode="REPEATED", fields=[F("label", "STRING"), F("score", "FLOAT")])]
    live = [F("c", "RECORD", mode="REPEATED", fields=[F("label", "STRING"), F("score", "STRING"), F("x", "STRING")])]
    diff = schema_diff(desired, live)
    assert diff.destructive == (
        "field c.score: type STRING, wanted FLOAT",
        "extra field c.x (STRING, NULLABLE): not in the desired schema",
    )
    assert schema_diff([F("c", "RECORD", fields=[F("new", "STRING")])], [F("c", "RECORD", fields=[])]).additive == (
        "missing field c.new (STRING, NULLABLE): will be added",
    )
