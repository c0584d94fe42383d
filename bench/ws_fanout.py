"""WebSocket fan-out: delivery latency from ``hsi.realtime.send_now`` to 500 ``/ws/events`` clients, and that one
client which stops reading slows nobody else (CONTRACT §3.7).

The realistic distributed case: ``--servers`` (1) daphne web processes (``hsi.asgi:application``, channels-redis)
started by the bench on free ports against a scratch PostgreSQL database (``hsi_bench_ws``) and Redis under the key
prefix ``hsibench_ws``; or a running server given with ``--url`` (then ``--redis-url``/``--key-prefix`` must be the
server's, since the bench publishes through the same channel layer).

1. ``--clients`` (500) clients connect with the ``websockets`` library, spread over ``--client-processes`` (2)
   processes (and over the servers) so the clients' own parsing is not one Python loop's queue. Each subscribes to
   the bench's message type.
2. Phase "all reading", after 3 unmeasured warm-up messages: the bench publishes ``--events`` (50) messages, one
   every ``--interval`` s (0.25), each carrying its send time (``time.time()`` just before ``send_now``: sequence
   number, resync buffer, group send and delivery all count). Every client records the receive time of each;
   latency = receive - send.
3. Phase "one stalled": the same, plus one raw client (``SO_RCVBUF`` 4 KiB) on the first server that completes the
   handshake and then never reads. It is subscribed to everything, so it also gets ``--bulk-messages`` (100) of
   ``--bulk-bytes`` (60 kB) that the measured clients' subscriptions filter out: megabytes it cannot take, far
   past the kernel's buffers. The others' p99 must stay within the target and the server must keep answering
   (a ``GET /health`` timed while the backlog waits). Messages of both phases carry ``--pad-bytes`` (1 KiB) of
   padding, about the size of an ``event.created``, so the phases differ only by the stalled client.

Also printed: the servers' CPU time per delivered message (the figure that load elsewhere on the machine changes
least) and the machine's CPU over the phases.

Target: p99 <= 100 ms (all reading and one stalled); every message delivered to every reading client, each client
seeing ``seq`` strictly increasing. Always exits 0; prints PASS/FAIL.

    .venv/bin/python -m bench.ws_fanout
    .venv/bin/python -m bench.ws_fanout --servers 2 --interval 0.1
    .venv/bin/python -m bench.ws_fanout --url ws://127.0.0.1:8000 --redis-url redis://127.0.0.1:6379/0 --key-prefix hsi
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python bench/ws_fanout.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common

DATABASE_NAME = "hsi_bench_ws"
KEY_PREFIX = "hsibench_ws"
TARGET_P99_MS = 100.0
MESSAGE_TYPE = "bench.tick"
WARMUP_EVENTS = 3  # not measured
SERVER_ENV = {
    "THROTTLE_ENABLED": "false",
    "API_KEY_ENABLED": "false",
    "LOG_LEVEL": "warning",
    "LOG_DB_MIN_LEVEL": "error",
    "WEBSOCKET_IDLE_TIMEOUT_SECONDS": "600",
    "GPU_MONITOR_ENABLED": "false",
}


# --- the server --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_daphne(database_url: str, redis_url: str, key_prefix: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hsi.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "HSI_KEY_PREFIX": key_prefix,
        "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdef",
        "HSI_DATA_DIR": str(Path(tempfile.gettempdir()) / f"{key_prefix}_data"),
        "PYTHONUNBUFFERED": "1",
        **SERVER_ENV,
    }
    env.pop("CELERY_BROKER_URL", None)
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "hsi.asgi:application"]
    log = log_path.open("wb")
    process = subprocess.Popen(argv, cwd=_common.REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"daphne exited with {process.returncode}; see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, f"ws://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"daphne did not listen within 60 s; see {log_path}")


# --- the clients (child processes) -------------------------------------------------------------------------


async def _client(url: str, ready: asyncio.Event, expected: int, phase_done: asyncio.Event, out: list) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, open_timeout=30, max_size=None, ping_interval=None) as socket_:
        hello = json.loads(await socket_.recv())
        assert hello["type"] == "connected", hello
        await socket_.send(json.dumps({"type": "subscribe", "data": {"events": [MESSAGE_TYPE]}}))
        while json.loads(await socket_.recv())["type"] != "subscribed":
            pass
        ready.set()
        got = 0
        while got < expected:
            try:
                text = await asyncio.wait_for(socket_.recv(), timeout=30)
            except TimeoutError:
                break
            received = time.time()
            message = json.loads(text)
            if message.get("type") != MESSAGE_TYPE:
                continue
            out.append((message["data"]["phase"], message["seq"], message["data"]["sent_at"], received))
            got += 1
        await phase_done.wait()


class LightClient(asyncio.Protocol):
    """One client on websockets' Sans-I/O protocol over a plain asyncio transport: no task per connection, so 250
    clients in one process cost little more than the frames themselves (the asyncio client API costs ~160 us per
    message and client on this machine, as much as the server's whole send path)."""

    def __init__(self, url: str, expected: int, out: list, ready: asyncio.Event):
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        self.expected, self.out, self.ready = expected, out, ready
        self.transport = None
        self.subscribed = False

    def connection_made(self, transport):
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def _flush(self):
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)

    def data_received(self, data):
        from websockets.frames import Opcode

        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if getattr(event, "opcode", None) is not Opcode.TEXT:
                continue
            received = time.time()
            text = event.data.decode()
            if not self.subscribed:
                kind = json.loads(text)["type"]
                if kind == "connected":
                    message = json.dumps({"type": "subscribe", "data": {"events": [MESSAGE_TYPE]}})
                    self.protocol.send_text(message.encode())
                elif kind == "subscribed":
                    self.subscribed = True
                    self.ready.set()
                continue
            message = json.loads(text)
            if message.get("type") == MESSAGE_TYPE:
                self.out.append((message["data"]["phase"], message["seq"], message["data"]["sent_at"], received))
        self._flush()


async def _light_client(url: str, ready: asyncio.Event, expected: int, phase_done: asyncio.Event, out: list):
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    loop = asyncio.get_running_loop()
    transport, _protocol = await loop.create_connection(lambda: LightClient(url, expected, out, ready), host, port)
    await phase_done.wait()
    transport.close()


def _client_process(
    urls: list[str], count: int, expected: int, pipe, light: bool = True
) -> None:  # pragma: no cover - child process
    client = _light_client if light else _client
    # Both client processes receive the same frames and allocate alike, so their full collections (100+ ms once
    # the samples pile up) would fall on the same message and be measured as the server's delivery latency.
    gc.disable()

    async def main():
        results: list[list] = [[] for _ in range(count)]  # per client, in receive order
        readies = [asyncio.Event() for _ in range(count)]
        done = asyncio.Event()
        tasks = []
        for index in range(count):
            url = urls[index % len(urls)]
            tasks.append(asyncio.create_task(client(url, readies[index], expected, done, results[index])))
            if index % 25 == 24:
                await asyncio.sleep(0.05)  # connect in waves, as a page reload storm would
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
        pipe.send("ready")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, pipe.recv)  # "finish"
        await asyncio.sleep(1.0)  # let the last messages land
        done.set()
        await asyncio.wait(tasks, timeout=5)
        pipe.send((results, time.process_time()))

    asyncio.run(main())


@dataclass
class ClientGroup:
    process: multiprocessing.Process
    pipe: object


def start_clients(urls: list[str], clients: int, processes: int, expected: int, light: bool) -> list[ClientGroup]:
    context = multiprocessing.get_context("spawn")
    groups = []
    base, extra = divmod(clients, processes)
    for index in range(processes):
        count = base + (1 if index < extra else 0)
        parent, child = context.Pipe()
        process = context.Process(target=_client_process, args=(urls, count, expected, child, light), daemon=True)
        process.start()
        groups.append(ClientGroup(process, parent))
    for group in groups:
        if not group.pipe.poll(180):
            raise SystemExit("clients did not connect within 180 s")
        assert group.pipe.recv() == "ready"
    return groups


def collect(groups: list[ClientGroup]) -> tuple[list[list[tuple]], float]:
    """Per client: ``(phase, seq, sent_at, received_at)`` of each message, in the order it arrived; and the CPU
    seconds the client processes used."""
    for group in groups:
        group.pipe.send("finish")
    results, cpu = [], 0.0
    for group in groups:
        if group.pipe.poll(60):
            samples, seconds = group.pipe.recv()
            results.extend(samples)
            cpu += seconds
        group.process.join(10)
    return results, cpu


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (Linux ``/proc``), or None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the stalled client ------------------------------------------------------------------------------------


def stalled_client(url: str) -> socket.socket:
    """A raw socket that completes the WebSocket handshake on ``/ws/events`` and then never reads."""
    from tests.fakes.stalled_peer import stalled_websocket

    host, port = url.removeprefix("ws://").split(":")
    try:
        return stalled_websocket(host, int(port), "/ws/events")
    except ConnectionError as refused:
        raise SystemExit(f"the stalled client's {refused}") from None


def stalled_backlog(raw: socket.socket) -> tuple[int, int]:
    """(bytes waiting in the stalled client's kernel receive queue, bytes it then gets by reading until 1 s of quiet):
    what exceeds the first figure had been held by the server, without stopping anyone else."""
    import fcntl
    import termios

    from tests.fakes.stalled_peer import read_until_quiet

    queued = int.from_bytes(fcntl.ioctl(raw.fileno(), termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)
    return queued, read_until_quiet(raw)


def publish_bulk(count: int, size: int) -> int:
    """``count`` messages of ``size`` bytes of a type the measured clients do not subscribe to: the stalled client
    (subscribed to everything) gets them and cannot take them; the others' subscriptions filter them out."""
    from hsi.realtime import send_now

    pad = "x" * size
    for n in range(count):
        send_now("events", "bench.bulk", {"n": n, "pad": pad})
    return count * size


def health_ms(url: str) -> float | None:
    import httpx

    started = time.perf_counter()
    try:
        httpx.get(url.replace("ws://", "http://") + "/health", timeout=10).raise_for_status()
    except httpx.HTTPError:
        return None
    return (time.perf_counter() - started) * 1000


# --- the run -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def measuring(into: dict, phase: str, servers: list[subprocess.Popen]):
    """CPU seconds of the server processes and of the whole machine, and wall seconds, over the block."""
    server_before = [process_cpu_seconds(server.pid) for server in servers]
    machine_before, started = _common.machine_busy_seconds(), time.perf_counter()
    yield
    server_after = [process_cpu_seconds(server.pid) for server in servers]
    machine_after = _common.machine_busy_seconds()
    figures = {"wall": time.perf_counter() - started}
    if servers and None not in server_before and None not in server_after:
        figures["server"] = sum(server_after) - sum(server_before)
    if machine_before is not None and machine_after is not None:
        figures["machine"] = machine_after - machine_before
    into[phase] = figures


def publish_phase(phase: str, events: int, interval: float, pad_bytes: int) -> float:
    from hsi.realtime import send_now

    pad = "x" * pad_bytes
    started = time.perf_counter()
    for n in range(events):
        send_now("events", MESSAGE_TYPE, {"phase": phase, "n": n, "sent_at": time.time(), "pad": pad})
        time.sleep(interval)
    return time.perf_counter() - started


def latency_row(name: str, samples: list[tuple], expected: int) -> list[str]:
    latencies = sorted((received - sent) * 1000 for _phase, _seq, sent, received in samples)
    p = _common.percentile
    return [
        name,
        f"{len(latencies)}/{expected}",
        _common.fmt(p(latencies, 0.50)),
        _common.fmt(p(latencies, 0.95)),
        _common.fmt(p(latencies, 0.99)),
        _common.fmt(latencies[-1] if latencies else None),
    ], (p(latencies, 0.99) if latencies else float("nan"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="ws://host:port of a running server (default: start daphne)")
    parser.add_argument("--servers", type=int, default=1, help="daphne processes to start (clients spread over them)")
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument(
        "--client",
        choices=("sans-io", "asyncio"),
        default="sans-io",
        help="websockets' Sans-I/O protocol on plain transports (light) or its asyncio client (a task per socket)",
    )
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between two published messages")
    parser.add_argument("--bulk-messages", type=int, default=100, help="messages only the stalled client receives")
    parser.add_argument("--bulk-bytes", type=int, default=60000)
    parser.add_argument("--pad-bytes", type=int, default=1024, help="padding in every measured message (both phases)")
    parser.add_argument("--db-base", default=_common.DEFAULT_DATABASE_BASE)
    parser.add_argument("--redis-url", default=_common.DEFAULT_REDIS_URL)
    parser.add_argument("--key-prefix", default=KEY_PREFIX)
    args = parser.parse_args(argv)

    light = args.client == "sans-io"
    database_url = _common.database_url(args.db_base, DATABASE_NAME)
    servers: list[subprocess.Popen] = []
    if args.url is None:
        _common.recreate_database(args.db_base, DATABASE_NAME)
    _common.setup_django(database_url, redis_url=args.redis_url, key_prefix=args.key_prefix, extra_env=SERVER_ENV)
    if args.url is None:
        _common.migrate()
        urls = []
        for index in range(args.servers):
            log_path = Path(tempfile.gettempdir()) / f"hsi_bench_ws_daphne_{index}.log"
            server, url = start_daphne(database_url, args.redis_url, args.key_prefix, log_path)
            servers.append(server)
            urls.append(url)
            print(f"daphne at {url} (log {log_path})")
    else:
        urls = [args.url.rstrip("/")]
    print(f"Load average (1/5/15 min): {_common.load_average()}, {_common.cpu_count()} CPU(s)")
    print(
        f"{args.clients} clients over {len(urls)} server process(es), {args.events} messages per phase, "
        f"one every {args.interval} s; messages padded with {args.pad_bytes} bytes; "
        f"{args.client} clients"
    )
    try:
        expected_per_client = 2 * args.events + WARMUP_EVENTS
        started = time.perf_counter()
        groups = start_clients(
            [f"{url}/ws/events" for url in urls], args.clients, args.client_processes, expected_per_client, light
        )
        print(f"connected and subscribed in {time.perf_counter() - started:.2f} s")
        publish_phase("warmup", WARMUP_EVENTS, args.interval, 0)  # first use: the publisher's loop and connections
        gc.collect()
        gc.freeze()  # the publisher's own collections would delay a send after its send time was taken
        health_before = health_ms(urls[0])
        cpu = {}
        with measuring(cpu, "reading", servers):
            publish_phase("reading", args.events, args.interval, args.pad_bytes)
        stalled = stalled_client(urls[0])
        bulk_bytes = publish_bulk(args.bulk_messages, args.bulk_bytes)  # only the stalled client takes these
        time.sleep(1.0)  # the backlog is in place (and stays: the client never reads) before the phase starts
        with measuring(cpu, "stalled", servers):
            publish_phase("stalled", args.events, args.interval, args.pad_bytes)
        health_during = health_ms(urls[0])  # the stalled socket's backlog is still waiting in the server
        per_client, client_cpu = collect(groups)
        stalled_queued, stalled_read = stalled_backlog(stalled)
        stalled.close()
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()

    results = [sample for samples in per_client for sample in samples if sample[0] != "warmup"]
    expected = args.clients * args.events
    rows, p99s = [], {}
    for phase, label in (("reading", "all clients reading"), ("stalled", "one client stalled (the others)")):
        row, p99 = latency_row(label, [r for r in results if r[0] == phase], expected)
        rows.append(row)
        p99s[phase] = p99
    print()
    _common.print_table(["phase", "delivered", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows)
    seq_ok = bool(per_client) and all(_strictly_increasing([s[1] for s in samples]) for samples in per_client)
    print(
        f"\nstalled client: {(bulk_bytes + args.events * args.pad_bytes) / 1e6:.1f} MB published to it; its kernel "
        f"receive queue held {stalled_queued / 1e3:.0f} kB and {stalled_read / 1e6:.2f} MB came once it read: the "
        f"server had held the backlog and answered GET /health meanwhile in {_common.fmt(health_during)} ms "
        f"(before the phases: {_common.fmt(health_before)} ms)"
    )
    for phase, figures in cpu.items():
        delivered = sum(1 for r in results if r[0] == phase)
        server = figures.get("server")
        per_message = f"{server / max(delivered, 1) * 1e6:.0f} us per delivered message" if server is not None else "-"
        print(
            f"{phase}: server CPU {_common.fmt(server)} s ({per_message}), whole machine "
            f"{_common.fmt(figures.get('machine'), 1)} s over {figures['wall']:.1f} s"
        )
    print(f"client processes: {client_cpu:.1f} s of CPU in all")
    delivered_all = len(results) == 2 * expected
    print()
    for phase, label in (("reading", "all reading"), ("stalled", "one client stalled")):
        passed = p99s[phase] <= TARGET_P99_MS
        print(
            f"  {_common.verdict(passed)}  p99 {_common.fmt(p99s[phase])} ms, {label} (target <= {TARGET_P99_MS:.0f})"
        )
    delivered = f"{len(results)}/{2 * expected}"
    print(f"  {_common.verdict(delivered_all)}  every message reached every reading client ({delivered})")
    print(f"  {_common.verdict(seq_ok)}  each client saw seq strictly increasing")
    print(f"  {_common.verdict(health_during is not None)}  the server answered HTTP while a socket was stalled")


def _strictly_increasing(seqs: list[int]) -> bool:
    return all(b > a for a, b in itertools.pairwise(seqs))


if __name__ == "__main__":
    main()
