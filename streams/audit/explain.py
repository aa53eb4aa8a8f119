"""`referral-rewards explain`: a lead's or a referrer's full story, from the journals."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from streams.audit.journal_replay import JournalReplay
from streams.contracts import (
    ClientSigned,
    LeadSubmitted,
    ReferralDecision,
    ReferralRefused,
    RewardGranted,
    format_time,
)
from streams.contracts.records import to_avro
from streams.rules import Programme
from streams.rules.model import (
    Displaced,
    FirstInvoicePaid,
    GrantSettled,
    Message,
    RefereeChecked,
)

RULES = {
    "ACCEPTED": "R1, R2, R3, R11, R12 passed",
    "QUALIFIED": "R5: commitment long enough",
    "EARNED": "R6: first invoice paid; the hold runs (R10)",
    "GRANTED": "R8 caps fit; R10 hold over",
    "duplicate_lead": "R12: not transferable",
    "program_not_started": "R11: before the programme",
    "program_ended": "R11: the programme ended",
    "referrer_excluded": "R1: resellers, distributors, partners",
    "terms_not_accepted": "R1: terms not accepted",
    "referee_already_known": "R2: referee not new",
    "same_organization": "R3: referrer's own organization",
    "refused_by_ringover": "R4: refused by Ringover",
    "commitment_too_short": "R5: commitment too short",
    "referrer_cap_reached": "R8: cap reached",
}


def rule_of(decision: ReferralDecision) -> str:
    return RULES[decision.reason.value if decision.reason else decision.status.value]


def _describe(message: Message) -> tuple[str, str | None, str]:
    """(what, business time, details) of a journal message, without personal data (R14)."""
    if isinstance(message, LeadSubmitted):
        r = message.referrer
        return (
            "lead-submitted",
            format_time(message.occurred_at),
            f"event {message.event_id}, referrer {r.referrer_id} ({r.kind.value}), "
            f"terms accepted: {r.terms_accepted_version or 'no'}, "
            f"referee known: {message.referee.known_to_ringover}",
        )
    if isinstance(message, ClientSigned):
        return (
            "client-signed",
            format_time(message.occurred_at),
            f"event {message.event_id}, account {message.account_id}, "
            f"{message.commitment_months} months",
        )
    if isinstance(message, ReferralRefused):
        return "referral-refused", format_time(message.occurred_at), f"event {message.event_id}"
    if isinstance(message, FirstInvoicePaid):
        return (
            "first invoice paid",
            format_time(message.paid_at),
            f"event {message.event_id}, invoice {message.invoice_id}, account {message.account_id}",
        )
    if isinstance(message, RefereeChecked):
        return "referee check", None, "the referee's first lead" if message.first else "not first"
    if isinstance(message, Displaced):
        return (
            "displaced (R2)",
            None,
            f"an earlier lead for the referee arrived: {message.by_lead_id} "
            f"(event {message.by_event_id})",
        )
    if isinstance(message, GrantSettled):
        return "grant settled", None, "granted" if message.granted else "refused at the cap"
    return type(message).__name__, None, ""


def _decision_json(decision: ReferralDecision) -> dict[str, Any]:
    plain = to_avro(decision)
    plain["decided_at"] = format_time(decision.decided_at)
    plain["rule"] = rule_of(decision)
    return plain


def _reward_json(reward: RewardGranted) -> dict[str, Any]:
    plain = to_avro(reward)
    for name in ("first_invoice_paid_at", "granted_at", "due_by"):
        plain[name] = format_time(plain[name])
    if plain["voucher_email"]:
        plain["voucher_email"] = "(on file)"  # R14: e-mails serve voucher delivery only
    return plain


def lead_story(replay: JournalReplay, lead_id: str) -> dict[str, Any] | None:
    messages = replay.lead_messages.get(lead_id)
    if not messages:
        return None
    events = []
    for partition, offset, message in messages:
        what, at, details = _describe(message)
        events.append(
            {"journal": f"lead p{partition}@{offset}", "what": what, "at": at, "details": details}
        )
    decisions = [
        _decision_json(o)
        for o in replay.outputs
        if isinstance(o, ReferralDecision) and o.lead_id == lead_id
    ]
    rewards = [
        _reward_json(o)
        for o in replay.outputs
        if isinstance(o, RewardGranted) and o.lead_id == lead_id
    ]
    return {"lead_id": lead_id, "events": events, "decisions": decisions, "rewards": rewards}


def referrer_story(
    replay: JournalReplay, referrer_id: str, programme: Programme
) -> dict[str, Any] | None:
    decisions = [
        o
        for o in replay.outputs
        if isinstance(o, ReferralDecision) and o.referrer_id == referrer_id
    ]
    if not decisions:
        return None
    rewards = [
        _reward_json(o)
        for o in replay.outputs
        if isinstance(o, RewardGranted) and o.referrer_id == referrer_id
    ]
    leads: dict[str, ReferralDecision] = {}
    for decision in decisions:
        if decision.reason is None or decision.reason.value != "duplicate_lead":
            leads[decision.lead_id] = decision
    granted_cents = sum(r["amount_cents"] for r in rewards)
    versions = [v for v in programme.versions if v.version in {d.terms_version for d in decisions}]
    terms = versions[-1] if versions else programme.versions[-1]
    return {
        "referrer_id": referrer_id,
        "leads": [
            {
                "lead_id": lead_id,
                "status": d.status.value,
                "reason": d.reason and d.reason.value,
                "rule": rule_of(d),
                "decided_at": format_time(d.decided_at),
            }
            for lead_id, d in sorted(leads.items())
        ],
        "rewards": rewards,
        "caps": {
            "terms_version": terms.version,
            "rewards_used": len(rewards),
            "rewards_left": max(0, terms.max_rewards - len(rewards)),
            "cents_used": granted_cents,
            "cents_left": max(0, terms.max_total_cents - granted_cents),
        },
    }


def render_lead(story: dict[str, Any], console: Console) -> None:
    console.print(f"[bold]lead {story['lead_id']}[/bold]")
    events = Table("journal", "what", "business time", "details", title="events, as applied")
    for e in story["events"]:
        events.add_row(e["journal"], e["what"], e["at"] or "", e["details"])
    console.print(events)
    decisions = Table("status", "reason", "rule", "decided at", "terms", title="decisions")
    for d in story["decisions"]:
        decisions.add_row(
            d["status"], d["reason"] or "", d["rule"], d["decided_at"], d["terms_version"] or ""
        )
    console.print(decisions)
    for r in story["rewards"]:
        console.print(
            f"[green]reward {r['reward_id']}[/green]: {r['amount_cents']} {r['currency']} "
            f"({r['kind']}) granted {r['granted_at']}, due by {r['due_by']}"
        )


def render_referrer(story: dict[str, Any], console: Console) -> None:
    console.print(f"[bold]referrer {story['referrer_id']}[/bold]")
    leads = Table("lead", "status", "reason", "rule", "decided at", title="leads")
    for lead in story["leads"]:
        leads.add_row(
            lead["lead_id"], lead["status"], lead["reason"] or "", lead["rule"], lead["decided_at"]
        )
    console.print(leads)
    rewards = Table("reward", "lead", "amount", "granted", "due by", title="rewards")
    for r in story["rewards"]:
        rewards.add_row(
            r["reward_id"], r["lead_id"], str(r["amount_cents"]), r["granted_at"], r["due_by"]
        )
    console.print(rewards)
    caps = story["caps"]
    console.print(
        f"caps ({caps['terms_version']}): {caps['rewards_used']} rewards used, "
        f"{caps['rewards_left']} left; {caps['cents_used']} cents used, {caps['cents_left']} left"
    )
