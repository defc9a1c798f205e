"""The README's configuration table names every setting, with the Go Carrier's marked."""

from __future__ import annotations

import re
from pathlib import Path

from carrier_sidecar.settings import Settings, env_name

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(CARRIER_[A-Z_]+)` \| ([^|]*) \| (✓?) \|", re.MULTILINE)


def table() -> dict[str, tuple[str, bool]]:
    return {m[1]: (m[2].strip(), m[3] == "✓") for m in ROW.finditer(README.read_text())}


def test_every_setting_has_a_row() -> None:
    rows = table()
    expected = {env_name(name) for name in Settings.model_fields}
    assert set(rows) == expected


def test_go_carrier_variables_are_marked() -> None:
    rows = table()
    go = {
        env_name(name)
        for name, field in Settings.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("go")
    }
    assert len(go) == 16
    assert {name for name, (_, marked) in rows.items() if marked} == go


def test_defaults_match_the_model() -> None:
    rows = table()
    for name, field in Settings.model_fields.items():
        default, _ = rows[env_name(name)]
        if field.default is None:
            assert default == "unset", name
        else:
            parsed = Settings.from_fields(
                {"sqs_queue_name": "q", name: default.strip("`")}
            ).model_dump()[name]
            assert parsed == field.default, name
