"""The programme's terms: TOML as RULES.md shows it, parsed into immutable values.

A bad file is refused with a TermsError naming the field and the problem; nothing here reads
the clock: which version applies is a function of a lead's `occurred_at`.
"""

from __future__ import annotations

import bisect
import itertools
import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

BUILTIN_FREE_MAIL_DOMAINS = (
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "outlook.fr",
    "hotmail.com",
    "hotmail.fr",
    "live.com",
    "live.fr",
    "msn.com",
    "yahoo.com",
    "yahoo.fr",
    "icloud.com",
    "me.com",
    "aol.com",
    "protonmail.com",
    "proton.me",
    "gmx.*",
    "orange.fr",
    "wanadoo.fr",
    "free.fr",
    "sfr.fr",
    "laposte.net",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DURATION = re.compile(
    r"^P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


class TermsError(ValueError):
    """The terms file is unusable; the message names the field and the problem."""


@dataclass(frozen=True, slots=True)
class TermsVersion:
    """One version of the T&C: amounts, caps, commitment and timing."""

    version: str
    effective_from: int
    reward_amount_cents: int
    currency: str
    max_rewards: int
    max_total_cents: int
    min_commitment_months: int
    payout_window_ms: int
    hold_ms: int


@dataclass(frozen=True, slots=True)
class Programme:
    """The programme: when it runs, its terms versions in order, and the free-mail domains."""

    starts_at: int
    ends_at: int | None
    versions: tuple[TermsVersion, ...]
    free_mail_domains: tuple[str, ...] = BUILTIN_FREE_MAIL_DOMAINS
    # Look-up indexes derived from the fields above (every event consults them).
    _froms: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, TermsVersion] = field(init=False, repr=False, compare=False)
    _exact_free: frozenset[str] = field(init=False, repr=False, compare=False)
    _prefix_free: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_froms", tuple(v.effective_from for v in self.versions))
        object.__setattr__(self, "_by_name", {v.version: v for v in self.versions})
        patterns = [d.lower() for d in self.free_mail_domains]
        # gmx.* covers gmx.de, gmx.net, gmx.co.uk ...
        object.__setattr__(self, "_exact_free", frozenset(p for p in patterns if "*" not in p))
        prefixes = tuple(p[:-1] for p in patterns if p.endswith(".*"))
        object.__setattr__(self, "_prefix_free", prefixes)

    def version_at(self, at: int) -> TermsVersion | None:
        """The version with the latest effective_from <= `at` (R11), None before the first."""
        index = bisect.bisect_right(self._froms, at)
        return self.versions[index - 1] if index else None

    def version_named(self, name: str) -> TermsVersion:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no terms version {name!r}") from None

    def is_free_mail(self, domain: str) -> bool:
        """True for a webmail domain, which never makes two people one organization (R3)."""
        domain = domain.lower()
        return domain in self._exact_free or domain.startswith(self._prefix_free)


def parse_duration(text: str, field: str) -> int:
    """ISO-8601 duration of days, hours, minutes and seconds (P30D, PT2S) in milliseconds."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise TermsError(
            f"{field}: {text!r} is not an ISO-8601 duration of days, hours, minutes or seconds "
            "(e.g. P30D, PT2S)"
        )
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    return int(timedelta(**parts) / timedelta(milliseconds=1))


def _require(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in table:
        raise TermsError(f"{where}{key}: missing")
    value = table[key]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TermsError(f"{where}{key}: expected {names}, got {type(value).__name__} {value!r}")
    return value


def _instant(table: dict[str, Any], key: str, where: str) -> int:
    value = _require(table, key, datetime, where)
    if value.tzinfo is None:
        raise TermsError(f"{where}{key}: needs a UTC offset, e.g. 2021-06-21T00:00:00Z")
    return int((value - _EPOCH) / timedelta(milliseconds=1))


def _positive(value: int, field: str) -> int:
    if value <= 0:
        raise TermsError(f"{field}: must be positive, got {value}")
    return value


def parse_terms(text: str, source: str = "terms") -> Programme:
    """Parse a terms file's text; TermsError names the field at fault."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TermsError(f"{source}: not valid TOML: {exc}") from None
    program = _require(doc, "program", dict, "")
    starts_at = _instant(program, "starts_at", "program.")
    ends_at = _instant(program, "ends_at", "program.") if "ends_at" in program else None
    if ends_at is not None and ends_at <= starts_at:
        raise TermsError("program.ends_at: must be after program.starts_at")

    raw_versions = _require(doc, "terms", list, "")
    if not raw_versions:
        raise TermsError("terms: at least one [[terms]] version is needed")
    versions = []
    for i, table in enumerate(raw_versions):
        where = f"terms[{i}]."
        if not isinstance(table, dict):
            raise TermsError(f"terms[{i}]: expected a table")
        payout = parse_duration(
            _require(table, "payout_window", str, where), f"{where}payout_window"
        )
        hold = parse_duration(_require(table, "hold", str, where), f"{where}hold")
        if hold >= payout:
            raise TermsError(f"{where}hold: must be shorter than payout_window")
        currency = _require(table, "currency", str, where)
        if len(currency) != 3 or not currency.isupper():
            raise TermsError(f"{where}currency: expected an ISO-4217 code like EUR")
        versions.append(
            TermsVersion(
                version=_require(table, "version", str, where),
                effective_from=_instant(table, "effective_from", where),
                reward_amount_cents=_positive(
                    _require(table, "reward_amount_cents", int, where),
                    f"{where}reward_amount_cents",
                ),
                currency=currency,
                max_rewards=_positive(
                    _require(table, "max_rewards", int, where), f"{where}max_rewards"
                ),
                max_total_cents=_positive(
                    _require(table, "max_total_cents", int, where), f"{where}max_total_cents"
                ),
                min_commitment_months=_positive(
                    _require(table, "min_commitment_months", int, where),
                    f"{where}min_commitment_months",
                ),
                payout_window_ms=payout,
                hold_ms=hold,
            )
        )
    versions.sort(key=lambda v: v.effective_from)
    for earlier, later in itertools.pairwise(versions):
        if earlier.effective_from == later.effective_from:
            raise TermsError(
                f"terms: versions {earlier.version!r} and {later.version!r} overlap "
                "(same effective_from)"
            )
    names = [v.version for v in versions]
    if len(set(names)) != len(names):
        raise TermsError("terms: version names must be unique")
    if versions[0].effective_from > starts_at:
        raise TermsError(
            "terms[0].effective_from: no terms version is in effect at program.starts_at"
        )
    free_mail = BUILTIN_FREE_MAIL_DOMAINS
    if "free_mail_domains" in doc:
        listed = _require(doc, "free_mail_domains", list, "")
        if not all(isinstance(d, str) and d for d in listed):
            raise TermsError("free_mail_domains: expected a list of domain strings")
        free_mail = tuple(d.lower() for d in listed)
    return Programme(
        starts_at=starts_at, ends_at=ends_at, versions=tuple(versions), free_mail_domains=free_mail
    )


def load_terms(path: Path | None = None) -> Programme:
    """The terms at `path`, or the 2021-06-21 terms shipped with the package."""
    if path is None:
        text = resources.files("streams.rules").joinpath("default_terms.toml").read_text()
        return parse_terms(text, "default terms")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TermsError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_terms(text, str(path))
