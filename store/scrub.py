"""PII and credential scrubbing, applied to values before they are written to the store.

Error messages, task arguments and results routinely carry e-mail addresses, client IPs,
request ids and credentials. Once persisted they are hard to purge, so everything is
scrubbed at write time. Replacements are *typed* placeholders ([EMAIL], [IPV4], [SECRET],
...) so a reader still sees what kind of value was there.

The patterns err on the side of leaving ordinary diagnostics intact: stack-trace lines,
memory addresses, version strings, timestamps and clock times must survive unchanged,
otherwise scrubbed failures stop being debuggable.

Pure functions, standard library only, no I/O.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from typing import Any

__all__ = ["EMAIL", "IPV4", "IPV6", "SECRET", "UUID", "scrub_text", "scrub_value"]

EMAIL = "[EMAIL]"
IPV4 = "[IPV4]"
IPV6 = "[IPV6]"
SECRET = "[SECRET]"
UUID = "[UUID]"

_Replacement = str | Callable[[re.Match[str]], str]

# Key names whose value is a credential. A prefix is allowed (db_password, access_token,
# x-api-key) but the name must END in the keyword, so max_tokens or token_count do not match.
_SECRET_KEY = r"[\w-]*?(?:passw(?:or)?d|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)"
_SECRET_KEY_NAME = re.compile(_SECRET_KEY, re.IGNORECASE)

_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"
    # The body may not run into another BEGIN, so many unterminated blocks stay linear to scan.
    r"(?:(?:(?!-----BEGIN ).)*?-----END [A-Z0-9 ]*PRIVATE KEY-----"
    # No END line (message truncated): the base64 body up to the first other character goes.
    r"|[A-Za-z0-9+/=\s\\]*)",
    re.DOTALL,
)
_JWT = re.compile(r"\beyJ[\w-]+\.eyJ[\w-]+\.[\w-]*")
_URL_PASSWORD = re.compile(r"(?<=://)(?P<user>[^\s:/@\[\]]+):(?!\[SECRET\]@)[^\s@/]+@")
_AUTHORIZATION = re.compile(
    r"(?P<head>\bauthorization\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?(?:(?:basic|bearer|token|digest)[ \t]+)?+)"
    r"(?!\[SECRET\])[^\s\"',;\\]+",
    re.IGNORECASE,
)
# A real bearer token has a digit or is long; this spares "Bearer authentication failed".
_BEARER = re.compile(r"\b(?P<word>bearer)[ \t]+(?=[\w.~+/-]*\d|[\w.~+/-]{20})[\w.~+/-]{8,}=*", re.IGNORECASE)
_KEY_VALUE = re.compile(
    rf"(?P<key>(?<![\w-])\\?[\"']?{_SECRET_KEY}\\?[\"']?[ \t]*[:=]>?[ \t]*)"
    r"(?P<value>\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|\\\"(?:(?!\\\").)*\\\""
    r"|[^\s,;&\"'(){}\[\]<>=][^\s,;&\"'(){}\[\]<>]*)",
    re.IGNORECASE,
)
_API_KEY = re.compile(
    r"\b(?:sk-[\w-]{16,}|[spr]k_(?:live|test)_\w{8,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}"
    r"|xox[abposr]-[\w-]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[\w-]{30,})"
)
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b")
# Only a candidate: anything made of hex groups and colons. `_mask_ipv6` validates it, so
# clock times (12:30:45) and C++/Python `::` are rejected there, not by this pattern.
_IPV6_CANDIDATE = re.compile(
    r"(?P<open>\[)?(?<![\w:.])(?P<addr>[0-9A-Fa-f]*:[0-9A-Fa-f:]*(?:\d{1,3}(?:\.\d{1,3}){3})?)"
    r"(?:%[\w.-]+)?(?![\w:]|\.\w)(?(open)\])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# The lookarounds reject longer dotted numbers (1.2.3.4.5) and prefixed versions (v1.2.3.4).
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")


_MEMO_CHARS = 4096
"""Texts up to this long are scrubbed once and remembered (the same stack, the same result
text recur run after run); the memo holds at most a few MiB."""


def scrub_text(text: str) -> tuple[str, bool]:
    """Return `text` with PII and credentials replaced by typed placeholders, and whether any were."""
    return _scrub_remembered(text) if len(text) <= _MEMO_CHARS else _scrub_text(text)


def _scrub_text(text: str) -> tuple[str, bool]:
    scrubbed = text
    folds = text.isascii()  # placeholders are ASCII, so every step of an ASCII text stays ASCII
    for pattern, replacement, needed in _RULES:
        if needed is None or needed(scrubbed, folds):
            scrubbed = pattern.sub(replacement, scrubbed)
    return scrubbed, scrubbed != text


_scrub_remembered = functools.lru_cache(maxsize=512)(_scrub_text)


def scrub_value(value: object) -> tuple[object, bool]:
    """Scrub every string inside nested dicts/lists/tuples; dict keys are kept as they are."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return _scrub_mapping(value)
    if isinstance(value, list | tuple):
        return _scrub_sequence(value)
    return value, False


def _scrub_mapping(mapping: dict[Any, Any]) -> tuple[dict[Any, Any], bool]:
    entries = {key: _scrub_entry(key, item) for key, item in mapping.items()}
    return {key: new for key, (new, _) in entries.items()}, any(changed for _, changed in entries.values())


def _scrub_entry(key: object, item: object) -> tuple[object, bool]:
    # {"password": "hunter2"}: the value alone looks harmless, only its key says it is secret.
    credential = isinstance(key, str) and _SECRET_KEY_NAME.fullmatch(key) is not None
    if credential and isinstance(item, str) and item not in ("", SECRET):
        return SECRET, True
    return scrub_value(item)


def _scrub_sequence(items: list[Any] | tuple[Any, ...]) -> tuple[object, bool]:
    results = [scrub_value(item) for item in items]
    scrubbed = [new for new, _ in results]
    changed = any(flag for _, flag in results)
    return (tuple(scrubbed) if isinstance(items, tuple) else scrubbed), changed


def _mask_key_value(match: re.Match[str]) -> str:
    value = match["value"]
    quote = _quote_of(value)
    inner = value[len(quote) : len(value) - len(quote)]
    if not inner or inner == SECRET or _is_code(match, quote):
        return match[0]
    return f"{match['key']}{quote}{SECRET}{quote}"


def _quote_of(value: str) -> str:
    if value.startswith('\\"'):
        return '\\"'
    return value[0] if value[0] in "\"'" else ""


def _is_code(match: re.Match[str], quote: str) -> bool:
    # `token = request.headers[...]` / `password = load()` in a traceback's source line is
    # code, not a credential; mangling it would make the trace unreadable for no gain.
    following = match.string[match.end() : match.end() + 1]
    return not quote and following in ("(", "[") and match["value"][0].isidentifier()


def _mask_ipv6(match: re.Match[str]) -> str:
    return IPV6 if _is_ipv6(match["addr"]) else match[0]


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return "::" not in text or text == "::1" or _plausible_compressed(text)


def _plausible_compressed(text: str) -> bool:
    # `1::2`, `::2` or `a::b` are valid addresses but far more often Python slices; demand
    # two groups, one of which looks like a real address part (fe80, 2001, db8, an IPv4 tail).
    groups = [group for group in text.split(":") if group]
    return len(groups) >= 2 and any(_distinctive_group(group) for group in groups)


def _distinctive_group(group: str) -> bool:
    return "." in group or len(group) == 4 or (len(group) == 3 and not group.isdigit())


# Before each rule runs, a cheap test of something every match of it must contain: a text
# without it is left as the rule would leave it, so skipping the regex changes nothing (the
# regexes are most of a write's CPU time: ~460 us for a 700-character stack, ~20 us for a
# short result). A case-insensitive rule is tested on the lower-cased text only for ASCII
# text: `re.IGNORECASE` also matches a few non-ASCII letters (the Kelvin sign, the long s,
# the dotless i) that lower() does not map, so other text always gets the regex.
_Needed = Callable[[str, bool], bool] | None


def _contains(*needles: str) -> _Needed:
    if len(needles) == 1:
        (needle,) = needles
        return lambda text, _folds: needle in text
    found = re.compile("|".join(map(re.escape, needles))).search  # one C scan for any of them
    return lambda text, _folds: found(text) is not None


def _contains_folded(*needles: str) -> _Needed:
    found = re.compile("|".join(map(re.escape, needles))).search
    return lambda text, folds: not folds or found(text.lower()) is not None


def _searches(pattern: str) -> _Needed:
    found = re.compile(pattern).search
    return lambda text, _folds: found(text) is not None


_API_KEY_PREFIXES = ("sk-", "k_live_", "k_test_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")
_API_KEY_PREFIXES += ("xox", "AKIA", "ASIA", "AIza")

# Order matters. Credentials go first, while their context (key names, "Bearer", URL
# structure) is still intact and before a UUID or e-mail inside a token is replaced
# piecemeal. UUIDs go before IPv6 so their hex never reaches the IPv6 candidate.
_RULES: tuple[tuple[re.Pattern[str], _Replacement, _Needed], ...] = (
    (_PEM_PRIVATE_KEY, SECRET, _contains("-----BEGIN ")),
    (_JWT, SECRET, _contains("eyJ")),
    (_URL_PASSWORD, rf"\g<user>:{SECRET}@", _contains("://")),
    (_AUTHORIZATION, rf"\g<head>{SECRET}", _contains_folded("authorization")),
    (_BEARER, rf"\g<word> {SECRET}", _contains_folded("bearer")),
    # Every key name of _SECRET_KEY holds one of these.
    (_KEY_VALUE, _mask_key_value, _contains_folded("passw", "pwd", "secret", "token", "key")),
    (_API_KEY, SECRET, _contains(*_API_KEY_PREFIXES)),
    (_UUID, UUID, _contains("-")),
    (_EMAIL, EMAIL, _contains("@")),
    # Only a valid address is replaced, and a valid address has two colons with at most hex
    # digits between them.
    (_IPV6_CANDIDATE, _mask_ipv6, _searches(r":[0-9A-Fa-f]*:")),
    (_IPV4, IPV4, _searches(r"\d\.\d")),
)
