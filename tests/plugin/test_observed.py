"""The harness's eyes and hands on one store: Portal, ObservedRedis, ControlledPubSub.

Each promise is checked on fakeredis and on a private redis-server (the
``redis_backend`` fixture), and each check can fail: counts are exact, held
messages are observed before they are released, a pending read is seen failing.
Scenarios that play the store run on a :class:`Portal`, like real stores do;
the controller's calls come from the test thread, as in user tests.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import fakeredis
import pytest
import redis.exceptions

from pytest_quantum_p1._harness.observed import ObservedRedis
from pytest_quantum_p1._harness.portal import Portal
from pytest_quantum_p1._harness.pubsub import BarrierBroken, ControlledPubSub, Message, as_text
from pytest_quantum_p1._target import DEFAULT_CHANNEL
from tests.conftest import RedisBackend

CHANNEL = DEFAULT_CHANNEL


@pytest.fixture
def portal() -> Iterator[Portal]:
    with Portal(name="test-portal") as running:
        yield running


@dataclass
class Rig:
    """One observed client (the store's) and one control client, on a portal."""

    portal: Portal
    observed: ObservedRedis
    control: Any

    def run(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        return self.portal.call(fn, timeout=10)

    def publish(self, data: str | bytes) -> int:
        async def publish() -> int:
            receivers: int = await self.control.publish(CHANNEL, data)
            return receivers

        return int(self.run(publish))

    def subscribed_pubsub(self, **kwargs: Any) -> ControlledPubSub:
        """A pubsub subscribed to CHANNEL, its confirmation already consumed."""

        async def open_pubsub() -> ControlledPubSub:
            pubsub = self.observed.pubsub(**kwargs)
            await pubsub.subscribe(CHANNEL)
            confirmation = await pubsub.get_message(timeout=5)
            assert confirmation is not None
            assert confirmation["type"] == "subscribe"
            return pubsub

        pubsub: ControlledPubSub = self.run(open_pubsub)
        return pubsub

    def next_message(self, pubsub: ControlledPubSub, timeout: float | None = 5) -> Message | None:
        async def get() -> Message | None:
            return await pubsub.get_message(timeout=timeout)

        message: Message | None = self.run(get)
        return message


@pytest.fixture
def rig(portal: Portal, redis_backend: RedisBackend) -> Iterator[Rig]:
    async def open_rig() -> Rig:
        return Rig(
            portal, ObservedRedis(redis_backend.client(), label="store"), redis_backend.client()
        )

    opened: Rig = portal.call(open_rig)
    yield opened

    async def close_rig() -> None:
        await opened.observed.close_pubsubs()
        await opened.observed.aclose()
        await opened.control.aclose()

    portal.call(close_rig)


def data_of(messages: tuple[Message, ...] | list[Message]) -> list[Any]:
    return [m["data"] for m in messages]


# -- Portal -------------------------------------------------------------------


def test_portal_call_runs_on_its_own_thread_and_propagates_errors(portal: Portal) -> None:
    async def where() -> int:
        return threading.get_ident()

    async def fail() -> None:
        raise KeyError("boom")

    assert portal.call(where) != threading.get_ident()
    with pytest.raises(KeyError, match="boom"):
        portal.call(fail)


def test_portal_acall_from_another_loop(portal: Portal) -> None:
    async def on_portal(x: int) -> tuple[int, asyncio.AbstractEventLoop]:
        return x * 2, asyncio.get_running_loop()

    async def test_side() -> tuple[int, asyncio.AbstractEventLoop]:
        return await portal.acall(on_portal, 21)

    value, loop = asyncio.run(test_side())
    assert value == 42
    assert loop is portal.loop


def test_portal_call_from_its_own_thread_is_refused(portal: Portal) -> None:
    async def noop() -> None:
        return None

    async def reentrant() -> None:
        portal.call(noop)

    with pytest.raises(RuntimeError, match="would block the event loop"):
        portal.call(reentrant)


def test_portal_call_timeout_cancels_the_coroutine(portal: Portal) -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    with pytest.raises(TimeoutError, match=r"forever did not finish within 0\.05s"):
        portal.call(forever, timeout=0.05)

    async def was_cancelled() -> bool:
        await cancelled.wait()
        return True

    assert portal.call(was_cancelled, timeout=5)


def test_portal_close_cancels_leftover_tasks_and_joins() -> None:
    finished = threading.Event()
    portal = Portal()

    async def leftover() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            finished.set()

    future = portal.spawn(leftover)
    portal.close()
    assert finished.is_set()
    assert future.cancelled()
    assert portal.closed
    with pytest.raises(RuntimeError, match="closed"):
        portal.run(asyncio.sleep(0))
    portal.close()  # idempotent


# -- ObservedRedis: counted reads -------------------------------------------------


def test_direct_reads_are_counted_per_command(rig: Rig) -> None:
    async def reads() -> None:
        store = rig.observed
        await store.set("k", "v")
        await store.hset("h", mapping={"f": "1"})
        assert await store.get("k") == b"v"
        assert await store.mget(["k", "missing"]) == [b"v", None]
        assert await store.hget("h", "f") == b"1"
        assert await store.hgetall("h") == {b"f": b"1"}
        assert await store.hmget("h", ["f"]) == [b"1"]
        assert await store.exists("k") == 1
        assert await store.execute_command("GET", "k") == b"v"
        await store.execute_command("SET", "k2", "w")
        await store.delete("k2")

    rig.run(reads)
    assert rig.observed.storage_reads == 7
    assert rig.observed.reads_by_command == {
        "GET": 2,
        "MGET": 1,
        "HGET": 1,
        "HGETALL": 1,
        "HMGET": 1,
        "EXISTS": 1,
    }
    rig.observed.reset_counts()
    assert rig.observed.storage_reads == 0


def test_reads_inside_a_pipeline_are_not_counted(rig: Rig) -> None:
    # Documented contract: a pipeline talks to the connection itself.
    async def pipelined() -> list[Any]:
        await rig.observed.set("k", "v")
        async with rig.observed.pipeline() as pipe:
            pipe.get("k")
            pipe.hgetall("h")
            results: list[Any] = await pipe.execute()
        return results

    assert rig.run(pipelined) == [b"v", {}]
    assert rig.observed.storage_reads == 0


def test_json_get_through_the_proxy_is_counted() -> None:
    # RedisJSON is in fakeredis but not in every redis-server, hence fake only.
    server = fakeredis.FakeServer()

    async def scenario() -> tuple[Any, int]:
        observed = ObservedRedis(fakeredis.FakeAsyncRedis(server=server), label="json")
        try:
            await observed.json().set("doc", "$", {"limit": 3})
            value = await observed.json().get("doc")
            return value, observed.storage_reads
        finally:
            await observed.aclose()

    assert asyncio.run(scenario()) == ({"limit": 3}, 1)


def test_held_read_returns_what_redis_returned_before_a_later_write(rig: Rig) -> None:
    async def write(value: str) -> None:
        await rig.observed.client.set("k", value)

    rig.portal.call(write, "v1")
    rig.observed.hold_reads()
    read = rig.portal.spawn(rig.observed.get, "k")
    (held,) = rig.observed.wait_pending_reads(1)
    assert (held.command, held.args, held.result) == ("GET", ("k",), b"v1")
    assert rig.observed.storage_reads == 1  # counted when issued, while still held
    rig.portal.call(write, "v2")  # lands while the fetch is in flight
    assert not read.done()
    held.release()
    assert read.result(timeout=5) == b"v1"
    assert held.released
    assert rig.observed.pending_reads == ()


def test_release_reads_frees_every_held_read_and_stops_holding(rig: Rig) -> None:
    rig.observed.hold_reads()
    first = rig.portal.spawn(rig.observed.get, "a")
    second = rig.portal.spawn(rig.observed.exists, "b")
    # Two connections: the replies may come back in either order.
    assert sorted(r.command for r in rig.observed.wait_pending_reads(2)) == ["EXISTS", "GET"]
    rig.observed.release_reads()
    assert first.result(timeout=5) is None
    assert second.result(timeout=5) == 0
    assert not rig.observed.holding_reads

    async def unheld() -> Any:
        return await rig.observed.get("a")

    assert rig.portal.call(unheld, timeout=5) is None


def test_wait_pending_reads_times_out_with_a_hint(rig: Rig) -> None:
    with pytest.raises(TimeoutError, match=r"0 read\(s\) pending .* hold_reads\(\)"):
        rig.observed.wait_pending_reads(1, timeout=0.05)


def test_fetch_gate_sees_every_counted_read(rig: Rig) -> None:
    seen: list[tuple[str, tuple[Any, ...], Any]] = []

    async def gate(command: str, args: tuple[Any, ...], result: Any) -> None:
        seen.append((command, args, result))

    async def reads() -> None:
        await rig.observed.set("k", "v")
        rig.observed.fetch_gate = gate
        await rig.observed.get("k")
        await rig.observed.set("k", "w")

    rig.run(reads)
    assert seen == [("GET", ("k",), b"v")]


# -- ControlledPubSub: faithful pass-through -----------------------------------------


async def _pubsub_script(pubsub: Any, publish: Callable[[str], Any]) -> list[Any]:
    out: list[Any] = []
    await pubsub.subscribe(CHANNEL)
    out.append(await pubsub.get_message(timeout=5))
    await publish("one")
    out.append(await pubsub.get_message(timeout=5))
    await publish("two")
    out.append(await pubsub.get_message(ignore_subscribe_messages=True, timeout=5))
    out.append(await pubsub.get_message(timeout=0))
    out.append(pubsub.subscribed)
    await pubsub.unsubscribe(CHANNEL)
    out += [message async for message in pubsub.listen()]
    out.append(pubsub.subscribed)
    await pubsub.aclose()
    return out


def test_controlled_pubsub_answers_like_the_real_one(rig: Rig) -> None:
    async def both() -> tuple[list[Any], list[Any]]:
        publish = rig.control.publish
        real = await _pubsub_script(rig.observed.client.pubsub(), lambda d: publish(CHANNEL, d))
        controlled = await _pubsub_script(rig.observed.pubsub(), lambda d: publish(CHANNEL, d))
        return real, controlled

    real, controlled = rig.run(both)
    assert controlled == real
    assert [m["type"] for m in real[:3]] == ["subscribe", "message", "message"]
    assert real[-2]["type"] == "unsubscribe"


def test_reading_before_subscribing_fails_as_in_redis_py(rig: Rig) -> None:
    pubsub = rig.observed.pubsub()
    with pytest.raises(RuntimeError, match="did you forget to call subscribe"):
        rig.next_message(pubsub, timeout=0)


def test_processed_when_the_store_comes_back_for_the_next_message(rig: Rig) -> None:
    pubsub = rig.subscribed_pubsub()
    rig.publish("p1")
    message = rig.next_message(pubsub)
    assert message is not None
    assert message["data"] == b"p1"
    assert (pubsub.handed_out, pubsub.processed) == (1, 0)
    assert rig.next_message(pubsub, timeout=0) is None
    assert (pubsub.handed_out, pubsub.processed) == (1, 1)
    (delivery,) = pubsub.log
    assert delivery.processed_at is not None
    assert delivery.received_at <= delivery.handed_out_at <= delivery.processed_at
    assert (delivery.text, delivery.kind, delivery.channel) == ("p1", "message", CHANNEL)


def test_listen_marks_a_message_processed_when_resumed(rig: Rig) -> None:
    pubsub = rig.subscribed_pubsub()
    taken: list[Any] = []
    permits: asyncio.Queue[None] = asyncio.Queue()

    async def store_listener() -> None:
        async for message in pubsub.listen():
            taken.append(message["data"])
            await permits.get()  # busy handling it until the test says so

    async def permit() -> None:
        permits.put_nowait(None)

    listener = rig.portal.spawn(store_listener)
    rig.publish("a")
    rig.publish("b")
    pubsub.wait_handed_out(1)
    assert pubsub.processed == 0  # taken, not finished: the listener has not come back
    rig.portal.call(permit)
    assert pubsub.wait_processed("a").text == "a"
    assert pubsub.wait_handed_out(2).text == "b"
    assert pubsub.processed == 1
    rig.portal.call(permit)
    assert pubsub.wait_processed(b"b").text == "b"
    with pytest.raises(TimeoutError, match="no processed message matching 'c'"):
        pubsub.wait_processed("c", timeout=0.05)
    listener.cancel()
    assert taken == [b"a", b"b"]


def test_handler_subscriptions_are_called_and_logged(rig: Rig) -> None:
    received: list[Any] = []

    async def subscribe_with_handler() -> ControlledPubSub:
        pubsub = rig.observed.pubsub(ignore_subscribe_messages=True)

        async def handler(message: Message) -> None:
            received.append(message["data"])

        await pubsub.subscribe(**{CHANNEL: handler})
        return pubsub

    pubsub = rig.run(subscribe_with_handler)
    pubsub.wait_subscribed(CHANNEL)
    assert rig.next_message(pubsub, timeout=0) is None  # the confirmation, ignored
    rig.publish("h1")
    assert rig.next_message(pubsub) is None  # consumed by the handler, as in redis-py
    assert received == [b"h1"]
    assert pubsub.processed == 1


def test_run_dispatches_to_handlers_and_reports_their_errors(rig: Rig) -> None:
    handled: list[Any] = []
    errors: list[BaseException] = []

    def handler(message: Message) -> None:
        handled.append(message["data"])
        if message["data"] == b"bad":
            raise ValueError("bad message")

    async def subscribe() -> ControlledPubSub:
        pubsub = rig.observed.pubsub()
        await pubsub.subscribe(**{CHANNEL: handler})
        return pubsub

    pubsub = rig.run(subscribe)
    pubsub.wait_subscribed(CHANNEL)

    async def run_forever() -> None:
        await pubsub.run(exception_handler=lambda exc, _: errors.append(exc))

    runner = rig.portal.spawn(run_forever)
    rig.publish("bad")
    rig.publish("good")
    pubsub.wait_processed("good")
    runner.cancel()
    assert handled == [b"bad", b"good"]
    assert [str(e) for e in errors] == ["bad message"]
    assert pubsub.processed == 2  # the failed one too: run() came back for more


# -- ControlledPubSub: control -------------------------------------------------------


def test_hold_deliver_drop_duplicate_release(rig: Rig) -> None:
    pubsub = rig.subscribed_pubsub()
    pubsub.hold()
    for data in ("m1", "m2", "m3", "m4"):
        rig.publish(data)
    assert data_of(pubsub.wait_pending(4)) == [b"m1", b"m2", b"m3", b"m4"]
    assert rig.next_message(pubsub, timeout=0) is None

    assert data_of(pubsub.deliver(1)) == [b"m1"]
    assert data_of([rig.next_message(pubsub) or {}]) == [b"m1"]

    assert data_of(pubsub.drop(1)) == [b"m2"]
    assert data_of(pubsub.dropped) == [b"m2"]

    assert data_of(pubsub.duplicate(1)) == [b"m3"]
    assert data_of([rig.next_message(pubsub) or {}]) == [b"m3"]
    assert data_of(pubsub.pending) == [b"m3", b"m4"]

    assert pubsub.release() == 2
    assert not pubsub.holding
    got = [rig.next_message(pubsub), rig.next_message(pubsub), rig.next_message(pubsub, 0)]
    assert data_of([m for m in got if m is not None]) == [b"m3", b"m4"]
    assert got[2] is None
    assert [(d.text, d.kind) for d in pubsub.log] == [
        ("m1", "message"),
        ("m3", "duplicate"),
        ("m3", "message"),
        ("m4", "message"),
    ]


def test_hold_catches_messages_already_read_but_not_taken(rig: Rig) -> None:
    pubsub = rig.subscribed_pubsub()
    rig.publish("early")
    pubsub.wait_subscribed(CHANNEL)
    # The pump may or may not have read "early" yet: either way the store must not see it.
    pubsub.hold()
    assert data_of(pubsub.wait_pending(1)) == [b"early"]
    assert rig.next_message(pubsub, timeout=0) is None


def test_deliver_more_than_held_is_an_error(rig: Rig) -> None:
    pubsub = rig.subscribed_pubsub()
    pubsub.hold()
    with pytest.raises(ValueError, match=r"cannot deliver 1 message\(s\), 0 held"):
        pubsub.deliver()
    with pytest.raises(TimeoutError, match=r"0 message\(s\) held"):
        pubsub.wait_pending(1, timeout=0.05)


def test_confirmations_pass_while_holding(rig: Rig) -> None:
    pubsub = rig.observed.pubsub()
    pubsub.hold()

    async def subscribe() -> Message | None:
        await pubsub.subscribe(CHANNEL)
        return await pubsub.get_message(timeout=5)

    confirmation = rig.run(subscribe)
    assert confirmation is not None
    assert confirmation["type"] == "subscribe"


def test_inject_hands_the_store_a_synthetic_message_even_while_holding(rig: Rig) -> None:
    pubsub = rig.subscribed_pubsub()
    pubsub.hold()
    pubsub.inject(b"\xff\x00not a policy name")
    message = rig.next_message(pubsub)
    assert message == {
        "type": "message",
        "pattern": None,
        "channel": CHANNEL.encode(),
        "data": b"\xff\x00not a policy name",
    }
    assert [d.kind for d in pubsub.log] == ["injected"]


def test_disconnect_fails_the_pending_read_and_closes_the_real_pubsub(rig: Rig) -> None:
    pubsub = rig.subscribed_pubsub()
    pending = rig.portal.spawn(pubsub.get_message, False, None)  # a store waiting for news
    assert not pending.done()
    pubsub.disconnect()
    with pytest.raises(redis.exceptions.ConnectionError, match="disconnect"):
        pending.result(timeout=5)
    with pytest.raises(redis.exceptions.ConnectionError):
        rig.next_message(pubsub, timeout=0)
    rig.portal.call(pubsub.disconnect_async)
    assert pubsub.disconnected
    assert pubsub.connection is None  # forwarded: the real PubSub released its connection
    assert pubsub.subscribed  # as redis-py after a lost connection: the loss is the error

    # The store resubscribes the way the protocol says: client.pubsub() again.
    again = rig.subscribed_pubsub()
    assert rig.observed.subscriptions == 2
    assert rig.observed.current_pubsub is again
    rig.observed.wait_subscribed(CHANNEL)
    rig.publish("after")
    message = rig.next_message(again)
    assert message is not None
    assert message["data"] == b"after"


def test_disconnect_loses_what_the_store_had_not_taken(rig: Rig) -> None:
    pubsub = rig.subscribed_pubsub()
    pubsub.hold()
    rig.publish("lost")
    pubsub.wait_pending(1)
    pubsub.disconnect()
    assert data_of(pubsub.dropped) == [b"lost"]
    assert pubsub.pending == ()


def test_observed_redis_waits_across_resubscriptions(rig: Rig) -> None:
    first = rig.subscribed_pubsub()
    first.disconnect()
    second = rig.subscribed_pubsub()
    assert rig.observed.wait_subscriptions(2) is second
    rig.publish("x")
    rig.next_message(second)
    rig.next_message(second, timeout=0)
    assert rig.observed.wait_processed("x").label.endswith("pubsub#2")
    assert [d.text for d in rig.observed.deliveries] == ["x"]


def _process(rig: Rig, pubsub: ControlledPubSub, texts: list[str]) -> None:
    """Hand the store ``texts`` (injected) and have it process them all."""

    async def play() -> None:
        for text in texts:
            pubsub.inject(text)
        while await pubsub.get_message(timeout=0) is not None:
            pass

    rig.run(play)


def _median_wait_s(rig: Rig, text: str) -> float:
    took = []
    for _ in range(30):
        started = time.perf_counter()
        rig.observed.wait_processed(text)
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def test_a_wait_costs_the_same_however_many_messages_were_processed(rig: Rig) -> None:
    # A settle waits once per instance: were a wait to scan the whole log, a
    # long benchmark's settles would slow as it ran, and their CPU would
    # stretch the very propagation times being measured.
    pubsub = rig.subscribed_pubsub()
    _process(rig, pubsub, ["same", *(f"m{i}" for i in range(19))])
    short = _median_wait_s(rig, "m18")
    _process(rig, pubsub, ["same", *(f"n{i}" for i in range(20_000))])
    long = _median_wait_s(rig, "n19999")
    # Scanning 20,000 deliveries costs milliseconds; a lookup, a portal hop.
    assert long < 5 * short, (
        f"a wait took {long * 1e6:.0f} us after 20,020 messages, {short * 1e6:.0f} us after 20"
    )
    # Still the first processed delivery with that data.
    assert rig.observed.wait_processed("same") is pubsub.log[0]
    assert pubsub.wait_processed("same") is pubsub.log[0]


@pytest.mark.parametrize("method", ["close", "reset"])
def test_deprecated_close_warns_like_redis_py(rig: Rig, method: str) -> None:
    pubsub = rig.subscribed_pubsub()

    async def close() -> None:
        await getattr(pubsub, method)()

    with pytest.warns(DeprecationWarning, match="aclose"):
        rig.run(close)
    assert pubsub.closed


def test_async_context_manager_closes(rig: Rig) -> None:
    async def scenario() -> ControlledPubSub:
        async with rig.observed.pubsub() as pubsub:
            await pubsub.subscribe(CHANNEL)
        return pubsub

    pubsub = rig.run(scenario)
    assert pubsub.closed
    with pytest.raises(RuntimeError, match="did you forget"):
        rig.next_message(pubsub, timeout=0)


async def _aiter_first(iterator: AsyncIterator[Message]) -> Message:
    return await anext(iterator)


async def _drain(iterator: AsyncIterator[Message]) -> list[Message]:
    return [message async for message in iterator]


def test_listen_raises_once_disconnected(rig: Rig) -> None:
    pubsub = rig.subscribed_pubsub()
    pubsub.disconnect()
    with pytest.raises(redis.exceptions.ConnectionError):
        rig.portal.call(_aiter_first, pubsub.listen())


# -- the barrier: how far a store got, with nothing on its channel ------------------------


def test_a_barrier_comes_back_after_every_earlier_message_unseen_by_the_store(rig: Rig) -> None:
    pubsub = rig.subscribed_pubsub()
    rig.publish("a")
    rig.publish(b'{"op": "invalidate"}')
    assert pubsub.barrier(rig.control.publish) == 2
    assert pubsub.barrier(rig.control.publish) == 2  # subscribed once, reused
    taken = [rig.next_message(pubsub) for _ in range(2)]
    assert [m["data"] if m else None for m in taken] == [b"a", b'{"op": "invalidate"}']
    # Neither the barrier channel's confirmation nor its tokens reach the store.
    assert rig.next_message(pubsub, timeout=0.1) is None
    assert pubsub.received == 2
    assert pubsub.confirmed_channels == {CHANNEL}
    assert pubsub.all_confirmed
    assert pubsub.barrier_channel.startswith("p1:barrier:")
    assert [as_text(c) for c in pubsub.channels] == [CHANNEL]  # the store's own only


def test_settle_returns_once_the_store_processed_what_came_before_its_barrier(rig: Rig) -> None:
    pubsub = rig.subscribed_pubsub()
    rig.publish("a")
    settling = rig.portal.spawn(pubsub.settle_async, rig.control.publish, 5.0)
    assert rig.next_message(pubsub) is not None  # taken: not yet processed
    assert not settling.done()
    assert rig.next_message(pubsub, timeout=0) is None  # came back: "a" is processed
    assert settling.result(timeout=5) == 1
    assert pubsub.last_barrier == 1
    assert pubsub.processed_through(1)


def test_what_came_before_a_barrier_is_located_by_position(rig: Rig) -> None:
    pubsub = rig.subscribed_pubsub()
    pubsub.hold()
    rig.publish("a")
    rig.publish("b")
    position = pubsub.barrier(rig.control.publish)
    assert (position, pubsub.held_count) == (2, 2)
    assert not pubsub.processed_through(position)
    assert pubsub.backlog(position) == (2, 0, None)
    pubsub.deliver(1)
    assert pubsub.backlog(position) == (1, 1, None)
    rig.next_message(pubsub)
    held, waiting, in_progress = pubsub.backlog(position)
    assert (held, waiting) == (1, 0)
    assert in_progress is not None
    assert in_progress.text == "a"
    pubsub.drop(1)  # a dropped message is no longer awaited
    rig.next_message(pubsub, timeout=0)
    assert pubsub.processed_through(position)


def test_the_store_unsubscribing_ends_its_subscription_despite_the_barrier_channel(
    rig: Rig,
) -> None:
    pubsub = rig.subscribed_pubsub()
    pubsub.barrier(rig.control.publish)

    async def unsubscribe() -> Message | None:
        await pubsub.unsubscribe(CHANNEL)
        return await pubsub.get_message(timeout=5)

    confirmation = rig.run(unsubscribe)
    assert confirmation is not None
    assert confirmation["type"] == "unsubscribe"
    assert pubsub.subscribed is False
    assert rig.portal.call(_drain, pubsub.listen()) == []  # listen() ends, as in redis-py


def test_a_barrier_on_a_cut_subscription_is_broken(rig: Rig) -> None:
    pubsub = rig.subscribed_pubsub()
    pubsub.disconnect()
    with pytest.raises(BarrierBroken):
        pubsub.barrier(rig.control.publish, timeout=1.0)
