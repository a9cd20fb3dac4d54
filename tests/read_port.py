"""A stream-level memory behind the read half of a memory port, for Amaranth testbenches of
read clients (the descriptor fetcher, the read arbiter): it takes commands on ``read_cmd`` and
answers each with its beats on ``read_data`` after a latency, in order, from a
:class:`convhw.compiler.list_model.Memory`, with seeded random stalls on both channels and
error beats for the memory's error ranges."""

from __future__ import annotations

import random
from collections import deque


def read_responder(client, memory, *, beat_bytes: int, latency: int = 4, pause: float = 0.0,
                   seed: int = 0, log: list | None = None):
    """An Amaranth simulator process serving ``client.read_cmd``/``client.read_data``.
    Appends ``(cycle, addr, beats)`` to ``log`` per command taken."""
    rng = random.Random(seed)

    async def process(ctx):
        pending = deque()            # (ready cycle, data or None, last)
        cycle = 0
        beat = None
        while True:
            take = not (pause and rng.random() < pause)
            ctx.set(client.read_cmd.ready, take)
            if beat is None and pending and pending[0][0] <= cycle \
                    and not (pause and rng.random() < pause):
                beat = pending.popleft()
            if beat is not None:
                _, data, last = beat
                ctx.set(client.read_data.valid, 1)
                ctx.set(client.read_data.payload, {"data": data or 0, "last": last,
                                                   "error": data is None})
            else:
                ctx.set(client.read_data.valid, 0)
            _, _, cmd_valid, cmd, data_ready = await ctx.tick().sample(
                client.read_cmd.valid, client.read_cmd.payload, client.read_data.ready)
            if take and cmd_valid:
                beats = cmd.len + 1
                if log is not None:
                    log.append((cycle, cmd.addr, beats))
                for i in range(beats):
                    address = cmd.addr + i * beat_bytes
                    try:
                        raw = memory.read(address, beat_bytes)
                        data = int.from_bytes(raw.tobytes(), "little")
                    except Exception:
                        data = None
                    pending.append((cycle + latency + i, data, i == beats - 1))
            if beat is not None and data_ready:
                beat = None
            cycle += 1

    return process
