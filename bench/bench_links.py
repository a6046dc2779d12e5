"""Benchmark of the daemon's daily work over loopback TLS: register → CS → prefecture, every
commit durable.  Prints figures; asserts nothing.

1. Baseline, measured in the same run: the same register client sending the same frames to a
   trivial TLS server that acknowledges each frame at once (no decoding, storage or crypto): the
   ceiling of the transport and the client on this machine.
2. Throughput: N updates (identity changes, card events, destination records from the register
   stream) submitted at once, pipelined; the clock stops when the register has every
   acknowledgement AND the prefecture and the card system have applied every notice.
3. Latency at a fixed offered rate: for each identity change, register send → the prefecture
   applying its notice (end to end), and register send → the CS's acknowledgement.

The CS runs as its own process (own SoftHSM2 login); the peers run in this process.

    .venv/bin/python bench/bench_links.py --updates 100000 --rate 1000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from firmware_app.links.connection import Connection
from firmware_app.links.errors import ConnectionClosed
from firmware_app.links.messages import Ack, MessageCodec, Resume
from firmware_app.links.outbound import Endpoint
from firmware_app.links.tls import server_context
from peers.register import RegisterClient, submit_event
from peers.register_stream import CardChange, Change, DestinationDue
from peers.stand import open_stand


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def _baseline(stand, events: list) -> float:
    """Updates/s through a TLS server that acknowledges every frame unread (same client, same frames)."""
    codec = MessageCodec()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer, codec, name="baseline")
        conn.send("resume", 0, Resume(1))
        try:
            while True:
                msg = await conn.recv()
                conn.send("ack", msg.seq, Ack(msg.seq))
        except (ConnectionClosed, asyncio.CancelledError):
            pass

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context(stand.pki.tls("cs", pins=("register",))))
    port = server.sockets[0].getsockname()[1]
    client = RegisterClient(Endpoint("127.0.0.1", port, "localhost"), stand.pki.tls("register"), window=4096)
    task = asyncio.create_task(client.run())
    start = time.perf_counter()
    for event in events:
        submit_event(client, event)
    await client.wait_acked(len(events), 600)
    elapsed = time.perf_counter() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    server.close()
    return len(events) / elapsed


async def _until(predicate, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.005)


async def _throughput(stand, args: argparse.Namespace, cs_proc: psutil.Process) -> None:
    register, prefecture, national = stand.register, stand.prefecture, stand.national
    events = list(stand.stream.events(args.updates))
    kinds = sum(isinstance(e, Change) for e in events), sum(isinstance(e, CardChange) for e in events), sum(isinstance(e, DestinationDue) for e in events)
    print(f"workload: {len(events):,} updates = {kinds[0]:,} identity changes, {kinds[1]:,} card events, {kinds[2]:,} destination records")

    baseline = await _baseline(stand, events)
    print(f"baseline  TLS ack-only server, same client and frames: {baseline:10,.0f} updates/s")

    notices_before, cards_before = prefecture.last_seq, len(national.cards) + len(national.destinations)
    cpu_before = cs_proc.cpu_times()
    start = time.perf_counter()
    for event in events:
        submit_event(register, event)
    await register.wait_acked(register.submitted, 600)
    acked_s = time.perf_counter() - start
    await _until(
        lambda: prefecture.last_seq >= notices_before + kinds[0] and len(national.cards) + len(national.destinations) >= cards_before + kinds[1] + kinds[2],
        600,
    )
    elapsed = time.perf_counter() - start
    cpu = cs_proc.cpu_times()
    cs_cpu_s = (cpu.user + cpu.system) - (cpu_before.user + cpu_before.system)
    rate = len(events) / elapsed
    print(
        f"product   register → CS → prefecture/card system: {rate:10,.0f} updates/s "
        f"({elapsed:.1f} s; register fully acknowledged after {acked_s:.1f} s) = {rate / baseline:.0%} of baseline"
    )
    print(f"          CS process CPU {cs_cpu_s:.1f} s = {cs_cpu_s / elapsed:.0%} of one core; {cs_cpu_s / len(events) * 1e6:.0f} µs per update")
    assert prefecture.out_of_order == 0 and not register.refused


async def run(args: argparse.Namespace, base: Path) -> None:
    async with open_stand(base, population=args.population, seed=args.seed, log_level=args.cs_log_level) as stand:
        cs_proc = psutil.Process(stand.cs.pid)
        register, prefecture = stand.register, stand.prefecture
        print(f"stand: CS pid {stand.cs.pid}, {args.population:,} residents preloaded, every commit durable (LMDB sync)")

        if not args.skip_throughput:
            await _throughput(stand, args, cs_proc)

        # Latency at a fixed offered rate.  The simulators' own bookkeeping (the register keeps every
        # update it sent) would otherwise make Python's full garbage collections pause this process,
        # the peers' side, for tens of milliseconds: freeze what exists so far out of the collector.
        loop = asyncio.get_running_loop()
        applied_at: dict[int, float] = {}
        prefecture.receiver._on_applied = lambda first, last: applied_at.update(dict.fromkeys(range(first, last + 1), loop.time()))
        paced = list(stand.stream.events(int(args.rate * args.seconds)))
        gc.collect()
        gc.freeze()
        gc.disable()
        first_notice = prefecture.last_seq + 1
        change_seqs: list[int] = []
        tick_s = 0.005
        per_tick = args.rate * tick_s
        start_t = loop.time()
        owed = 0.0
        index = 0
        while index < len(paced):
            owed += per_tick
            while owed >= 1 and index < len(paced):
                seq = submit_event(register, paced[index])
                if isinstance(paced[index], Change):
                    change_seqs.append(seq)
                index += 1
                owed -= 1
            next_t = start_t + (index / args.rate)
            await asyncio.sleep(max(0.0, next_t - loop.time()))
        offered_s = loop.time() - start_t
        gc.enable()
        await register.wait_acked(register.submitted, 120)
        await _until(lambda: prefecture.last_seq >= first_notice + len(change_seqs) - 1, 120)
        end_to_end = [(applied_at[first_notice + k] - register.sent_at[seq]) * 1000 for k, seq in enumerate(change_seqs)]
        ack = [(register.acked_at[seq] - register.sent_at[seq]) * 1000 for seq in change_seqs]
        print(f"latency   {len(paced):,} updates offered at {len(paced) / offered_s:,.0f}/s for {offered_s:.1f} s ({len(change_seqs):,} identity changes measured)")
        for name, values in (("register send → prefecture applied", end_to_end), ("register send → CS acknowledgement", ack)):
            print(
                f"          {name}: p50 {statistics.median(values):.1f} ms, p99 {_pct(values, 99):.1f} ms, "
                f"max {max(values):.1f} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--population", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--skip-throughput", action="store_true", help="only the latency phase")
    parser.add_argument("--cs-log-level", default="INFO", help="csd's log level (DEBUG logs every group commit)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    if args.dir is not None:
        asyncio.run(run(args, args.dir))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-links-") as tmp:
            asyncio.run(run(args, Path(tmp)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
