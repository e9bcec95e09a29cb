#!/usr/bin/env python3
"""Reads Jangteo domain events from Kafka with confluent-kafka (a client Jangteo did
not write) and validates every message against the envelope of docs/events.md.

Environment:
  JANGTEO_KAFKA_BROKERS  bootstrap servers, e.g. 127.0.0.1:9092 (required)
  JANGTEO_KAFKA_TOPICS   comma-separated topics to read (required)
  JANGTEO_KAFKA_EXPECT   stop after this many messages (required)
  JANGTEO_KAFKA_TIMEOUT  seconds to wait for them (default 60)

Output: one line per message, `EVENT <id> <type> <topic> <partition> <offset>`, then
`OK <count>`. Exit status: 0 all valid, 1 invalid message or timeout, 2 bad usage,
3 confluent_kafka not importable.
"""

import json
import os
import re
import sys
import time
import uuid
from datetime import datetime

try:
    from confluent_kafka import Consumer, KafkaError
except ImportError as error:  # pragma: no cover - environment problem, not a test failure
    print(
        f"confluent_kafka is not importable by {sys.executable} ({error}); install it with "
        f"`{sys.executable} -m pip install -r {os.path.dirname(os.path.abspath(__file__))}/requirements.txt`",
        file=sys.stderr,
    )
    sys.exit(3)

# aggregate_type -> topic suffix, as in crates/adapters/kafka/src/topics.rs.
TOPIC_FOR = {"product": "products", "order": "orders", "inventory": "inventory", "customer": "customers"}
FIELDS = {
    "id": str,
    "type": str,
    "schema_version": int,
    "aggregate_type": str,
    "aggregate_id": str,
    "occurred_at": str,
    "payload": dict,
}


def fail(message):
    print(f"INVALID {message}", file=sys.stderr)
    sys.exit(1)


def parse_time(text):
    # chrono writes up to 9 fractional digits; Python before 3.11 accepts at most 6.
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(trimmed)
    if parsed.utcoffset() is None:
        raise ValueError("no time zone")
    return parsed


def validate(message):
    where = f"{message.topic()}/{message.partition()}@{message.offset()}"
    try:
        envelope = json.loads(message.value())
    except (TypeError, ValueError) as error:
        fail(f"{where}: value is not JSON: {error}")
    if not isinstance(envelope, dict):
        fail(f"{where}: envelope is not an object")
    for field, kind in FIELDS.items():
        if field not in envelope:
            fail(f"{where}: envelope lacks `{field}`: {envelope}")
        if not isinstance(envelope[field], kind) or isinstance(envelope[field], bool):
            fail(f"{where}: `{field}` is not {kind.__name__}: {envelope[field]!r}")
    try:
        uuid.UUID(envelope["id"])
        parse_time(envelope["occurred_at"])
    except ValueError as error:
        fail(f"{where}: bad id or occurred_at: {error}")
    if envelope["schema_version"] < 1:
        fail(f"{where}: schema_version {envelope['schema_version']}")
    if "." not in envelope["type"]:
        fail(f"{where}: type {envelope['type']!r} is not aggregate.event")
    if not envelope["aggregate_id"]:
        fail(f"{where}: empty aggregate_id")
    key = message.key().decode() if message.key() is not None else None
    if key != envelope["aggregate_id"]:
        fail(f"{where}: key {key!r} != aggregate_id {envelope['aggregate_id']!r}")
    headers = {k: (v.decode() if v is not None else None) for k, v in (message.headers() or [])}
    if headers.get("event_type") != envelope["type"] or headers.get("event_id") != envelope["id"]:
        fail(f"{where}: headers {headers} do not match the envelope")
    suffix = TOPIC_FOR.get(envelope["aggregate_type"], "misc")
    if not message.topic().endswith("." + suffix) and message.topic() != suffix:
        fail(f"{where}: aggregate_type {envelope['aggregate_type']!r} in topic {message.topic()}")
    return envelope


def main():
    try:
        brokers = os.environ["JANGTEO_KAFKA_BROKERS"]
        topics = [t for t in os.environ["JANGTEO_KAFKA_TOPICS"].split(",") if t]
        expect = int(os.environ["JANGTEO_KAFKA_EXPECT"])
        timeout = float(os.environ.get("JANGTEO_KAFKA_TIMEOUT", "60"))
    except (KeyError, ValueError) as error:
        print(f"usage: see the docstring of {sys.argv[0]} ({error})", file=sys.stderr)
        return 2
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"jangteo-python-check-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < expect:
            if time.monotonic() > deadline:
                fail(f"read {seen} of {expect} messages in {timeout} s")
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                fail(f"consumer error: {message.error()}")
            envelope = validate(message)
            seen += 1
            print(
                f"EVENT {envelope['id']} {envelope['type']} {message.topic()} "
                f"{message.partition()} {message.offset()}"
            )
    finally:
        consumer.close()
    print(f"OK {seen}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
