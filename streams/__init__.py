"""Referral reward engine: the referral programme's rules on Apache Kafka.

Subpackages by concern: `rules` (the pure, deterministic core), `contracts` (Avro schemas,
the wire codec, validation, JSONL), `kafka` (the local broker and Kafka plumbing), `app` (the
Faust wiring), and `cli` (the `referral-rewards` command).
"""

__version__ = "0.1.0"
