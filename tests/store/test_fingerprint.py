"""Failure fingerprints group failures the way a person would.

The tracebacks here are real: small call chains below are made to raise, the text comes
from `traceback.format_exc()`, and variants are derived by rewriting that text the way
another machine, a later commit or another user id would change it.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from store.fingerprint import frames, normalize_message, stack_hash

THIS_FILE = str(Path(__file__))
THIS_MODULE = "/".join(Path(__file__).parts[-2:])  # what the call path keeps of this file


# --- call chains that raise -------------------------------------------------------------


def load_user(uid: int, error: type[Exception] = KeyError) -> None:
    raise error(f"user {uid} missing")


def handler(uid: int, error: type[Exception] = KeyError) -> None:
    load_user(uid, error)


def admin_handler(uid: int) -> None:
    load_user(uid)


def middleware(uid: int) -> None:
    handler(uid)


def describe(obj: object) -> None:
    raise ValueError(f"cannot serialise {obj!r}")


def handler_wrapping_cause(uid: int) -> None:
    try:
        load_user(uid)
    except KeyError as exc:
        raise RuntimeError("lookup failed") from exc


def handler_failing_in_except(uid: int) -> None:
    try:
        load_user(uid)
    except KeyError:
        raise RuntimeError("lookup failed")  # noqa: B904 -- the implicit chain is the point


JOBS_SOURCE = """
def load_user(uid):
    raise KeyError(f"user {uid} missing")


def handler(uid):
    return load_user(uid)
"""


def compiled_handler(filename: str) -> Callable[[int], None]:
    """`handler` from JOBS_SOURCE, with its real frames reporting `filename`."""
    namespace: dict[str, Any] = {}
    exec(compile(JOBS_SOURCE, filename, "exec"), namespace)
    handler_fn: Callable[[int], None] = namespace["handler"]
    return handler_fn


def capture(call: Callable[[], object]) -> tuple[str, str]:
    """(exception type name, formatted traceback) of what `call` raises."""
    try:
        call()
    except Exception as exc:
        return type(exc).__name__, traceback.format_exc()
    raise AssertionError("the call was expected to raise")


def hash_of(call: Callable[[], object]) -> str:
    error_type, stack = capture(call)
    return stack_hash(error_type, stack)


# --- rewrites of a real traceback ------------------------------------------------------


def shift_line_numbers(stack: str) -> str:
    return re.sub(r"line (\d+)", lambda match: f"line {int(match[1]) + 17}", stack)


def move_to_ci_checkout(stack: str) -> str:
    return stack.replace(THIS_FILE, "/srv/ci/build/7731/tests/store/test_fingerprint.py")


def move_to_windows_checkout(stack: str) -> str:
    return stack.replace(THIS_FILE, r"C:\Users\alice\proj\tests\store\test_fingerprint.py")


def change_id_in_message(stack: str) -> str:
    return stack.replace("user 42 missing", "user 90210 missing")


def add_memory_address(stack: str) -> str:
    return stack.replace("user 42 missing", "user <User object at 0x7f3a2b1c9d80> missing")


def test_the_hash_is_sixteen_lowercase_hex_chars() -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", hash_of(lambda: handler(42)))


@pytest.mark.parametrize(
    "rewrite",
    [
        shift_line_numbers,
        move_to_ci_checkout,
        move_to_windows_checkout,
        change_id_in_message,
        add_memory_address,
    ],
)
def test_the_hash_ignores_what_differs_between_runs_of_the_same_failure(
    rewrite: Callable[[str], str],
) -> None:
    error_type, stack = capture(lambda: handler(42))
    variant = rewrite(stack)
    assert variant != stack, "the rewrite must actually change the traceback text"
    assert stack_hash(error_type, variant) == stack_hash(error_type, stack)


def test_the_same_failure_for_another_user_has_the_same_hash() -> None:
    assert hash_of(lambda: handler(42)) == hash_of(lambda: handler(7))


def test_memory_addresses_in_real_messages_do_not_change_the_hash() -> None:
    first = capture(lambda: describe(object()))
    second = capture(lambda: describe(lambda: None))
    assert first[1] != second[1]
    assert stack_hash(*first) == stack_hash(*second)


def test_the_message_argument_is_ignored_when_the_stack_has_frames() -> None:
    error_type, stack = capture(lambda: handler(42))
    assert stack_hash(error_type, stack, "user 42 missing") == stack_hash(error_type, stack, "disk full")


@pytest.mark.parametrize(
    ("call", "other"),
    [
        pytest.param(lambda: handler(42), lambda: handler(42, LookupError), id="another exception type"),
        pytest.param(lambda: handler(42), lambda: admin_handler(42), id="another caller"),
        pytest.param(lambda: handler(42), lambda: middleware(42), id="an extra frame"),
        pytest.param(lambda: handler(42), lambda: load_user(42), id="a missing frame"),
    ],
)
def test_a_different_type_or_call_path_changes_the_hash(
    call: Callable[[], object], other: Callable[[], object]
) -> None:
    assert hash_of(call) != hash_of(other)


@pytest.mark.parametrize(
    "other_path",
    [
        "/srv/ci/build/proj/app/jobs.py",
        r"C:\Users\x\proj\app\jobs.py",
        "/home/alice/.venv/lib/python3.11/site-packages/app/jobs.py",
        "/usr/lib/python3/dist-packages/app/jobs.py",
    ],
)
def test_real_frames_from_another_install_prefix_have_the_same_hash(other_path: str) -> None:
    here = hash_of(lambda: compiled_handler("/home/alice/proj/app/jobs.py")(1))
    assert hash_of(lambda: compiled_handler(other_path)(2)) == here


def test_real_frames_from_another_file_have_another_hash() -> None:
    jobs = hash_of(lambda: compiled_handler("/home/alice/proj/app/jobs.py")(1))
    assert hash_of(lambda: compiled_handler("/home/alice/proj/app/tasks.py")(1)) != jobs


def test_frames_are_the_call_path_with_trailing_module_path_and_function() -> None:
    _, stack = capture(lambda: compiled_handler("/home/alice/proj/app/jobs.py")(1))
    assert frames(stack) == [
        (THIS_MODULE, "capture"),
        (THIS_MODULE, "<lambda>"),
        ("app/jobs.py", "handler"),
        ("app/jobs.py", "load_user"),
    ]


@pytest.mark.parametrize("chained", [handler_wrapping_cause, handler_failing_in_except])
def test_chained_exceptions_contribute_the_frames_of_every_block_in_order(
    chained: Callable[[int], None],
) -> None:
    _, stack = capture(lambda: chained(42))
    name = chained.__name__
    assert frames(stack) == [
        (THIS_MODULE, name),
        (THIS_MODULE, "load_user"),
        (THIS_MODULE, "capture"),
        (THIS_MODULE, "<lambda>"),
        (THIS_MODULE, name),
    ]


def test_the_cause_of_a_chained_exception_is_part_of_the_call_path() -> None:
    error_type, stack = capture(lambda: handler_wrapping_cause(42))
    final_block_only = stack.split("The above exception was the direct cause")[1]
    assert stack_hash(error_type, stack) != stack_hash(error_type, final_block_only)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("user 42 missing", "user <n> missing"),
        ("task-123 failed after 1.25s", "task-<n> failed after <n>s"),
        ("row 550e8400-e29b-41d4-a716-446655440000 is locked", "row <uuid> is locked"),
        ("row 550E8400-E29B-41D4-A716-446655440000 is locked", "row <uuid> is locked"),
        ("cannot pickle <function f at 0x7f3a2b1c9d80>", "cannot pickle <function f at <addr>>"),
        ("commit 9f2c1e7ab4 not found", "commit <hex> not found"),
        ("blob DEADBEEF0042 gone", "blob <hex> gone"),
        ("started 2025-11-04T18:29:12.123Z", "started <ts>"),
        ("started 2025-11-04 18:29:12+02:00", "started <ts>"),
        ("due 2025-11-04", "due <ts>"),
        ("mail to bob.smith+ci@example.co.uk bounced", "mail to <email> bounced"),
        ("  spread \n over\tlines  ", "spread over lines"),
        ("deadbeefcafe has no digit so it is a word", "deadbeefcafe has no digit so it is a word"),
        ("12345678 is a number, not a hex id", "<n> is a number, not a hex id"),
        (
            "'a quoted string that is clearly longer than forty characters'",
            "'a quoted string that is clearly longer than forty characters'",
        ),
    ],
)
def test_normalize_message_replaces_volatile_parts_with_placeholders(message: str, expected: str) -> None:
    assert normalize_message(message) == expected


@pytest.mark.parametrize(
    "message",
    [
        "user 42 missing at 2025-11-04T18:29:12Z from 10.0.0.1",
        "<object object at 0x7f3a2b1c9d80> id=9f2c1e7ab4 mail=a1@b2.example.org",
        "a@b.c1 x0x1 abc12345678g 1.2.3.4.5 -7e-3",
    ],
)
def test_normalize_message_is_idempotent(message: str) -> None:
    once = normalize_message(message)
    assert normalize_message(once) == once


@pytest.mark.parametrize("stack", [None, "", "  \n  "])
@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        (("ValueError", "user 1 missing"), ("ValueError", "user 2 missing"), True),
        (("ValueError", "user 1 missing"), ("ValueError", "disk full"), False),
        (("ValueError", "user 1 missing"), ("TypeError", "user 1 missing"), False),
        (("builtins.ValueError", "bad"), ("ValueError", "bad"), True),
        (("requests.exceptions.ConnectionError", "x"), ("ConnectionError", "x"), False),
        (("ValueError", None), ("ValueError", ""), True),
    ],
)
def test_without_frames_the_hash_covers_type_and_normalized_message(
    stack: str | None, first: tuple[str, str | None], second: tuple[str, str | None], same: bool
) -> None:
    assert (stack_hash(first[0], stack, first[1]) == stack_hash(second[0], stack, second[1])) is same


def test_the_builtins_prefix_is_ignored_with_frames_too() -> None:
    _, stack = capture(lambda: handler(42))
    assert stack_hash("builtins.KeyError", stack) == stack_hash("KeyError", stack)


JS_STACK = """TypeError: Cannot read properties of undefined (reading 'id') for user 42
    at loadUser (/home/alice/app/src/users.js:12:15)
    at handler (/home/alice/app/src/routes.js:40:7)
    at Layer.handle [as handle_request] (/home/alice/app/node_modules/express/lib/router/layer.js:95:5)
    at /home/alice/app/src/server.js:8:3"""

JAVA_STACK = """java.lang.IllegalStateException: user 42 missing
\tat com.acme.users.UserRepo.load(UserRepo.java:42)
\tat com.acme.api.Handler.handle(Handler.java:17)
\tat com.acme.api.Handler$$Lambda$14/0x0000000800c03000.run(Unknown Source)
\tat java.base/java.lang.Thread.run(Thread.java:833)
Caused by: java.sql.SQLException: connection 7 refused
\t... 4 more"""


def test_a_node_stack_is_parsed_into_its_call_path() -> None:
    assert frames(JS_STACK) == [
        ("src/users.js", "loadUser"),
        ("src/routes.js", "handler"),
        ("express/lib/router/layer.js", "Layer.handle [as handle_request]"),
        ("src/server.js", ""),
    ]


def test_a_java_stack_is_parsed_into_its_call_path() -> None:
    assert frames(JAVA_STACK) == [
        ("UserRepo.java", "com.acme.users.UserRepo.load"),
        ("Handler.java", "com.acme.api.Handler.handle"),
        ("Unknown Source", "com.acme.api.Handler$$Lambda$<n>/<addr>.run"),
        ("Thread.java", "java.lang.Thread.run"),
    ]


@pytest.mark.parametrize(
    ("stack", "variant"),
    [
        pytest.param(
            JS_STACK,
            JS_STACK.replace("/home/alice/", "/srv/ci/").replace(":12:15", ":14:3").replace("42", "7"),
            id="node: other prefix, line and id",
        ),
        pytest.param(
            JAVA_STACK,
            JAVA_STACK.replace("java:42", "java:57")
            .replace("java.base/", "java.base@17.0.2/")
            .replace("$14/0x0000000800c03000", "$31/0x0000000801a0f000")
            .replace("user 42", "user 7"),
            id="java: other line, runtime module version, lambda id and message",
        ),
    ],
)
def test_foreign_stacks_of_the_same_failure_have_the_same_hash(stack: str, variant: str) -> None:
    assert variant != stack
    assert stack_hash("Error", variant) == stack_hash("Error", stack)


@pytest.mark.parametrize(
    ("stack", "variant"),
    [
        pytest.param(JS_STACK, JS_STACK.replace("at handler", "at adminHandler"), id="node: other caller"),
        pytest.param(
            JAVA_STACK, JAVA_STACK.replace("UserRepo.load", "UserRepo.save"), id="java: other method"
        ),
    ],
)
def test_foreign_stacks_with_another_call_path_have_another_hash(stack: str, variant: str) -> None:
    assert stack_hash("Error", variant) != stack_hash("Error", stack)


def test_an_unknown_stack_format_falls_back_to_normalized_lines() -> None:
    go_panic = (
        "panic: index 5 out of range\n\ngoroutine 1 [running]:\nmain.handler()\n"
        "\t/home/u/app/main.go:12 +0x1d"
    )
    moved = go_panic.replace("/home/u/", "/build/").replace(":12", ":19").replace("index 5", "index 9")
    assert frames(go_panic)[-1] == ("app/main.go:<n> +<addr>", "")
    assert stack_hash("panic", moved) == stack_hash("panic", go_panic)


@pytest.mark.parametrize(
    "stack",
    [
        pytest.param("at" + " \t" * 5_000, id="whitespace after at"),
        pytest.param("at " + "a (" * 20_000, id="unbalanced parens"),
        pytest.param('File "x", line 1, in ' + "\t " * 20_000 + "x", id="padded python frame"),
        pytest.param("a" * 200_000, id="one long word"),
        pytest.param("1." * 100_000, id="long dotted number"),
    ],
)
def test_pathological_stacks_are_hashed_in_linear_time(stack: str) -> None:
    # Stack text is untrusted input at write time; a backtracking regex would stall the writer.
    started = time.perf_counter()
    stack_hash("Error", stack, stack)
    assert time.perf_counter() - started < 1.0
