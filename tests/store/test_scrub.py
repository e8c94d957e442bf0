"""PII scrubbing at write time: typed placeholders in, ordinary diagnostics left alone."""

from __future__ import annotations

import time

import pytest

from store.scrub import scrub_text, scrub_value

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7x\nq0Zb9==\n-----END RSA PRIVATE KEY-----"

SCRUBBED = [
    # e-mail
    ("mail alice.smith+ci@example.co.uk bounced", "mail [EMAIL] bounced"),
    ("owner=bob@corp.example", "owner=[EMAIL]"),
    # IPv4
    ("connect 10.0.0.1:5432 refused", "connect [IPV4]:5432 refused"),
    ("from 192.168.1.255.", "from [IPV4]."),
    ("peer 0.0.0.0 and 255.255.255.255", "peer [IPV4] and [IPV4]"),
    # IPv6
    ("bind 2001:0db8:85a3:0000:0000:8a2e:0370:7334 failed", "bind [IPV6] failed"),
    ("route via 2001:db8::8a2e:370:7334", "route via [IPV6]"),
    ("link-local fe80::1%eth0 down", "link-local [IPV6] down"),
    ("loopback ::1 only", "loopback [IPV6] only"),
    ("GET http://[2001:db8::1]:8080/health", "GET http://[IPV6]:8080/health"),
    ("mapped ::ffff:192.0.2.1 seen", "mapped [IPV6] seen"),
    # UUID
    ("request 550e8400-e29b-41d4-a716-446655440000 failed", "request [UUID] failed"),
    ("request 550E8400-E29B-11D4-A716-446655440000 failed", "request [UUID] failed"),
    # bearer and authorization headers keep the scheme word
    ("Authorization: Bearer abc123def456ghi789", "Authorization: Bearer [SECRET]"),
    ("sent bearer 0a1b2c3d4e5f6a7b", "sent bearer [SECRET]"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [SECRET]"),
    ('headers={"Authorization": "Basic dXNlcjpwYXNz"}', 'headers={"Authorization": "Basic [SECRET]"}'),
    # credential key=value / key: value / "key": "value", the key is kept
    ("login password=hunter2 ok", "login password=[SECRET] ok"),
    ("PASSWD: letmein", "PASSWD: [SECRET]"),
    ("pwd=x", "pwd=[SECRET]"),
    ("secret = s3cr3t", "secret = [SECRET]"),
    ("url?token=abc123&page=2", "url?token=[SECRET]&page=2"),
    ("api_key=abc apikey: def", "api_key=[SECRET] apikey: [SECRET]"),
    ('{"access_key": "AK1", "private_key": "pk"}', '{"access_key": "[SECRET]", "private_key": "[SECRET]"}'),
    ("{'client_secret': 'two words'}", "{'client_secret': '[SECRET]'}"),
    ('{\\"db_password\\": \\"x\\"}', '{\\"db_password\\": \\"[SECRET]\\"}'),
    ("env AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI", "env AWS_SECRET_ACCESS_KEY=[SECRET]"),
    # credentials in URLs
    (
        "dsn postgres://admin:s3cr3t@db.internal:5432/app",
        "dsn postgres://admin:[SECRET]@db.internal:5432/app",
    ),
    # API-key shaped strings
    ("key sk-proj-abcdefghijklmnop1234", "key [SECRET]"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe [SECRET]"),
    ("stripe pk_live_51H8abcdEFGH", "stripe [SECRET]"),
    ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [SECRET]"),
    ("gh gho_16C7e42F292c6912E7710c838347Ae178B4a", "gh [SECRET]"),
    ("gh github_pat_11ABCDEFG0123456789_abcdefghij", "gh [SECRET]"),
    ("slack xoxb-1234567890-abcdefghij", "slack [SECRET]"),
    ("slack xoxp-1234567890-abcdefghij", "slack [SECRET]"),
    ("aws AKIAIOSFODNN7EXAMPLE", "aws [SECRET]"),
    ("google AIzaSyA-1234567890abcdefghijklmnopqrstu", "google [SECRET]"),
    (f"jwt {JWT} expired", "jwt [SECRET] expired"),
    (f"Authorization: Bearer {JWT}", "Authorization: Bearer [SECRET]"),
    (f"key:\n{PEM}\nloaded", "key:\n[SECRET]\nloaded"),
    ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "[SECRET]"),
    # several categories in one message
    (
        "user bob@example.com from 10.1.2.3 token=t0k3n req 550e8400-e29b-41d4-a716-446655440000",
        "user [EMAIL] from [IPV4] token=[SECRET] req [UUID]",
    ),
]

UNCHANGED = [
    'File "/app/x.py", line 12, in f',
    "    raise KeyError(f'user {uid} missing')",
    "cannot pickle <function f at 0x7f3a2b1c9d80>",
    "address 0x7f3a2b",
    "requires v1.2.3, got 1.2.3.4.5 or v1.2.3.4",
    "not an address: 256.1.1.1",
    "started 2025-11-04T18:29:12Z",
    "logged 2025-11-04 18:29:12,345",
    "at 12:30:45 and again at 10:00",
    "items[::2] and items[1::2] and items[::-1]",
    "std::vector<int>::iterator and Foo::Bar",
    "MAC 00:1a:2b:3c:4d:5e",
    "max_tokens=100 token_count=5 secret_name=db",
    "Bearer authentication failed: missing Bearer token",
    "Authorization header missing",
    '    token = request.headers["Authorization"]',
    "    password = load_password()",
    "password=",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "user@localhost",
]


@pytest.mark.parametrize(("text", "expected"), SCRUBBED)
def test_scrub_text_replaces_pii_and_secrets_with_typed_placeholders(text: str, expected: str) -> None:
    assert scrub_text(text) == (expected, True)


@pytest.mark.parametrize("text", UNCHANGED)
def test_scrub_text_leaves_ordinary_diagnostics_unchanged(text: str) -> None:
    assert scrub_text(text) == (text, False)


@pytest.mark.parametrize("text", [text for text, _ in SCRUBBED] + UNCHANGED)
def test_scrub_text_is_idempotent(text: str) -> None:
    once, _ = scrub_text(text)
    assert scrub_text(once) == (once, False)


def test_scrub_value_scrubs_nested_strings_but_never_keys() -> None:
    value = {
        "owner@example.com": "notify ops@example.com",
        "hosts": ["10.0.0.1", ("2001:db8::1", 8080)],
        "nested": {"trace": "req 550e8400-e29b-41d4-a716-446655440000"},
        "count": 3,
        "ratio": 0.5,
        "flag": None,
    }
    scrubbed, changed = scrub_value(value)
    assert changed is True
    assert scrubbed == {
        "owner@example.com": "notify [EMAIL]",
        "hosts": ["[IPV4]", ("[IPV6]", 8080)],
        "nested": {"trace": "req [UUID]"},
        "count": 3,
        "ratio": 0.5,
        "flag": None,
    }
    assert value["hosts"] == ["10.0.0.1", ("2001:db8::1", 8080)], "the input must not be mutated"


def test_scrub_value_masks_string_values_stored_under_credential_keys() -> None:
    scrubbed, changed = scrub_value({"password": "hunter2", "api_key": "abc", "max_tokens": "100"})
    assert (scrubbed, changed) == ({"password": "[SECRET]", "api_key": "[SECRET]", "max_tokens": "100"}, True)


@pytest.mark.parametrize(
    "value",
    [
        {"status": "ok", "items": [1, 2.5, None, True], "pair": ("a", "b")},
        ["plain", ("text",), {"n": 1}],
        "nothing to hide",
        42,
        None,
        {"password": "[SECRET]", "token": ""},
    ],
)
def test_scrub_value_reports_no_change_when_nothing_was_replaced(value: object) -> None:
    assert scrub_value(value) == (value, False)


def test_scrub_value_keeps_the_container_types() -> None:
    scrubbed, _ = scrub_value(("a@b.example", ["c@d.example"]))
    assert scrubbed == ("[EMAIL]", ["[EMAIL]"])
    assert isinstance(scrubbed, tuple)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a" * 200_000, id="one long word"),
        pytest.param("1." * 50_000, id="long dotted number"),
        pytest.param("-----BEGIN PRIVATE KEY-----" * 5_000, id="unterminated pem blocks"),
        pytest.param("password" * 25_000, id="repeated key name"),
        pytest.param("a:" * 50_000, id="hex and colons"),
    ],
)
def test_pathological_text_is_scrubbed_in_linear_time(text: str) -> None:
    # Scrubbing runs on every write; a backtracking regex would stall the writer.
    started = time.perf_counter()
    scrub_text(text)
    assert time.perf_counter() - started < 1.0


def scrub_without_guards(text: str) -> str:
    """Every rule's regex, always run: what the guards in store.scrub must never differ from."""
    from store.scrub import _RULES

    for pattern, replacement, _needed in _RULES:
        text = pattern.sub(replacement, text)
    return text


FRAGMENTS = [
    *(text for text, _ in SCRUBBED), *UNCHANGED, "Authorization: Bearer abcdefgh12345678", "AUTHORIZATION=x",
    "\u212aey=abc", "pa\u017f\u017fword: hunter2", "Authori\u0131ation: Basic Zm9vOmJhcg==",
    "BEARER tok3n.value.xyz",
    "ghp_" + "a" * 24, "sk_live_abcdefghij", "xoxb-1234567890-abc", "AKIA" + "A" * 16, "AIza" + "b" * 32,
    "https://user:pw@host/x", "fe80::1", "::", "a:b", "1:2:3", "0x7f:ff", "3.11.7",
    "\u0661.\u0662.\u0663.\u0664",
    "x@y", "id 6ba7b810-9dad-11d1-80b4-00c04fd430c8", "token = request.headers['x']", "api-key=\"s3cr3t\"",
]  # fmt: skip


def test_the_rules_cheap_guards_never_change_what_scrubbing_returns() -> None:
    import random

    rng = random.Random(2)
    texts = [*FRAGMENTS, *(" ".join(rng.sample(FRAGMENTS, 3)) for _ in range(3000))]
    texts += ["".join(rng.sample(FRAGMENTS, 2)) for _ in range(1000)]  # no space between them
    for text in texts:
        assert scrub_text(text)[0] == scrub_without_guards(text), text
