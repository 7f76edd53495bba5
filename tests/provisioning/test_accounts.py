"""Which SCIM attribute becomes which GitLab attribute (DESIGN.md, Users)."""

from __future__ import annotations

from scim_bridge.provisioning.accounts import desired_account


def test_primary_email_wins_then_work_then_first() -> None:
    emails = [
        {"value": "home@x", "type": "home"},
        {"value": "work@x", "type": "work"},
        {"value": "main@x", "type": "other", "primary": True},
    ]
    assert desired_account({"userName": "u", "emails": emails}).email == "main@x"
    assert desired_account({"userName": "u", "emails": emails[:2]}).email == "work@x"
    assert desired_account({"userName": "u", "emails": emails[:1]}).email == "home@x"
    assert desired_account({"userName": "u"}).email is None


def test_name_falls_back_in_order() -> None:
    full = {
        "userName": "u@x",
        "displayName": "D",
        "name": {"formatted": "F", "givenName": "G", "familyName": "H"},
    }
    assert desired_account(full).name == "D"
    assert desired_account({**full, "displayName": None}).name == "F"
    assert (
        desired_account({"userName": "u@x", "name": {"givenName": "G", "familyName": "H"}}).name
        == "G H"
    )
    assert desired_account({"userName": "u@x"}).name == "u@x"


def test_active_defaults_to_true_and_external_id_is_the_extern_uid() -> None:
    account = desired_account({"userName": "Jane.Doe@x", "externalId": "oid-1"})
    assert account.active is True
    assert account.extern_uid == "oid-1"
    assert account.username == "Jane.Doe"
    assert desired_account({"userName": "u", "active": False}).active is False
