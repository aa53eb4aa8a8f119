"""Typed records of every topic, as the rules core and the shell see them.

Times are integer milliseconds since the epoch, UTC (Avro timestamp-millis); money is integer
cents. `to_avro`/`from_avro` convert to and from the plain dicts fastavro reads and writes.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

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


def from_avro(cls: type[T], datum: dict[str, Any]) -> T:
    """Build a typed record from the dict fastavro (or the JSONL reader) produced."""
    return from_plain(cls, datum)


def to_avro(record: Any) -> dict[str, Any]:
    """The plain dict of a typed record, as fastavro writes it (enums as symbols)."""
    result: dict[str, Any] = to_plain(record)
    return result
