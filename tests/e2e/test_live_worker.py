"""The live worker on the real broker: every rule through Kafka, equal to the JSONL replay.

Events go in with a plain aiokafka producer; outputs come back read_committed and decoded with
the official `avro` library. The stream is in business-time order and ends with a clock record,
and leads whose outcome depends on each other (R2's first arrival, R8's caps) share a lead
partition, so that the per-partition clocks of the live worker and the single clock of the
replay must agree record for record.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from streams.app.delivery import Outgoing, partition_of
from streams.app.journal import decode_message
from streams.app.packing import pack, unpack
from streams.contracts import (
    AvroCodec,
    ClockAdvanced,
    DecisionStatus,
    InputEvent,
    InvoicePaid,
    JsonlCodec,
    ReferralDecision,
    ReferrerKind,
    RewardKind,
)
from streams.kafka.connection import client_kwargs
from streams.replay import replay
from streams.rules import load_terms
from streams.rules.model import AccountOpened
from tests.builders import (
    DAY,
    HOUR,
    T0,
    lead,
    paid,
    referee,
    referrer,
    refused,
    signed,
    terms_toml,
)
from tests.e2e.harness import (
    WorkerProcess,
    canonical,
    decode_with_official_avro,
    ids_in_partition,
    produce,
    produce_in_steps,
    read_outputs,
    read_topic,
    views_become,
    wait_for_outputs,
    wait_idle,
)

pytestmark = pytest.mark.e2e

TERMS = terms_toml(version="e2e", ends_at="2026-03-06T10:00:00Z", max_rewards=2)
END = T0 + 60 * DAY  # the terms' ends_at
AS_OF = T0 + 120 * DAY


def own(lead_id: str) -> Any:
    """A referrer of its own, so that caps (R8) only bind where a test means them to."""
    return referrer(
        referrer_id=f"ref-{lead_id}", organization_id=f"O-{lead_id}", email=f"r@{lead_id}.org"
    )


def full_story(lead_id: str, at: int, referrer_: Any = None) -> list[InputEvent]:
    return [
        lead(lead_id, at, referrer_=referrer_ or own(lead_id)),
        signed(lead_id, at + DAY),
        paid(f"acc-{lead_id}", at + 2 * DAY),
    ]


def scenario() -> tuple[list[InputEvent], dict[str, str]]:
    """Events covering every rule, and the final status each named lead must reach."""
    expect: dict[str, str] = {}
    events: list[InputEvent] = []

    events += full_story("happy", T0)
    expect["happy"] = "GRANTED"
    events.append(lead("partner", T0, kind=ReferrerKind.PARTNER))
    expect["partner"] = "REJECTED:referrer_excluded"  # R1
    events.append(lead("no-terms", T0, terms_accepted_version=None))
    expect["no-terms"] = "REJECTED:terms_not_accepted"  # R1
    events.append(lead("known", T0, referee_=referee(known_to_ringover=True, email="k@k.example")))
    expect["known"] = "REJECTED:referee_already_known"  # R2
    first, second = ids_in_partition("referee", 3, 2)
    events.append(lead(first, T0, referee_=referee(email="a@shared.example")))
    events.append(lead(second, T0 + HOUR, referee_=referee(email="b@shared.example")))
    # R2: the first stays open (until the programme ends, R11); the second is rejected
    expect[first], expect[second] = "REJECTED:program_ended", "REJECTED:referee_already_known"
    events.append(lead("colleague", T0, referee_=referee(email="bob@acme.example")))
    expect["colleague"] = "REJECTED:same_organization"  # R3
    events += full_story("refused", T0)
    events.append(refused("refused", T0 + 5 * DAY))
    expect["refused"] = "REJECTED:refused_by_ringover"  # R4
    events += [lead("short", T0), signed("short", T0 + DAY, months=6)]
    expect["short"] = "REJECTED:commitment_too_short"  # R5
    events += [lead("pay-first", T0, referrer_=own("pay-first")), paid("acc-pay-first", T0 + HOUR)]
    events.append(signed("pay-first", T0 + 2 * HOUR))
    expect["pay-first"] = "GRANTED"  # R6: payment before signature
    voucher = referrer(referrer_id="ref-voucher", account_id=None, organization_id=None,
                       email="v@home.example", kind=ReferrerKind.INDIVIDUAL)  # fmt: skip
    events += full_story("voucher", T0, referrer_=voucher)
    expect["voucher"] = "GRANTED"  # R9
    capped = referrer(referrer_id="ref-capped", organization_id="O-CAP", email="c@cap.example")
    for n, lead_id in enumerate(ids_in_partition("cap", 5, 3)):
        events += full_story(lead_id, T0 + n * HOUR, referrer_=capped)
        expect[lead_id] = "GRANTED" if n < 2 else "REJECTED:referrer_cap_reached"  # R8
    events += [lead("late", T0, referrer_=own("late")), paid("acc-late", T0 + DAY)]
    events.append(signed("late", T0 + 20 * DAY))
    expect["late"] = "GRANTED"  # R10: granted_at is the signature's time
    events += [lead("ended-open", T0 + 50 * DAY), signed("ended-open", T0 + 51 * DAY)]
    expect["ended-open"] = "REJECTED:program_ended"  # R11: the clock reaches ends_at
    events.append(lead("too-late", END + DAY))
    expect["too-late"] = "REJECTED:program_ended"  # R11
    other = referrer(referrer_id="ref-other", organization_id="O-2", email="o@other.example")
    events.append(lead("happy", T0 + 3 * HOUR, referrer_=other))  # R12
    events.append(events[0])  # R13: a redelivered event
    events.sort(key=lambda e: e.occurred_at)
    return events, expect


@pytest.fixture(scope="module")
def terms_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("terms") / "terms.toml"
    path.write_text(TERMS)
    return path


@pytest.fixture(scope="module")
def story() -> tuple[list[InputEvent], dict[str, str]]:
    """One scenario for the module: the builders number event ids, so build it once."""
    return scenario()


@pytest.fixture(scope="module")
def expected(
    tmp_path_factory: pytest.TempPathFactory,
    terms_file: Path,
    story: tuple[list[InputEvent], dict[str, str]],
) -> dict[str, Any]:
    """The JSONL replay's outputs for the scenario: what the live worker must match."""
    events, statuses = story
    out = tmp_path_factory.mktemp("replay")
    replay([*events, ClockAdvanced(AS_OF)], load_terms(terms_file), out)
    result: dict[str, Any] = {"statuses": statuses}
    for topic in ("reward-granted", "referral-decisions"):
        lines = (out / f"{topic}.jsonl").read_text().splitlines()
        result[topic] = [json.loads(line)["value"] for line in lines]
    return result


async def outputs_matching(
    bootstrap: str, prefix: str, expected: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """Wait for the live outputs and check that they are the replay's, record for record."""
    topics = ("reward-granted", "referral-decisions")
    outputs = await wait_for_outputs(bootstrap, prefix, {t: len(expected[t]) for t in topics})
    for topic in topics:
        assert canonical(outputs[topic]) == canonical(expected[topic]), topic
    return outputs


def final_status(decisions: list[dict[str, Any]], lead_id: str) -> str:
    mine = [d for d in decisions if d["lead_id"] == lead_id and d["reason"] != "duplicate_lead"]
    last = mine[-1]
    return f"{last['status']}:{last['reason']}" if last["reason"] else last["status"]


@pytest.fixture
def names() -> tuple[str, str]:
    """A fresh app id (consumer group, internal topics) and topic prefix for each test."""
    tag = uuid.uuid4().hex[:8]
    return f"e2e-{tag}", f"e2e-{tag}."


async def test_every_rule_through_kafka_equals_the_replay(
    kafka_bootstrap: str,
    tmp_path: Path,
    terms_file: Path,
    expected: dict[str, Any],
    story: tuple[list[InputEvent], dict[str, str]],
    names: tuple[str, str],
) -> None:
    app_id, prefix = names
    worker = WorkerProcess(kafka_bootstrap, app_id, prefix, tmp_path / "w1", terms_file).start()
    try:
        worker.wait_ready()
        events, _ = story
        journal = f"{app_id}-lead-journal"
        legacy = ReferralDecision(
            "legacy-1", "ref-legacy", DecisionStatus.ACCEPTED, None, T0, "e2e", "legacy-event"
        )
        # Two messages a step could have sent, packed (streams.app.packing).
        (packed,) = pack(
            [
                Outgoing(journal, b"lead-y", b'{"type": "Nope"}', 0),
                Outgoing(journal, None, b"[", 0),
            ],
            {journal},
            1,
        )
        assert packed.value is not None
        hostile: list[Any] = [
            ("lead-submitted", b"not avro at all", b"junk"),
            ("invoice-paid", JsonlCodec().format(events[0]).encode(), None),
            ("referral-refused", packed.value, b"packed"),  # an input is never unpacked
        ]
        await produce(kafka_bootstrap, prefix, hostile)
        # Records that decode but cannot be processed: the step raises, the worker goes on.
        # In a packed record, each message goes to the dead letters on its own; a pack cut
        # short goes whole.
        await produce(
            kafka_bootstrap,
            "",
            [
                (journal, b'{"type": "Nope"}', b"lead-x"),
                (journal, packed.value, None),
                (journal, packed.value[:-1], None),
                # what workers before the compact view message sent the referrer view
                (f"{app_id}-referrer-view", AvroCodec().encode_record(legacy), b"ref-legacy"),
            ],
        )
        await produce_in_steps(kafka_bootstrap, app_id, prefix, [*events, ClockAdvanced(AS_OF)])
        # The live outputs are the replay's, record for record (order aside).
        outputs = await outputs_matching(kafka_bootstrap, prefix, expected)
        for lead_id, status in expected["statuses"].items():
            assert final_status(outputs["referral-decisions"], lead_id) == status, lead_id

        rewards = {r["lead_id"]: r for r in outputs["reward-granted"]}
        assert rewards["voucher"]["kind"] == RewardKind.GIFT_VOUCHER.value  # R9
        assert rewards["voucher"]["voucher_email"] == "v@home.example"
        assert rewards["late"]["granted_at"] == "2026-01-25T10:00:00Z"  # R10
        assert len(rewards) == len(outputs["reward-granted"])  # R13: one reward per lead
        assert "@" not in json.dumps(outputs["referral-decisions"])  # R14

        # Bad input is dead-lettered with its origin, never dropped, never fatal.
        dead = await read_topic(kafka_bootstrap, prefix + "referral-dead-letters")
        letters = [decode_with_official_avro(m.value)[1] for m in dead]
        assert {letter["source_topic"] for letter in letters} == {
            prefix + "lead-submitted",
            prefix + "invoice-paid",
            prefix + "referral-refused",
            journal,
        }
        broken = {
            (x["error_class"], x["key"], x["value"])
            for x in letters
            if x["source_topic"] == journal
        }
        assert (
            broken
            == {
                ("JournalError", b"lead-x", b'{"type": "Nope"}'),
                ("JournalError", b"lead-y", b'{"type": "Nope"}'),  # the pack's messages
                ("JournalError", None, b"["),
                ("PackError", None, packed.value[:-1]),
            }
        )
        junk = next(x for x in letters if x["source_topic"] == prefix + "lead-submitted")
        assert (junk["key"], junk["value"]) == (b"junk", b"not avro at all")
        assert junk["error_class"] == "CodecError"
        refused = next(x for x in letters if x["source_topic"] == prefix + "referral-refused")
        assert (refused["error_class"], refused["value"]) == ("CodecError", packed.value)

        # Queries: routed, JSON, 404 for unknown ids, no e-mail addresses.
        status, story = worker.get("/leads/happy")
        assert status == 200
        assert [d["status"] for d in story["decisions"] if d["reason"] is None] == [
            "ACCEPTED", "QUALIFIED", "EARNED", "GRANTED",
        ]  # fmt: skip
        status, capped = worker.get("/referrers/ref-capped")
        assert status == 200
        assert capped["rewards_granted"] == 2
        assert capped["caps"]["rewards_left"] == 0
        # The referrer view: the clock is past every lead's end, so no referrer has an open
        # lead left (closed leads leave the view); someone else's duplicate submission of a
        # lead is no lead of its referrer's.
        decisions = expected["referral-decisions"]
        referrers = {d["referrer_id"] for d in decisions if d["reason"] != "duplicate_lead"}
        legacy_view = {"ref-legacy": [{"lead_id": "legacy-1", "status": "ACCEPTED"}]}
        await views_become(worker, {**{referrer: [] for referrer in referrers}, **legacy_view})
        assert worker.get("/leads/nobody")[0] == 404
        assert worker.get("/referrers/nobody")[0] == 404
        status, metrics = worker.get("/metrics")
        assert 'referral_dead_letters_total{reason="CodecError"} 3' in metrics
        assert 'referral_dead_letters_total{reason="JournalError"} 3' in metrics
        assert 'referral_dead_letters_total{reason="PackError"} 1' in metrics
        assert "referral_rewards_granted_total" in metrics
        # its consumer fetches in a session: incremental fetches, after the first full ones
        incremental = re.search(
            r'referral_fetch_requests_total\{kind="incremental"\} (\d+)', metrics
        )
        assert incremental is not None
        assert int(incremental.group(1)) > 0
        assert "@" not in json.dumps(story) + json.dumps(capped)
    finally:
        worker.stop()


async def test_two_workers_give_the_same_rewards_as_one(
    kafka_bootstrap: str,
    tmp_path: Path,
    terms_file: Path,
    expected: dict[str, Any],
    story: tuple[list[InputEvent], dict[str, str]],
    names: tuple[str, str],
) -> None:
    app_id, prefix = names
    workers = [
        WorkerProcess(kafka_bootstrap, app_id, prefix, tmp_path / f"w{i}", terms_file).start()
        for i in range(2)
    ]
    try:
        for worker in workers:
            worker.wait_ready()
        events, _ = story
        await produce_in_steps(kafka_bootstrap, app_id, prefix, [*events, ClockAdvanced(AS_OF)])
        await outputs_matching(kafka_bootstrap, prefix, expected)
        # Each worker answers for every referrer, forwarding to the owner where needed.
        for worker in workers:
            status, body = worker.get("/referrers/ref-capped")
            assert (status, body["rewards_granted"]) == (200, 2)
    finally:
        for worker in workers:
            worker.stop()


async def test_a_quiet_worker_commits_its_offsets_without_waiting_for_the_commit_interval(
    kafka_bootstrap: str, tmp_path: Path, terms_file: Path, names: tuple[str, str]
) -> None:
    """Once no round has been stored for a moment, the offsets of the rounds before are
    committed: with a commit interval of a minute, a lead's story is committed on the inputs
    and every journal within seconds, so a restart after a quiet spell takes nothing again."""
    app_id, prefix = names
    worker = WorkerProcess(
        kafka_bootstrap, app_id, prefix, tmp_path / "w", terms_file, commit_interval=60.0
    ).start()
    try:
        worker.wait_ready()
        await produce(kafka_bootstrap, prefix, full_story("quiet", T0))
        await wait_for_outputs(kafka_bootstrap, prefix, {"referral-decisions": 1}, timeout=60)
        await wait_idle(kafka_bootstrap, app_id, prefix, timeout=20)
    finally:
        worker.stop()


async def test_a_restarted_worker_resumes_from_its_changelog_without_a_second_grant(
    kafka_bootstrap: str,
    tmp_path: Path,
    terms_file: Path,
    expected: dict[str, Any],
    story: tuple[list[InputEvent], dict[str, str]],
    names: tuple[str, str],
) -> None:
    """Half the stream, a stop, the local state wiped (so it must come back from the
    changelogs), the other half: the outputs are still exactly the replay's."""
    app_id, prefix = names
    events, _ = story
    half = len(events) // 2
    worker = WorkerProcess(kafka_bootstrap, app_id, prefix, tmp_path / "w", terms_file).start()
    try:
        worker.wait_ready()
        first_half = [*events[:half], ClockAdvanced(events[half].occurred_at)]
        await produce_in_steps(kafka_bootstrap, app_id, prefix, first_half)
        await wait_for_outputs(kafka_bootstrap, prefix, {"referral-decisions": 5}, timeout=120)
        worker.stop()
        shutil.rmtree(worker.data_dir / f"{app_id}-{worker.web_port}", ignore_errors=True)
        worker = replace(worker, proc=None).start()
        worker.wait_ready()
        await produce_in_steps(
            kafka_bootstrap, app_id, prefix, [*events[half:], ClockAdvanced(AS_OF)]
        )
        outputs = await outputs_matching(kafka_bootstrap, prefix, expected)
        reward_ids = [r["reward_id"] for r in outputs["reward-granted"]]
        assert len(reward_ids) == len(set(reward_ids))
        again = await read_outputs(kafka_bootstrap, prefix)
        assert len(again["reward-granted"]) == len(expected["reward-granted"])
    finally:
        worker.stop()


async def test_r6_an_invoice_on_another_partition_than_its_account_earns_once_through_the_journal(
    kafka_bootstrap: str, tmp_path: Path, terms_file: Path, names: tuple[str, str]
) -> None:
    """The account agent applies billing's invoices where they sit, on their account's
    partition, with no journal hop; an invoice that an upstream keyed otherwise sits on another
    partition, whose agent must not write the account: it goes through the account journal to
    the account's own partition, and earns its reward once all the same."""
    app_id, prefix = names
    events = [*full_story("direct", T0), *full_story("moved", T0 + HOUR)]
    moved = events[-1]
    assert isinstance(moved, InvoicePaid)
    elsewhere = (partition_of(moved.account_id.encode(), 8) + 3) % 8
    worker = WorkerProcess(kafka_bootstrap, app_id, prefix, tmp_path / "w", terms_file).start()
    try:
        worker.wait_ready()
        await produce(kafka_bootstrap, prefix, events[:-1])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, **client_kwargs())
        await producer.start()
        try:
            value = AvroCodec().encode_record(moved)
            await producer.send_and_wait(
                prefix + "invoice-paid", value, key=b"not-the-account", partition=elsewhere
            )
        finally:
            await producer.stop()
        await produce(kafka_bootstrap, prefix, [ClockAdvanced(AS_OF)])
        outputs = await wait_for_outputs(kafka_bootstrap, prefix, {"reward-granted": 2})
        journal = await read_topic(kafka_bootstrap, f"{app_id}-account-journal")
    finally:
        worker.stop()
    # the agents' first rounds share one pair of offset clients (each made its own before)
    assert "Unclosed AIOKafka" not in worker.log_path.read_text()
    assert sorted(r["lead_id"] for r in outputs["reward-granted"]) == ["direct", "moved"]
    journaled = [
        decode_message(value or b"")
        for record in journal
        for _, value in unpack(record.key, record.value)
    ]
    invoices = [m.event_id for m in journaled if isinstance(m, InvoicePaid)]
    assert invoices == [moved.event_id]  # the direct invoice took no journal hop
    assert sum(isinstance(m, AccountOpened) for m in journaled) == 2
