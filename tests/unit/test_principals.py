"""Principal ids: built in one place, parsed in one place, and the two agree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.tenancy import tenant_of
from app.security.principals import (
    AUTH_DISABLED_PRINCIPAL,
    DEFAULT_TENANT,
    TENANT_PATTERN,
    Principal,
)
from app.security.scopes import Scope, parse_scopes

# A stored user name holds no '/' but the one after its tenant (USERNAME_PATTERN has none).
names = st.text(min_size=1, max_size=40).filter(
    lambda text: text.strip() == text and "/" not in text
)
tenants = st.from_regex(TENANT_PATTERN, fullmatch=True).filter(lambda t: t != DEFAULT_TENANT)


@given(names)
def test_a_user_id_parses_back_to_the_same_user(name: str) -> None:
    built = Principal.for_user(name, ["agents:run"])
    parsed = Principal.from_id(built.id, ["agents:run"])
    assert parsed == built
    assert parsed.kind == "user" and parsed.id == f"user:{name}"


@given(st.text(alphabet="0123456789abcdef", min_size=8, max_size=8))
def test_an_api_key_id_parses_back_to_an_api_key_principal(key_id: str) -> None:
    built = Principal.for_api_key(key_id, name=key_id)
    assert Principal.from_id(built.id) == built
    assert built.kind == "api_key" and built.id == f"key:{key_id}"


@pytest.mark.parametrize("bad", ["", "user:", "key:", "admin", "group:x", "USER:x"])
def test_anything_else_is_not_a_principal_id(bad: str) -> None:
    with pytest.raises(ValueError, match="not a principal id"):
        Principal.from_id(bad)


def test_admin_implies_every_scope_and_others_imply_only_themselves() -> None:
    admin = Principal.for_user("root", [Scope.ADMIN])
    reader = Principal.for_user("reader", [Scope.TASKS_READ])
    assert all(admin.has_scopes({scope}) for scope in Scope)
    assert reader.has_scopes({"tasks:read"})
    assert not reader.has_scopes({Scope.TASKS_WRITE})
    assert AUTH_DISABLED_PRINCIPAL.scopes == frozenset(Scope)


def test_scopes_parse_from_names_and_unknown_names_are_listed() -> None:
    assert parse_scopes(["tasks:read", "admin"]) == {Scope.TASKS_READ, Scope.ADMIN}
    with pytest.raises(ValueError, match="unknown scopes: root"):
        parse_scopes(["root", "admin"])


def test_every_scope_has_a_description() -> None:
    assert all(scope.description for scope in Scope)


@given(tenants, names, st.text(alphabet="0123456789abcdef", min_size=8, max_size=8))
def test_a_tenants_principals_carry_it_in_ids_that_parse_back(
    tenant: str, name: str, key_id: str
) -> None:
    user = Principal.for_user(f"{tenant}/{name}", ["agents:run"])
    key = Principal.for_api_key(key_id, name="k", tenant=tenant)
    external = Principal.for_external("corp", name, tenant=tenant)
    assert user.id == f"user:{tenant}/{name}" and key.id == f"key:{tenant}/{key_id}"
    assert external.id == f"oidc:corp@{tenant}:{name}"
    for built in (user, key, external):
        assert built.tenant == tenant
        assert tenant_of(built.id) == tenant  # what the LLM cache partitions by
        parsed = Principal.from_id(built.id, built.scopes)
        assert parsed.id == built.id and parsed.tenant == tenant
    assert key.key_id == key_id
    # The default tenant's ids are those from before tenants existed.
    assert Principal.for_api_key(key_id, name="k").id == f"key:{key_id}"
    assert tenant_of(f"key:{key_id}") == DEFAULT_TENANT


def test_a_tenants_principal_never_holds_admin_whatever_it_was_given() -> None:
    assert Principal.for_user("acme/root", ["admin", "agents:run"]).scopes == {"agents:run"}
    assert (
        Scope.ADMIN
        not in Principal.for_api_key("k1", name="k", scopes=["admin"], tenant="a").scopes
    )
    assert Principal.for_user("root", ["admin"]).scopes == {"admin"}


@pytest.mark.parametrize("bad", ["user:Bad Tenant/x", "user:default/x", "key:acme/", "user:/x"])
def test_a_malformed_tenant_part_is_not_a_principal_id(bad: str) -> None:
    with pytest.raises(ValueError):
        Principal.from_id(bad)
