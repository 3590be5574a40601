"""Ports for servers a test stops and starts again on the same port (an outage drill).

`serving.process.free_port` asks the kernel for any free port, from its ephemeral range: while a
drilled server is down, its port is free, and another xdist worker starting a server of its own
was handed that very port (the drilled server then "came back" as the other worker's, and both
tests failed). A port from `restartable_port` is outside the ephemeral range, in a block of its
own per xdist worker, so nothing else in the suite is given it while its server is down.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

FIRST_PORT = 20_000  # below Linux's ephemeral range (32768-60999): bind(0) never returns these
BLOCK = 1_000  # ports per xdist worker
_next_offsets = itertools.count(random.randrange(BLOCK))  # another checkout's suite may run too


def restartable_port() -> int:
    """A free port of this worker's block (`gw3`: the fourth block)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = FIRST_PORT + BLOCK * int(worker or 0)
    for offset in itertools.islice(_next_offsets, BLOCK):
        port = first + offset % BLOCK
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {first}-{first + BLOCK - 1}")
