"""The MQTT adapter (aiomqtt 2.x): subscribes to the bridges' topics, hands events to the inbox,
and publishes the room's alarms (retained, one topic per condition) and its own availability
(retained ``online``, last will ``offline``).

A fixed client ID with a persistent session (``clean_session=False``) and QoS 1 subscriptions:
what the bridges publish while the daemon is down or reconnecting is queued by the broker and
delivered afterwards.  aiomqtt 2.x does not reconnect by itself: :meth:`MqttFeed._run` is the
loop, with capped exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from firmware_app.journal import event
from firmware_app.room.alarms import Alarm
from firmware_app.room.errors import MalformedPayload, RoomConfigError
from firmware_app.room.feeds.router import TopicRouter
from firmware_app.room.inbox import EventSink
from firmware_app.room.settings import MqttConfig

__all__ = ["MAX_PASSWORD_BYTES", "FeedCounters", "MqttFeed", "alarm_topic", "read_password_blocking", "status_topic"]

log = logging.getLogger(__name__)


MAX_PASSWORD_BYTES = 1024


def read_password_blocking(path: Path) -> str:
    """The broker password from its credential file (first line); never echoed in errors."""
    try:
        raw = path.read_bytes()[: MAX_PASSWORD_BYTES + 1]
    except OSError:
        raise RoomConfigError(f"cannot read the broker password file {path}") from None
    if len(raw) > MAX_PASSWORD_BYTES:
        raise RoomConfigError("the broker password file is too large")
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise RoomConfigError("the broker password file is not UTF-8") from None
    if not lines or not lines[0]:
        raise RoomConfigError("the broker password file is empty")
    return lines[0]


def status_topic(prefix: str) -> str:
    return f"{prefix}/status"


def alarm_topic(prefix: str, alarm: Alarm) -> str:
    return f"{prefix}/alarm/{alarm.source}/{alarm.kind}"


@dataclass
class FeedCounters:
    """What came in: ``received`` = ``ignored`` + ``malformed`` + ``oversized`` + parsed."""

    received: int = 0
    ignored: int = 0
    malformed: int = 0
    oversized: int = 0
    events: int = 0


class MqttFeed:
    """One broker connection, kept up until :meth:`stop`."""

    def __init__(
        self, config: MqttConfig, router: TopicRouter, sink: EventSink, *, monotonic_s: Callable[[], float], password: str | None = None
    ) -> None:
        self._c = config
        self._password = password
        self._router = router
        self._sink = sink
        self._now_s = monotonic_s
        self.counters = FeedCounters()
        self.connected = False
        self.down_since_s: float | None = monotonic_s()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._outgoing: dict[str, bytes] = {}  # topic → latest retained payload not yet published
        self._wake = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None

    @property
    def state(self) -> str:
        return "connected" if self.connected else "reconnecting"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="room-mqtt")
        self._publisher = asyncio.create_task(self._publish_loop(), name="room-mqtt-publish")

    async def stop(self) -> None:
        """Say ``offline`` (a clean disconnect sends no will), then disconnect."""
        client = self._client
        if client is not None and self.connected:
            try:
                await asyncio.wait_for(client.publish(status_topic(self._c.publish_prefix), b"offline", qos=1, retain=True), 2.0)
            except (aiomqtt.MqttError, TimeoutError):
                pass
        for task in (self._publisher, self._task):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._publisher, self._task) if t is not None), return_exceptions=True)

    def publish_alarm(self, alarm: Alarm) -> None:
        """Queue the alarm's state for its retained topic (only the latest per topic is kept)."""
        payload = json.dumps(alarm.to_json(), separators=(",", ":"), sort_keys=True).encode()
        self._outgoing[alarm_topic(self._c.publish_prefix, alarm)] = payload
        self._wake.set()

    def _client_for(self) -> aiomqtt.Client:
        will = aiomqtt.Will(status_topic(self._c.publish_prefix), b"offline", qos=1, retain=True)
        return aiomqtt.Client(
            self._c.host,
            self._c.port,
            identifier=self._c.client_id,
            username=self._c.username,
            password=self._password,
            clean_session=False,
            protocol=aiomqtt.ProtocolVersion.V311,
            will=will,
            keepalive=self._c.keepalive_s,
            max_queued_incoming_messages=0,  # unbounded: aiomqtt would drop after the PUBACK
            timeout=10.0,
            # An alarm right after a PUBACK would otherwise wait for the broker's delayed ACK (Nagle).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )

    async def _run(self) -> None:
        backoff_s = self._c.backoff_initial_s
        while True:
            try:
                async with self._client_for() as client:
                    await client.subscribe([(topic, 1) for topic in self._router.subscriptions()])
                    await client.publish(status_topic(self._c.publish_prefix), b"online", qos=1, retain=True)
                    self._client, self.connected, self.down_since_s = client, True, None
                    self._wake.set()
                    backoff_s = self._c.backoff_initial_s
                    log.info("room broker connected at %s:%d", self._c.host, self._c.port, extra=event("room.mqtt_connected"))
                    async for message in client.messages:
                        self.take(str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                if self.connected:
                    log.warning("room broker connection lost: %s", type(exc).__name__, extra=event("room.mqtt_lost"))
            finally:
                if self.connected or self.down_since_s is None:
                    self.down_since_s = self._now_s()
                self._client, self.connected = None, False
            await asyncio.sleep(backoff_s * random.uniform(0.5, 1.0))
            backoff_s = min(backoff_s * 2, self._c.backoff_max_s)

    def take(self, topic: str, payload: object) -> None:
        """One incoming message: size-capped, routed, parsed; malformed is counted and dropped."""
        counters = self.counters
        counters.received += 1
        if not isinstance(payload, bytes | bytearray):
            payload = b"" if payload is None else str(payload).encode()
        if len(payload) > self._c.max_payload_bytes:
            counters.oversized += 1
            return
        try:
            events = self._router.route(topic, bytes(payload))
        except MalformedPayload:
            counters.malformed += 1
            return
        if events is None:
            counters.ignored += 1
            return
        for e in events:
            self._sink.submit(e)
        counters.events += len(events)

    async def _publish_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            client = self._client
            while self._outgoing and client is not None and self.connected:
                topic = next(iter(self._outgoing))
                payload = self._outgoing.pop(topic)
                try:
                    await client.publish(topic, payload, qos=1, retain=True)
                except aiomqtt.MqttError:
                    self._outgoing.setdefault(topic, payload)  # sent again after the reconnect
                    break
