"""A stop signal while a deployment's run is being created is held, not raised: the caller must
know the run's id to cancel it."""

from __future__ import annotations

import signal

from flows.dispatch import _stop_signals_held


def test_a_signal_while_held_is_recorded_and_the_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGINT)
    with _stop_signals_held() as held:
        signal.raise_signal(signal.SIGINT)  # would be a KeyboardInterrupt
    assert held == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is before
