"""Referee identity (R2) and same organization (R3) as pure functions."""

from __future__ import annotations

from streams.rules import load_terms
from streams.rules.identity import referee_identity, same_organization
from tests.builders import referee, referrer

PROGRAMME = load_terms()


def test_r2_identity_is_the_organization_id_when_given() -> None:
    a = referee(organization_id="FR-123", email="a@one.example")
    b = referee(organization_id=" fr-123", email="b@two.example")
    assert referee_identity(a, PROGRAMME) == referee_identity(b, PROGRAMME)


def test_r2_identity_is_the_email_domain_without_organization_id() -> None:
    a = referee(email="a@NewCo.example")
    b = referee(email="b@newco.example")
    c = referee(email="c@other.example")
    assert referee_identity(a, PROGRAMME) == referee_identity(b, PROGRAMME)
    assert referee_identity(a, PROGRAMME) != referee_identity(c, PROGRAMME)


def test_r2_identity_is_the_whole_address_on_free_mail() -> None:
    a = referee(email="Bob@Gmail.com")
    b = referee(email="bob@gmail.com")
    c = referee(email="carol@gmail.com")
    assert referee_identity(a, PROGRAMME) == referee_identity(b, PROGRAMME)
    assert referee_identity(a, PROGRAMME) != referee_identity(c, PROGRAMME)


def test_r14_identity_is_a_hash_without_the_address() -> None:
    identity = referee_identity(referee(email="bob@gmail.com"), PROGRAMME)
    assert "bob" not in identity
    assert len(identity) == 32


def test_r3_same_organization_cases() -> None:
    acme = referrer(email="alice@acme.example", organization_id="FR-ACME")
    assert same_organization(
        acme, referee(email="z@x.example", organization_id="fr-acme"), PROGRAMME
    )
    assert same_organization(acme, referee(email="bob@ACME.example"), PROGRAMME)
    assert not same_organization(acme, referee(email="bob@other.example"), PROGRAMME)
    webmail = referrer(email="alice@gmail.com", organization_id=None)
    assert not same_organization(webmail, referee(email="bob@gmail.com"), PROGRAMME)
    assert same_organization(webmail, referee(email="ALICE@gmail.com"), PROGRAMME)
