"""Who a referee is (R2) and when referrer and referee are one organization (R3).

E-mail addresses are compared case-insensitively; a free-mail domain never identifies an
organization. Identities are hashed so that no e-mail address reaches a key or a changelog (R14).
"""

from __future__ import annotations

import hashlib

from streams.contracts.records import Referee, Referrer
from streams.rules.terms import Programme


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower()


def _norm(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    return value or None


def referee_identity(referee: Referee, programme: Programme) -> str:
    """The R2 key: organization id when given, else the e-mail domain, else (free mail) the
    whole address; hashed, so the key can travel through Kafka without personal data."""
    organization = _norm(referee.organization_id)
    if organization is not None:
        raw = f"org:{organization}"
    else:
        domain = email_domain(referee.email)
        if programme.is_free_mail(domain):
            raw = f"email:{referee.email.strip().lower()}"
        else:
            raw = f"domain:{domain}"
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def same_organization(referrer: Referrer, referee: Referee, programme: Programme) -> bool:
    """R3: same organization id, same (non-free-mail) e-mail domain, or same e-mail address."""
    referrer_org, referee_org = _norm(referrer.organization_id), _norm(referee.organization_id)
    if referrer_org is not None and referrer_org == referee_org:
        return True
    if referrer.email.strip().lower() == referee.email.strip().lower():
        return True
    domain = email_domain(referee.email)
    return domain == email_domain(referrer.email) and not programme.is_free_mail(domain)
