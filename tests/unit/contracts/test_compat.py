"""The BACKWARD_TRANSITIVE gate: `referral-rewards schemas check`."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams.cli import main
from streams.contracts.registry import default_schema_dir


def test_the_repository_schemas_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "check"]) == 0
    assert "BACKWARD_TRANSITIVE ok" in capsys.readouterr().out


def _with_v2(tmp_path: Path, topic: str, change: Callable[[dict[str, Any]], None]) -> Path:
    root = tmp_path / "schemas"
    shutil.copytree(default_schema_dir(), root)
    v2 = copy.deepcopy(json.loads((root / topic / "v1.avsc").read_text()))
    change(v2)
    (root / topic / "v2.avsc").write_text(json.dumps(v2))
    return root


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


@pytest.mark.parametrize(
    ("topic", "change", "expected"),
    [
        (
            "client-signed",
            lambda s: s["fields"].append({"name": "channel", "type": "string"}),
            "client-signed: v2 cannot read v1 records: field channel: added without a default",
        ),
        (
            "lead-submitted",
            lambda s: _field(s, "referrer")["type"]["fields"][1]["type"]["symbols"].remove(
                "PARTNER"
            ),
            "lead-submitted: v2 cannot read v1 records: field referrer.kind: "
            "enum symbol PARTNER removed",
        ),
        (
            "invoice-paid",
            lambda s: _field(s, "amount_cents").update(type="int"),
            "invoice-paid: v2 cannot read v1 records: field amount_cents: "
            "type changed from long to int",
        ),
    ],
)
def test_incompatible_versions_fail_naming_topic_versions_and_field(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    topic: str,
    change: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    root = _with_v2(tmp_path, topic, change)
    assert main(["schemas", "check", "--dir", str(root)]) == 1
    assert expected in capsys.readouterr().err


def test_compatible_additions_pass(tmp_path: Path) -> None:
    def add_optional_and_promote(s: dict[str, Any]) -> None:
        s["fields"].append({"name": "channel", "type": ["null", "string"], "default": None})
        _field(s, "commitment_months")["type"] = "long"  # int -> long is a promotion

    root = _with_v2(tmp_path, "client-signed", add_optional_and_promote)
    assert main(["schemas", "check", "--dir", str(root)]) == 0
