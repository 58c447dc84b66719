#!/usr/bin/env python3
"""Reads the collector's downstream stream (NATS JetStream) into a pandas DataFrame.

usage: stream_consumer.py [--server nats://127.0.0.1:4222] [--token TOKEN] [--stream EDGESYNC]
                          [--subject 'edgesync.>'] [--idle SECONDS] [--csv FILE]

Every message is line protocol (one reading per line) on the subject
edgesync.<device>.<measurement>, device and measurement escaped (~XX for '.', '*', '>', '~',
spaces and control bytes). Its Nats-Msg-Id is stable, so a message republished after the
duplicate window (Docs/decisions/0019) is dropped here. Needs: pip install nats-py pandas.
Prints a JSON summary; with --csv, writes the readings as CSV.
"""
import argparse
import asyncio
import csv
import json
import re
import sys

import nats
import pandas as pd

ESCAPE = re.compile(rb"~([0-9A-F]{2})")


def unescape(token: str) -> str:
    if token == "~":
        return ""
    raw = ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), token.encode())
    return raw.decode()


def parse_line(line: str):
    """'measurement,tag=v field=value timestamp' -> (series key, value, timestamp ns)."""
    head, timestamp = line.rsplit(" ", 1)
    key, value = head.rsplit("=", 1)
    return key, float(value), int(timestamp)


async def consume(args) -> pd.DataFrame:
    connection = await nats.connect(args.server, token=args.token) if args.token else await nats.connect(args.server)
    stream = connection.jetstream()
    subscription = await stream.subscribe(args.subject, stream=args.stream, ordered_consumer=True)
    rows, seen, duplicates, messages = [], set(), 0, 0
    while True:
        try:
            message = await subscription.next_msg(timeout=args.idle)
        except nats.errors.TimeoutError:
            break
        message_id = (message.headers or {}).get("Nats-Msg-Id")
        if message_id in seen:
            duplicates += 1
            continue
        seen.add(message_id)
        messages += 1
        device = unescape(message.subject.split(".")[1])
        for line in message.data.decode().splitlines():
            key, value, timestamp = parse_line(line)
            rows.append((device, key, timestamp, value))
    await connection.close()
    frame = pd.DataFrame(rows, columns=["device", "series_key", "timestamp", "value"])
    frame["time"] = pd.to_datetime(frame["timestamp"], unit="ns", utc=True)
    print(json.dumps({"messages": messages, "readings": len(frame), "duplicates_dropped": duplicates}))
    return frame


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="nats://127.0.0.1:4222")
    parser.add_argument("--token")
    parser.add_argument("--stream", default="EDGESYNC")
    parser.add_argument("--subject", default="edgesync.>")
    parser.add_argument("--idle", type=float, default=2.0, help="stop after this many seconds without a message")
    parser.add_argument("--csv", help="write the readings here (device, series_key, timestamp, value)")
    args = parser.parse_args()
    frame = asyncio.run(consume(args))
    if args.csv:
        # repr: the shortest text that reads back as the same float ('nan', 'inf' included).
        with open(args.csv, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["device", "series_key", "timestamp", "value"])
            for device, key, timestamp, value in frame[["device", "series_key", "timestamp", "value"]].itertuples(index=False):
                writer.writerow([device, key, int(timestamp), repr(float(value))])
    return 0


if __name__ == "__main__":
    sys.exit(main())
