"""The terms file (RULES.md, "The terms file"): parsing, versions (R11) and refusals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.contracts import parse_time
from streams.rules import TermsError, load_terms, parse_terms
from streams.rules.terms import parse_duration

VALID = """
free_mail_domains = ["gmail.com", "gmx.*"]

[program]
starts_at = 2021-06-21T00:00:00Z
ends_at = 2027-01-01T00:00:00Z

[[terms]]
version = "2021-06-21"
effective_from = 2021-06-21T00:00:00Z
reward_amount_cents = 5000
currency = "EUR"
max_rewards = 50
max_total_cents = 250000
min_commitment_months = 12
payout_window = "P30D"
hold = "P14D"

[[terms]]
version = "2026-03-01"
effective_from = 2026-03-01T00:00:00Z
reward_amount_cents = 6000
currency = "EUR"
max_rewards = 40
max_total_cents = 240000
min_commitment_months = 12
payout_window = "P30D"
hold = "PT2S"
"""


def test_the_shipped_default_is_the_2021_06_21_terms() -> None:
    programme = load_terms()
    (version,) = programme.versions
    assert version.version == "2021-06-21"
    assert (version.reward_amount_cents, version.max_rewards, version.max_total_cents) == (
        5000,
        50,
        250000,
    )
    assert version.min_commitment_months == 12
    assert version.hold_ms == 14 * 86_400_000
    assert version.payout_window_ms == 30 * 86_400_000
    assert programme.ends_at is None
    assert programme.is_free_mail("gmail.com")
    assert programme.is_free_mail("GMX.de")
    assert programme.is_free_mail("laposte.net")


def test_r11_version_in_effect_is_the_latest_effective_from_at_or_before() -> None:
    programme = parse_terms(VALID)

    def version_at(iso: str) -> str | None:
        found = programme.version_at(parse_time(iso))
        return found.version if found else None

    assert version_at("2026-02-28T23:59:59Z") == "2021-06-21"
    assert version_at("2026-03-01T00:00:00Z") == "2026-03-01"
    assert version_at("2020-01-01T00:00:00Z") is None
    assert programme.ends_at == parse_time("2027-01-01T00:00:00Z")
    assert programme.free_mail_domains == ("gmail.com", "gmx.*")
    assert not programme.is_free_mail("laposte.net")  # the file's list replaces the built-in


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P30D", 30 * 86_400_000),
        ("P14D", 14 * 86_400_000),
        ("PT2S", 2000),
        ("P1DT2H3M4S", 93_784_000),
    ],
)
def test_durations(text: str, expected: int) -> None:
    assert parse_duration(text, "hold") == expected


@pytest.mark.parametrize("text", ["P1M", "P1Y", "30 days", "P", "PT", "P1DT"])
def test_durations_other_than_days_hours_minutes_seconds_are_refused(text: str) -> None:
    with pytest.raises(TermsError, match="hold"):
        parse_duration(text, "hold")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("max_rewards = 50\n", ""), "terms[0].max_rewards: missing"),
        (("max_rewards = 50", 'max_rewards = "50"'), "terms[0].max_rewards: expected int"),
        (("reward_amount_cents = 5000", "reward_amount_cents = true"), "expected int"),
        (('hold = "P14D"', 'hold = "P30D"'), "terms[0].hold: must be shorter than payout_window"),
        (
            ("ends_at = 2027-01-01T00:00:00Z", "ends_at = 2020-01-01T00:00:00Z"),
            "program.ends_at: must be after program.starts_at",
        ),
        (
            ("effective_from = 2026-03-01T00:00:00Z", "effective_from = 2021-06-21T00:00:00Z"),
            "overlap",
        ),
        (("starts_at = 2021-06-21T00:00:00Z", "starts_at = 2021-06-21T00:00:00"), "UTC offset"),
        (("[program]", "[programme]"), "program: missing"),
        (('currency = "EUR"', 'currency = "euro"'), "currency"),
        (("max_total_cents = 250000", "max_total_cents = -1"), "must be positive"),
        (('version = "2026-03-01"', 'version = "2021-06-21"'), "unique"),
        (("[[terms]]", "[[terms]"), "not valid TOML"),
    ],
)
def test_a_bad_terms_file_is_refused_naming_the_field(
    change: tuple[str, str], message: str
) -> None:
    old, new = change
    assert old in VALID
    with pytest.raises(TermsError, match=re.escape(message)):
        parse_terms(VALID.replace(old, new, 1))


def test_a_programme_starting_before_any_terms_version_is_refused() -> None:
    text = VALID.replace("starts_at = 2021-06-21T00:00:00Z", "starts_at = 2020-01-01T00:00:00Z")
    with pytest.raises(TermsError, match=r"no terms version is in effect at program\.starts_at"):
        parse_terms(text)


def test_an_unreadable_file_is_a_terms_error(tmp_path: Path) -> None:
    with pytest.raises(TermsError, match="cannot read"):
        load_terms(tmp_path / "missing.toml")
