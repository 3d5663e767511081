"""Request bodies for ``gateway_overhead.py --bodies``: the faithful paths against the plain one.

``plain`` is the benchmark's usual body. ``tools`` carries two function tools with JSON
Schemas, ``tool_choice``, ``parallel_tool_calls``, ``seed`` and ``top_p`` (the full
validation against openai's types, the value rules and the schema checks, then forwarded
as sent); ``stream`` asks for a stream with ``include_usage`` (chunks relayed one by one);
``tools+stream`` both. Each is timed the same way (one client, sequential requests on one
keep-alive connection) straight at the instant upstream and through the gateway, so the
added latency of each faithful path can be set against the plain path's in the same run.
"""

from __future__ import annotations

import json
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
ORDER = {
    "type": "function",
    "function": {
        "name": "order_status",
        "parameters": {
            "type": "object",
            "properties": {"order": {"type": "integer"}},
            "required": ["order"],
        },
    },
}


def bodies(model: str, prompt: str) -> dict[str, dict[str, Any]]:
    plain = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    tools = {
        **plain,
        "tools": [WEATHER, ORDER],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "seed": 7,
        "top_p": 0.9,
    }
    stream = {**plain, "stream": True, "stream_options": {"include_usage": True}}
    return {
        "plain": plain,
        "tools": tools,
        "stream": stream,
        "tools+stream": {**tools, **stream, "messages": plain["messages"]},
    }


def raw_request(port: int, key: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def exchange(sock: socket.socket, raw: bytes, pending: bytearray) -> bytes:
    """Send one request; read one response, by Content-Length or to the end of its chunks."""
    sock.sendall(raw)
    while b"\r\n\r\n" not in pending:
        pending += _recv(sock)
    end = pending.index(b"\r\n\r\n") + 4
    head = bytes(pending[:end]).lower()
    del pending[:end]
    if not head.startswith(b"http/1.1 200"):
        raise RuntimeError(f"HTTP error: {head[:60]!r} {bytes(pending[:300])!r}")
    if b"transfer-encoding: chunked" in head:
        while b"\r\n0\r\n\r\n" not in pending and not pending.startswith(b"0\r\n\r\n"):
            pending += _recv(sock)
        cut = pending.index(b"0\r\n\r\n") + 5
        body = bytes(pending[:cut])
        del pending[:cut]
        return body
    length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
    while len(pending) < length:
        pending += _recv(sock)
    body = bytes(pending[:length])
    del pending[:length]
    return body


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise RuntimeError("server closed the connection")
    return data


class Timer:
    """One keep-alive connection sending one body; samples accumulate over rounds."""

    def __init__(self, port: int, key: str, body: dict[str, Any]) -> None:
        self.port = port
        self.raw = raw_request(port, key, body)
        self.samples: list[float] = []
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = bytearray()

    def run(self, requests: int, *, record: bool = True) -> None:
        # a server closes a connection idle past its keep-alive timeout while the other
        # bodies take their turn: reconnect, untimed, before the round
        self.sock.close()
        self._connect()
        exchange(self.sock, self.raw, self.pending)
        for _ in range(requests):
            t0 = time.perf_counter_ns()
            exchange(self.sock, self.raw, self.pending)
            if record:
                self.samples.append((time.perf_counter_ns() - t0) / 1e6)

    def summary(self) -> dict[str, float]:
        self.sock.close()
        samples = sorted(self.samples)
        return {
            "requests": len(samples),
            "p50_ms": round(samples[len(samples) // 2], 4),
            "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 4),
            "mean_ms": round(statistics.fmean(samples), 4),
        }


def compare(
    upstream_port: int,
    gateway_port: int,
    key: str,
    prompt: str,
    requests: int,
    warmup: int,
    rounds: int = 10,
    cpu: Callable[[], float | None] | None = None,
) -> dict[str, Any]:
    """Each body straight at the upstream and through the gateway, interleaved in
    ``rounds`` so drifting machine load falls on every body alike; the added p50 and its
    ratio to the plain body's added p50. With ``cpu`` (the gateway's CPU seconds so far),
    also the gateway's CPU per request for each body and its ratio to the plain body's:
    what the path costs, apart from how long a busy machine makes it wait."""
    direct_bodies, through = bodies("instant", prompt), bodies("auto", prompt)
    timers = {
        name: (Timer(upstream_port, key, direct_bodies[name]), Timer(gateway_port, key, body))
        for name, body in through.items()
    }
    print(f"  bodies {', '.join(timers)}: {rounds} interleaved rounds", flush=True)
    for pair in timers.values():
        for timer in pair:
            timer.run(warmup, record=False)
    spent = dict.fromkeys(timers, 0.0)
    for _ in range(rounds):
        for name, (direct_timer, gateway_timer) in timers.items():
            direct_timer.run(max(1, requests // rounds))
            before = cpu() if cpu is not None else None
            gateway_timer.run(max(1, requests // rounds))
            after = cpu() if cpu is not None else None
            if before is not None and after is not None:
                spent[name] += after - before
    rows: dict[str, Any] = {}
    for name, (direct_timer, gateway_timer) in timers.items():
        direct, gateway = direct_timer.summary(), gateway_timer.summary()
        rows[name] = {
            "direct": direct,
            "gateway": gateway,
            "added_p50_ms": round(gateway["p50_ms"] - direct["p50_ms"], 4),
        }
        if cpu is not None:
            rows[name]["gateway_cpu_ms"] = round(spent[name] * 1000 / gateway["requests"], 4)
    plain = rows["plain"]
    for row in rows.values():
        added = plain["added_p50_ms"]
        row["added_vs_plain"] = round(row["added_p50_ms"] / added, 3) if added > 0 else None
        if plain.get("gateway_cpu_ms"):
            row["cpu_vs_plain"] = round(row["gateway_cpu_ms"] / plain["gateway_cpu_ms"], 3)
    return rows


def show(rows: dict[str, Any]) -> None:
    print(
        f"\n{'body':<14}{'direct p50':>12}{'gateway p50':>13}{'added p50':>11}{'x plain':>9}"
        f"{'gw CPU/req':>12}{'x plain':>9}"
    )
    for name, row in rows.items():
        ratio, cpu = row["added_vs_plain"], row.get("gateway_cpu_ms")
        print(
            f"{name:<14}{row['direct']['p50_ms']:>9.3f} ms{row['gateway']['p50_ms']:>10.3f} ms"
            f"{row['added_p50_ms']:>8.3f} ms{f'{ratio:.2f}' if ratio is not None else '-':>9}"
            + (f"{cpu:>9.3f} ms{row['cpu_vs_plain']:>9.2f}" if cpu is not None else "")
        )
