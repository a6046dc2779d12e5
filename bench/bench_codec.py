"""Benchmark of link message decoding (identity_change frames) against plain msgpack decoding in the same run.

Prints figures and the ratio; it is not a test and asserts nothing.  Frames are built from the
synthetic population before any clock starts; each phase decodes the same frame bodies.

    .venv/bin/python bench/bench_codec.py --messages 100000

Phases:
  plain    ``msgspec.msgpack.decode`` of each frame body, untyped (the floor)
  frames   FrameDecoder over the whole stream, in --chunk-bytes pieces (no message decoding)
  codec    MessageCodec.decode of each frame body: envelope, registry look-up, typed body
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import msgspec

from firmware_app.links.frames import FrameDecoder
from firmware_app.domain.updates import IdentityChange
from firmware_app.links.messages import MessageCodec
from peers.population import generate


def _timed(label: str, count: int, size_bytes: int, run: Callable[[], None], repeat: int) -> float:
    best = min(_once(run) for _ in range(repeat))
    print(f"{label:<8} {count / best:>12,.0f} msg/s {size_bytes / best / 1e6:>9.1f} MB/s  ({best * 1e3:.1f} ms)")
    return best


def _once(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--chunk-bytes", type=int, default=16 * 1024)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per phase")
    args = parser.parse_args()

    codec = MessageCodec()
    frames = [
        codec.encode("identity_change", seq, IdentityChange("modify", record))
        for seq, record in enumerate(generate(args.messages))
    ]
    bodies = [frame[4:] for frame in frames]
    stream = b"".join(frames)
    chunks = [stream[i : i + args.chunk_bytes] for i in range(0, len(stream), args.chunk_bytes)]
    size = sum(map(len, bodies))
    print(f"{args.messages:,} identity_change frames, {size / args.messages:.0f} bytes per body on average")

    decode = msgspec.msgpack.decode

    def plain() -> None:
        for body in bodies:
            decode(body)

    def split() -> None:
        decoder = FrameDecoder()
        for chunk in chunks:
            decoder.feed(chunk)

    def typed() -> None:
        for body in bodies:
            codec.decode(body)

    floor = _timed("plain", args.messages, size, plain, args.repeat)
    _timed("frames", args.messages, len(stream), split, args.repeat)
    product = _timed("codec", args.messages, size, typed, args.repeat)
    print(f"codec/plain throughput ratio: {floor / product:.2f}")


if __name__ == "__main__":
    main()
