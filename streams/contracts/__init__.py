"""Event contracts: Avro schemas by topic and version, the single-object codec, contract checks,
dead letters and the JSONL form. The rest of the project imports from here."""

from streams.contracts.codec import AvroCodec
from streams.contracts.deadletter import dead_letter
from streams.contracts.errors import CodecError, ContractError
from streams.contracts.jsonl import JsonlCodec, JsonlError, format_time, parse_time
from streams.contracts.records import (
    DEAD_LETTER_TOPIC,
    INPUT_TOPICS,
    OUTPUT_TOPICS,
    ClientSigned,
    DeadLetter,
    DecisionStatus,
    InputEvent,
    InvoicePaid,
    LeadSubmitted,
    OutputRecord,
    Record,
    Referee,
    ReferralDecision,
    ReferralRefused,
    Referrer,
    ReferrerKind,
    RejectionReason,
    RewardGranted,
    RewardKind,
)
from streams.contracts.registry import SchemaRegistry, default_registry

__all__ = [
    "DEAD_LETTER_TOPIC",
    "INPUT_TOPICS",
    "OUTPUT_TOPICS",
    "AvroCodec",
    "ClientSigned",
    "CodecError",
    "ContractError",
    "DeadLetter",
    "DecisionStatus",
    "InputEvent",
    "InvoicePaid",
    "JsonlCodec",
    "JsonlError",
    "LeadSubmitted",
    "OutputRecord",
    "Record",
    "Referee",
    "ReferralDecision",
    "ReferralRefused",
    "Referrer",
    "ReferrerKind",
    "RejectionReason",
    "RewardGranted",
    "RewardKind",
    "SchemaRegistry",
    "dead_letter",
    "default_registry",
    "format_time",
    "parse_time",
]
