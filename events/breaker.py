"""The circuit breaker: a consumer whose endpoint keeps failing stops trying, and probes until it answers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class CircuitBreaker:
    """Open after `failures` transient failures in a row (fleet-wide); then one probe every `probe_every` seconds."""

    failures: int = 5
    probe_every: float = 30.0

    def __post_init__(self) -> None:
        if self.failures < 1 or self.probe_every <= 0:
            raise ValueError("A circuit breaker needs failures ≥ 1 and probe_every > 0")

    def describe(self) -> str:
        """Say the breaker in one line, for the admin and the docs."""
        return f"opens after {self.failures} transient failures in a row; then one probe every {self.probe_every:g} s"
