"""A stop signal inside `stop_signals_held` is recorded, not raised (a caller must first learn
the id of the run it creates, to cancel it)."""

from __future__ import annotations

import signal

from mlops.config.interrupts import stop_signals_held


def test_a_signal_while_held_is_recorded_and_the_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGINT)
    with stop_signals_held() as held:
        signal.raise_signal(signal.SIGINT)  # would be a KeyboardInterrupt
    assert held == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is before
