"""Typed records of every topic, as the rules core and the shell see them.

Times are integer milliseconds since the epoch, UTC (Avro timestamp-millis); money is integer
cents. `to_avro`/`from_avro` convert to and from the plain dicts fastavro reads and writes.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, get_args, get_type_hints

from streams.plain import from_plain, to_plain


class ReferrerKind(enum.StrEnum):
    CLIENT = "CLIENT"
    INDIVIDUAL = "INDIVIDUAL"
    RESELLER = "RESELLER"
    DISTRIBUTOR = "DISTRIBUTOR"
    PARTNER = "PARTNER"


class RewardKind(enum.StrEnum):
    INVOICE_REDUCTION = "INVOICE_REDUCTION"
    GIFT_VOUCHER = "GIFT_VOUCHER"


class DecisionStatus(enum.StrEnum):
    ACCEPTED = "ACCEPTED"
    QUALIFIED = "QUALIFIED"
    EARNED = "EARNED"
    GRANTED = "GRANTED"
    REJECTED = "REJECTED"


class RejectionReason(enum.StrEnum):
    DUPLICATE_LEAD = "duplicate_lead"
    PROGRAM_NOT_STARTED = "program_not_started"
    PROGRAM_ENDED = "program_ended"
    REFERRER_EXCLUDED = "referrer_excluded"
    TERMS_NOT_ACCEPTED = "terms_not_accepted"
    REFEREE_ALREADY_KNOWN = "referee_already_known"
    SAME_ORGANIZATION = "same_organization"
    REFUSED_BY_RINGOVER = "refused_by_ringover"
    COMMITMENT_TOO_SHORT = "commitment_too_short"
    REFERRER_CAP_REACHED = "referrer_cap_reached"


@dataclass(frozen=True, slots=True)
class Referrer:
    referrer_id: str
    kind: ReferrerKind
    email: str
    reward_preference: RewardKind
    organization_id: str | None = None
    account_id: str | None = None
    terms_accepted_version: str | None = None


@dataclass(frozen=True, slots=True)
class Referee:
    email: str
    known_to_ringover: bool
    organization_id: str | None = None
    company_name: str | None = None


@dataclass(frozen=True, slots=True)
class LeadSubmitted:
    topic: ClassVar[str] = "lead-submitted"
    event_id: str
    occurred_at: int
    lead_id: str
    referrer: Referrer
    referee: Referee

    @property
    def key(self) -> str:
        return self.lead_id


@dataclass(frozen=True, slots=True)
class ClientSigned:
    topic: ClassVar[str] = "client-signed"
    event_id: str
    occurred_at: int
    lead_id: str
    account_id: str
    commitment_months: int

    @property
    def key(self) -> str:
        return self.lead_id


@dataclass(frozen=True, slots=True)
class InvoicePaid:
    topic: ClassVar[str] = "invoice-paid"
    event_id: str
    occurred_at: int
    account_id: str
    invoice_id: str
    invoice_sequence: int
    amount_cents: int
    currency: str

    @property
    def key(self) -> str:
        return self.account_id


@dataclass(frozen=True, slots=True)
class ReferralRefused:
    topic: ClassVar[str] = "referral-refused"
    event_id: str
    occurred_at: int
    lead_id: str
    note: str | None = None

    @property
    def key(self) -> str:
        return self.lead_id


@dataclass(frozen=True, slots=True)
class RewardGranted:
    topic: ClassVar[str] = "reward-granted"
    reward_id: str
    referrer_id: str
    lead_id: str
    referee_account_id: str
    amount_cents: int
    currency: str
    kind: RewardKind
    voucher_email: str | None
    referrer_account_id: str | None
    terms_version: str
    first_invoice_id: str
    first_invoice_paid_at: int
    granted_at: int
    due_by: int
    source_event_ids: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.referrer_id


@dataclass(frozen=True, slots=True)
class ReferralDecision:
    topic: ClassVar[str] = "referral-decisions"
    lead_id: str
    referrer_id: str
    status: DecisionStatus
    reason: RejectionReason | None
    decided_at: int
    terms_version: str | None
    cause_event_id: str | None

    @property
    def key(self) -> str:
        return self.lead_id


@dataclass(frozen=True, slots=True)
class ClockAdvanced:
    """An explicit clock record (RULES.md, Time): business time moves forward to `at`."""

    topic: ClassVar[str] = "referral-clock"
    at: int

    @property
    def key(self) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: ClassVar[str] = "referral-dead-letters"
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None
    error_class: str
    error_message: str
    dead_lettered_at: int


InputEvent = LeadSubmitted | ClientSigned | InvoicePaid | ReferralRefused
OutputRecord = RewardGranted | ReferralDecision
Record = InputEvent | ClockAdvanced | OutputRecord | DeadLetter

RECORD_TYPES: dict[str, type[Any]] = {
    cls.topic: cls
    for cls in (
        LeadSubmitted,
        ClientSigned,
        InvoicePaid,
        ReferralRefused,
        RewardGranted,
        ReferralDecision,
        ClockAdvanced,
        DeadLetter,
    )
}
INPUT_TOPICS = ("lead-submitted", "client-signed", "invoice-paid", "referral-refused")
OUTPUT_TOPICS = ("reward-granted", "referral-decisions")
CLOCK_TOPIC = "referral-clock"
DEAD_LETTER_TOPIC = "referral-dead-letters"

T = TypeVar("T")


def record_builder(cls: type[T]) -> Callable[..., T]:
    """A constructor taking every field of a frozen record positionally, in declaration order,
    for the hot loops that build one per event (the rules core's outputs).

    The same object `cls(...)` gives, at a third of the cost: the frozen dataclass `__init__`
    goes through `object.__setattr__` for each field; this sets the slots through their
    descriptors. Compiled for the class's fields, as dataclasses compile `__init__`.
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    setters = {f"_set_{name}": getattr(cls, name).__set__ for name in names}
    body = "".join(f"    _set_{name}(record, {name})\n" for name in names)
    source = (
        f"def build_{cls.__name__}({', '.join(names)}):\n"
        f"    record = _new(_cls)\n{body}    return record\n"
    )
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, **setters}
    exec(source, namespace)  # the source is built from the class's own field names
    builder: Callable[..., T] = namespace[f"build_{cls.__name__}"]
    return builder


def _nested_records(cls: type[Any]) -> dict[str, type[Any]]:
    """The fields of `cls` that hold a record themselves (never None), by name."""
    hints = get_type_hints(cls)
    nested = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            nested[f.name] = hint
        elif any(dataclasses.is_dataclass(arg) for arg in get_args(hint)):
            raise TypeError(f"{cls.__name__}.{f.name}: an optional record has no tuple form")
    return nested


def record_fields(cls: type[T]) -> Callable[[T], tuple[Any, ...]]:
    """The field values of a `cls` record as a tuple, in declaration order, a field holding a
    record as its own such tuple: what crosses to another process (plain tuples pickle at a
    fraction of the cost of dataclasses). `record_from_fields` turns it back into the record."""
    nested = _nested_records(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if not nested:
        return operator.attrgetter(*names) if len(names) > 1 else lambda r: (getattr(r, names[0]),)
    parts = [f"_{n}(record.{n})" if n in nested else f"record.{n}" for n in names]
    namespace: dict[str, Any] = {f"_{n}": record_fields(c) for n, c in nested.items()}
    exec(f"def fields(record):\n    return ({', '.join(parts)},)\n", namespace)
    result: Callable[[T], tuple[Any, ...]] = namespace["fields"]
    return result


def record_from_fields(cls: type[T]) -> Callable[[tuple[Any, ...]], T]:
    """The record whose `record_fields` tuple is given (see there)."""
    nested = _nested_records(cls)
    build = record_builder(cls)
    if not nested:
        return lambda values: build(*values)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    parts = [f"_{n}(t[{i}])" if n in nested else f"t[{i}]" for i, n in enumerate(names)]
    namespace: dict[str, Any] = {f"_{n}": record_from_fields(c) for n, c in nested.items()}
    namespace["_build"] = build
    exec(f"def from_fields(t):\n    return _build({', '.join(parts)})\n", namespace)
    result: Callable[[tuple[Any, ...]], T] = namespace["from_fields"]
    return result


Tagged = tuple[int, tuple[Any, ...]]


class TaggedFields:
    """Records of a fixed set of classes as (class tag, field tuple) pairs and back: the form
    records cross between processes in (see record_fields)."""

    def __init__(self, kinds: tuple[type[Any], ...]) -> None:
        self.kinds = kinds
        self._to = {cls: (tag, record_fields(cls)) for tag, cls in enumerate(kinds)}
        self._from = tuple(record_from_fields(cls) for cls in kinds)

    def dump(self, records: Iterable[Any]) -> list[Tagged]:
        out = []
        for record in records:
            tag, fields = self._to[type(record)]
            out.append((tag, fields(record)))
        return out

    def load(self, tagged: Iterable[Tagged]) -> list[Any]:
        build = self._from
        return [build[tag](values) for tag, values in tagged]


def from_avro(cls: type[T], datum: dict[str, Any]) -> T:
    """Build a typed record from the dict fastavro (or the JSONL reader) produced."""
    return from_plain(cls, datum)


def to_avro(record: Any) -> dict[str, Any]:
    """The plain dict of a typed record, as fastavro writes it (enums as symbols)."""
    result: dict[str, Any] = to_plain(record)
    return result
