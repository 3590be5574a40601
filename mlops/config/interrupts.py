"""Ctrl-C (SIGINT) and SIGTERM: a command stops within seconds, stops the processes it started
and says it was interrupted (exit 130), never "the platform failed".

Inside `interruptible()` either signal raises `Interrupted` in the main thread wherever it is,
inside a Prefect flow too (the engine records the run as crashed and re-raises). The main thread
can stay deaf for a while: a long call into C, or the Prefect engine retrying to report the
crash to a server the same Ctrl-C stopped (a terminal sends it to the whole process group). So
a watchdog thread, woken by the signal itself through `signal.set_wakeup_fd`, gives the orderly
way out `GRACE_SECONDS`, then says its last words, stops the children and ends the process.
An orderly way out ends the same way once the exit hooks have run, without the interpreter's
teardown. What a command committed before the signal stays: a rerun recovers as after a crash."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

import psutil  # light; imported now, not while the interpreter is shutting down

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The orderly way out (Prefect reports the crash, `finally` blocks stop the service) gets this
# long; then the watchdog stops what is left. Leaves room for "exits within 10 s".
GRACE_SECONDS = 5.0
CHILD_STOP_SECONDS = 1.0  # SIGTERM to a child, then SIGKILL


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: a `KeyboardInterrupt`, so no `except Exception` on the way
    swallows it or reports it as a failure."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class _State:
    def __init__(self) -> None:
        self.signum: int | None = None
        self.armed = False
        self.received = threading.Event()
        self.told = threading.Event()  # the user was told: the watchdog must not say it again
        self.last_words: Callable[[int], None] = lambda signum: None
        self.exit_hook = False
        self.exit_code = EXIT_INTERRUPTED
        self.grace_seconds = GRACE_SECONDS


_state = _State()


def received_signal() -> int | None:
    """The stop signal this process received, if any."""
    return _state.signum


@contextlib.contextmanager
def interruptible(
    last_words: Callable[[int], None], grace_seconds: float = GRACE_SECONDS
) -> Iterator[None]:
    """Inside, SIGINT and SIGTERM raise `Interrupted` in the main thread; if the process is
    still there `grace_seconds` later, `last_words(signum)` runs (unless `mark_told()` was
    called), the children are stopped and the process exits 130. Leaving without a signal
    restores the handlers there were (a test calling a command in-process keeps its own); after
    a signal the watchdog stays, to bound the process's way out. Main thread only; nested, the
    outer one rules."""
    if _state.armed or threading.current_thread() is not threading.main_thread():
        yield
        return
    if not _state.exit_hook:
        # Registered before any child starts, so it runs after their own exit hooks (Prefect
        # stops its server at exit, after draining its events to it).
        atexit.register(_end_if_interrupted)
        _state.exit_hook = True
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    previous = {signum: signal.signal(signum, _raise_interrupted) for signum in STOP_SIGNALS}
    _state.last_words, _state.armed = last_words, True
    _state.grace_seconds = grace_seconds
    watchdog = threading.Thread(
        target=_watchdog, args=(read_end, write_end), name="interrupt-watchdog", daemon=True
    )
    watchdog.start()
    try:
        yield
    finally:
        if _state.signum is None:
            signal.set_wakeup_fd(previous_fd)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            _state.armed = False  # the watchdog ends, and closes its pipe


@contextlib.contextmanager
def stop_signals_held() -> Iterator[list[int]]:
    """Inside, SIGINT and SIGTERM are recorded in the yielded list, not raised: for a step that
    must finish once begun (creating a remote run whose id is needed to cancel it). The
    handlers there were come back on leaving; the caller acts on what was held. Main thread
    only (elsewhere it holds nothing)."""
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = {s: signal.signal(s, lambda signum, _: held.append(signum)) for s in STOP_SIGNALS}
    try:
        yield held
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _end_if_interrupted() -> None:
    """After a stop signal, the last exit hook (registered before any child started, so it runs
    after theirs: Prefect stops its server once its events are drained): stop the children left,
    then end the process. What a normal exit does next is the interpreter's teardown of every
    module loaded: ~4 s of CPU after `mlops run` on a quiet 2-core machine (14.6 s to exit on a
    busy one), which an interrupted command has no use for and the watchdog cannot bound (the
    interpreter freezes daemon threads before it)."""
    if _state.signum is None:
        return
    stop_children()
    with contextlib.suppress(Exception):
        logging.shutdown()  # registered before this hook: it would run after it
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(_state.exit_code)


def exiting_with(code: int) -> int:
    """The code an interrupted command exits with (130 unless it says otherwise: `serve` stopped
    by SIGTERM exits 0); the exit hook ends the process with it."""
    _state.exit_code = code
    return code


def mark_told() -> None:
    """The interruption was reported: the watchdog, if it has to end the process, stays quiet."""
    _state.told.set()


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    if _note(signum):
        raise Interrupted(signum)
    # A second Ctrl-C, or Prefect re-sending its SIGTERM: the first is already unwinding.


def _note(signum: int) -> bool:
    """Record the signal; True the first time."""
    if _state.signum is not None:
        return False
    _state.signum = signum
    _state.received.set()
    with contextlib.suppress(Exception):  # the interruption matters more than the console
        quiet_console()
    return True


def _watchdog(read_end: int, write_end: int) -> None:
    """Wait for a stop signal (the C-level handler writes its number to the pipe even while
    the main thread is busy in C); then bound the way out."""
    while _state.armed and not _state.received.is_set():
        try:
            ready, _, _ = select.select([read_end], [], [], 0.5)
            woken_by = [b for b in os.read(read_end, 64) if b in STOP_SIGNALS] if ready else []
        except OSError:  # nothing to read after all: the Python-level handler still tells
            woken_by = []
        if woken_by:
            _note(woken_by[0])
    if not _state.received.is_set():  # disarmed: the pipe is no longer the wakeup fd
        os.close(read_end)
        os.close(write_end)
        return
    # Nothing may stop this thread from here: it is the bound on the way out.
    time.sleep(_state.grace_seconds)
    # Still here: the orderly way out is stuck (or slower than promised). End it.
    if not _state.told.is_set():
        with contextlib.suppress(Exception):
            _state.last_words(_state.signum or signal.SIGINT)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    with contextlib.suppress(Exception):
        stop_children(timeout=0.2)  # they had the grace already
    os._exit(_state.exit_code)


def quiet_console() -> None:
    """Nothing more from the libraries on the terminal (their log records still reach the log
    files): once interrupted, what a library says about the servers the signal also stopped
    (Prefect's "EventsWorker failed to process item", one per event) is noise."""
    loggers = [logging.getLogger(), *list(logging.Logger.manager.loggerDict.values())]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            ):
                handler.setLevel(logging.CRITICAL + 1)


def stop_children(timeout: float = CHILD_STOP_SECONDS) -> None:
    """Stop every process this one started and that still runs (the ephemeral Prefect server,
    `bentoml serve` and its workers, a local Ray), with theirs: SIGTERM, then SIGKILL after
    `timeout`. A child in a session of its own (`mlops up`'s services) is meant to outlive this
    process and is left alone, with its descendants."""
    own_session = os.getsid(0)
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    ours = []
    for child in children:
        try:
            if os.getsid(child.pid) == own_session:
                ours += [child, *child.children(recursive=True)]
        except (OSError, psutil.Error):
            continue
    for process in ours:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(ours, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout)
