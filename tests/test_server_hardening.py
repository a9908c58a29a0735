"""Issue #17's probes against a real API process (`adguide serve api`, uvicorn on loopback) over real Redis and
PostgreSQL, with the rules backend: hostile message shapes (hypothesis) never fail a turn nor poison the thread;
ids and paths that cannot be ids are a 4xx over a raw socket (no client normalises them first); unauthenticated
/readyz says ready and nothing more; two simultaneous confirmations (real threads) apply one change with one
audit row; the two questions that once got an empty answer get words."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server_support import ADMIN, ADV1, cleanup, free_port, start_api, stop, unique_settings
from tools.market.store import MarketStore

JSON = {"Accept": "application/json"}
SHAPE_EXAMPLES = 30  # turns of about 0.1-0.5 s on the rules backend


@pytest.fixture(scope="module")
def api(tiny_world_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, its private world file): one API process for the module."""
    tmp = tmp_path_factory.mktemp("hardening")
    for f in tiny_world_path.parent.iterdir():
        if f.is_file():
            shutil.copy2(f, tmp / f.name)
    world = tmp / tiny_world_path.name
    s = unique_settings(world)
    port = free_port()
    proc = start_api(s, port, tmp / "api.log")
    try:
        yield f"http://127.0.0.1:{port}", world
    finally:
        stop(proc)
        cleanup(s)


def _raw(
    base: str, target: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """A request with its target exactly as given: (status, body); status 0 where the connection dropped."""
    host, port = base.removeprefix("http://").split(":")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if method == "POST":
        lines += ["Content-Type: application/json", "Content-Length: 2"]
    data = b""
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n" + ("{}" if method == "POST" else "")).encode())
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            return 0, data
    if not data.startswith(b"HTTP/1.1 "):
        return 0, data
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def _thread(client: httpx.Client) -> str:
    r = client.post("/v1/threads", json={}, headers=ADV1)
    assert r.status_code == 201, r.text
    return str(r.json()["thread_id"])


def _turn(client: httpx.Client, tid: str, message: str) -> dict[str, Any]:
    r = client.post(f"/v1/threads/{tid}/messages", json={"message": message}, headers={**ADV1, **JSON})
    assert r.status_code == 200, (message[:40], r.status_code, r.text[:300])
    turn: dict[str, Any] = r.json()
    errors = [e for e in turn["events"] if e["type"] == "error"]
    assert not errors and turn["text"].strip(), (message[:40], errors, turn["text"][:200])
    return turn


_BRACKETS = st.sampled_from(["[", "{", "(", "<", '{"a": ', "[[", '"'])
_SHAPES = st.one_of(
    st.builds(lambda b, n: b * n, _BRACKETS, st.integers(1, 3000)),
    st.builds(
        lambda n, m: "[" * n + "how is my account doing?" + "]" * m, st.integers(0, 600), st.integers(0, 600)
    ),
    st.builds(lambda d: "set the bid of kw_0000001 to $" + "9" * d, st.integers(1, 3000)),
    st.builds(
        lambda xs: "my daily spend: " + " ".join(f"{x:.2f}" for x in xs) + ". how am I doing?",
        st.lists(st.floats(0, 1e6, allow_nan=False), max_size=400),
    ),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=400),
    st.text(st.sampled_from("[]{}()<>\"'\\:,0123456789$%-. \x00\t\n\u200b\u202e"), min_size=1, max_size=2000),
)


def test_hostile_message_shapes_are_answered_and_never_poison_the_thread(api: tuple[str, Path]) -> None:
    base, _ = api
    with httpx.Client(base_url=base, timeout=60) as client:
        tid = _thread(client)
        _turn(client, tid, "[" * 3000)  # the probe: once turn_failed here and on every later turn
        _turn(client, tid, '{"a": ' * 500 + "1" + "}" * 500)
        _turn(client, tid, "9" * 3999)

        @settings(
            max_examples=SHAPE_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(_SHAPES)
        def one(message: str) -> None:
            r = client.post(
                f"/v1/threads/{tid}/messages", json={"message": message}, headers={**ADV1, **JSON}
            )
            if r.status_code == 422:  # empty or over the length limit: a clear error, nothing kept
                assert r.json()["error"]["code"] in ("empty_message", "message_too_long", "invalid_input")
                return
            assert r.status_code == 200, (message[:40], r.status_code, r.text[:300])
            assert not [e for e in r.json()["events"] if e["type"] == "error"], (message[:40], r.text[:300])
            assert r.json()["text"].strip() or r.json()["confirmation"], message[:40]

        one()
        after = _turn(client, tid, "How is my account doing?")
        assert "$" in after["text"]  # the thread reads the account as usual after all of it
        history = client.get(f"/v1/threads/{tid}", headers=ADV1).json()
        assert history["messages"][-1]["role"] == "assistant"


def test_ids_and_paths_that_cannot_be_ids_get_4xx_over_a_raw_socket(api: tuple[str, Path]) -> None:
    base, _ = api
    adv = {"Authorization": ADV1["Authorization"]}
    admin = {"Authorization": ADMIN["Authorization"]}
    with httpx.Client(base_url=base, timeout=30) as client:
        tid = _thread(client)
    probes = [
        ("GET", "/v1/threads/th_a%00b", adv, 422),
        ("POST", "/v1/threads/th_a%00b/messages", adv, 422),
        ("POST", "/v1/threads/th_a%00b/confirmation", adv, 422),
        ("GET", "/v1/jobs/job_a%00b", admin, 422),
        ("GET", "/v1/jobs/job_a%00b/results", admin, 422),
        ("GET", "/v1/jobs/" + "j" * 5000, admin, 422),
        ("POST", "/v1/jobs/" + "j" * 5000 + "/requeue", admin, 422),
        ("GET", "/v1/threads/" + "t" * 5000, adv, 422),
        ("GET", f"/v1/threads/{tid}/../{tid}", adv, 404),
        ("POST", f"/v1/threads/x/../../threads/{tid}/messages", adv, 404),
        ("GET", "/v1/threads/../../../etc/passwd", adv, 404),
        ("GET", "/v1/threads/%2e%2e/%2e%2e/readyz", adv, 404),
        ("GET", "/v1/threads?limit=%00", adv, 422),
    ]
    for method, target, headers, expected in probes:
        status, body = _raw(base, target, method, headers)
        assert status == expected, (method, target[:60], status, body[:200])
        assert b'"error"' in body and b"/etc/" not in body.replace(b"/etc/passwd", b""), body[:200]
    status, _ = _raw(base, "/healthz")
    assert status == 200  # nothing above broke the server


def test_readyz_tells_the_anonymous_caller_ready_and_nothing_more(api: tuple[str, Path]) -> None:
    base, world = api
    with httpx.Client(base_url=base, timeout=30) as client:
        for headers in ({}, ADV1, {"Authorization": "Bearer wrong"}):
            r = client.get("/readyz", headers=headers)
            assert r.status_code == 200 and r.json() == {"status": "ready"}, r.text
            assert str(world.parent) not in r.text and "/" not in r.text
        admin = client.get("/readyz", headers=ADMIN).json()
        assert set(admin["checks"]) == {"redis", "postgres", "model", "world"}


def _bid_and_audit(world: Path, keyword_id: str) -> tuple[float, list[Any]]:
    with MarketStore.open(world) as store:
        scoped = store.scoped("adv_0001")
        return next(k.bid for k in scoped.keywords() if k.id == keyword_id), scoped.audit_log()


def _confirm_at_once(base: str, tid: str, body: dict[str, Any]) -> list[tuple[int, Any]]:
    """Two confirmations of one proposal from two OS threads, released together: (status, JSON) of each."""
    barrier = threading.Barrier(2)
    answers: list[tuple[int, Any]] = []

    def confirm() -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            barrier.wait()
            resp = c.post(f"/v1/threads/{tid}/confirmation", json=body, headers={**ADV1, **JSON})
            answers.append((resp.status_code, resp.json()))

    threads = [threading.Thread(target=confirm) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return answers


@pytest.mark.parametrize("token", [True, False])
def test_two_simultaneous_confirmations_apply_one_change_with_one_audit_row(
    api: tuple[str, Path], token: bool
) -> None:
    base, world = api
    with MarketStore.open(world) as store:
        kws = [k for k in store.scoped("adv_0001").keywords() if k.bid > 0.3]
    for round_ in range(3):  # three proposals, each confirmed twice at once
        kw = kws[round_ + (3 if token else 0)]
        before_bid, before_log = _bid_and_audit(world, kw.id)
        new_bid = round(before_bid * 1.1 + 0.01, 2)
        with httpx.Client(base_url=base, timeout=60) as client:
            tid = _thread(client)
            r = client.post(
                f"/v1/threads/{tid}/messages",
                json={"message": f"Set the bid of {kw.id} to ${new_bid}"},
                headers={**ADV1, **JSON},
            )
            proposal = r.json()["confirmation"]
            assert proposal and proposal["token"], r.text[:300]
        body = {"decision": "confirm"} | ({"token": proposal["token"]} if token else {})
        answers = _confirm_at_once(base, tid, body)
        statuses = sorted(s for s, _ in answers)
        assert statuses == [200, 409], answers
        applied = next(b for s, b in answers if s == 200)
        refused = next(b for s, b in answers if s == 409)
        assert "Applied" in applied["text"] and refused["error"]["code"] in (
            "turn_in_progress",
            "nothing_to_confirm",
        )
        bid, log = _bid_and_audit(world, kw.id)
        added = log[len(before_log) :]
        assert bid == new_bid and [(a.action, a.entity, a.after) for a in added] == [
            ("set_bid", kw.id, new_bid)
        ]
        with httpx.Client(base_url=base, timeout=30) as client:  # and nothing is left to confirm
            again = client.post(f"/v1/threads/{tid}/confirmation", json=body, headers=ADV1)
            assert again.status_code == 409 and again.json()["error"]["code"] == "nothing_to_confirm"
        assert _bid_and_audit(world, kw.id)[1] == log


EMPTY_ONCE = [
    "what if I halved the bid of {kw}?",
    "what happens if I cut the bid on '{name}' in half?",
    "which keyword should I stop bidding on? don't change anything",
]


def test_questions_that_once_got_an_empty_answer_get_words(api: tuple[str, Path]) -> None:
    base, world = api
    with MarketStore.open(world) as store:
        kw = next(k for k in store.scoped("adv_0001").keywords() if k.bid > 0.3)
    with httpx.Client(base_url=base, timeout=60) as client:
        for message in EMPTY_ONCE:
            tid = _thread(client)
            turn = _turn(client, tid, message.format(kw=kw.id, name=kw.text))
            assert turn["confirmation"] is None, message  # a what-if or a question proposes nothing
            finals = [e for e in turn["events"] if e["type"] == "final"]
            assert len(finals) == 1 and finals[0]["text"].strip(), message
