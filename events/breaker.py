"""The circuit breaker's declaration: a consumer whose endpoint keeps failing stops trying, and probes until it answers.

Its mechanics (the state on the ConsumerControl row, shared by the fleet) are in events.circuit.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.conf import events_settings


@dataclass(frozen=True, kw_only=True)
class CircuitBreaker:
    """Open after `failures` transient failures in a row (fleet-wide); then one probe every `probe_every` seconds.

    probe_every unset: EVENTS_CIRCUIT_PROBE_EVERY (30 s by default), read when used.
    """

    failures: int = 5
    probe_every: float | None = None

    def __post_init__(self) -> None:
        if self.failures < 1 or (self.probe_every is not None and self.probe_every <= 0):
            raise ValueError("A circuit breaker needs failures ≥ 1 and probe_every > 0")

    @property
    def interval(self) -> float:
        """Seconds between two probes."""
        return events_settings().circuit_probe_every if self.probe_every is None else self.probe_every

    def describe(self) -> str:
        """Say the breaker in one line, for the admin and the docs."""
        return f"opens after {self.failures} transient failures in a row; then one probe every {self.interval:g} s"
