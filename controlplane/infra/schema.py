"""Table schemas compared field by field: what BigQuery can change in place (additive) and what it cannot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from classifier.cloud import bigquery

_TYPE_ALIASES = {"FLOAT64": "FLOAT", "INT64": "INTEGER", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}

Field = bigquery.SchemaField


@dataclass(frozen=True)
class SchemaDiff:
    additive: tuple[str, ...] = ()
    destructive: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.additive or self.destructive)


def _norm(f: Field) -> tuple[str, str]:
    return _TYPE_ALIASES.get(f.field_type.upper(), f.field_type.upper()), (f.mode or "NULLABLE").upper()


def _describe(f: Field) -> str:
    type_, mode = _norm(f)
    return f"{type_}, {mode}"


def _missing(want: Field, path: str) -> SchemaDiff:
    if _norm(want)[1] == "REQUIRED":
        return SchemaDiff(destructive=(f"missing field {path} ({_describe(want)}): a REQUIRED field cannot be added",))
    return SchemaDiff(additive=(f"missing field {path} ({_describe(want)}): will be added",))


def _field_diff(want: Field, have: Field, path: str) -> SchemaDiff:
    additive: list[str] = []
    destructive: list[str] = []
    (want_type, want_mode), (have_type, have_mode) = _norm(want), _norm(have)
    if want_type != have_type:
        destructive.append(f"field {path}: type {have_type}, wanted {want_type}")
    if want_mode != have_mode:
        if have_mode == "REQUIRED" and want_mode == "NULLABLE":
            additive.append(f"field {path}: mode REQUIRED, wanted NULLABLE: will be relaxed")
        else:
            destructive.append(f"field {path}: mode {have_mode}, wanted {want_mode}")
    if want_type == have_type == "RECORD":
        nested = schema_diff(want.fields, have.fields, prefix=f"{path}.")
        additive += nested.additive
        destructive += nested.destructive
    return SchemaDiff(tuple(additive), tuple(destructive))


def schema_diff(desired: Sequence[Field], live: Sequence[Field], prefix: str = "") -> SchemaDiff:
    additive: list[str] = []
    destructive: list[str] = []
    live_by_name = {f.name: f for f in live}
    for want in desired:
        path = f"{prefix}{want.name}"
        have = live_by_name.get(want.name)
        one = _missing(want, path) if have is None else _field_diff(want, have, path)
        additive += one.additive
        destructive += one.destructive
    desired_names = {f.name for f in desired}
    for have in live:
        if have.name not in desired_names:
            destructive.append(f"extra field {prefix}{have.name} ({_describe(have)}): not in the desired schema")
    return SchemaDiff(tuple(additive), tuple(destructive))
