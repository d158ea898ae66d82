"""Flow control toward an external system: a consumer's rate limit, kept by the whole fleet."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    """At most `count` deliveries per `per` seconds, whatever the number of workers."""

    count: int
    per: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Read "10/s", "600/min" or "1000/h"; ValueError for anything else."""
        match = _RATE.match(text.lower())
        if match is None or match.group(2) not in _PERIODS or int(match.group(1)) <= 0:
            raise ValueError(f"{text!r} is not a rate: write it as 10/s, 600/min or 1000/h")
        return cls(count=int(match.group(1)), per=_PERIODS[match.group(2)])

    @property
    def interval(self) -> float:
        """Seconds between two deliveries at this rate."""
        return self.per / self.count

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.per, f"{self.per:g}s")
        return f"{self.count}/{unit}"


@dataclass(frozen=True)
class RateSetting:
    """A rate read from a setting when used (the provider's quota, from the environment); unset or empty: unlimited."""

    name: str

    def resolve(self) -> Rate | None:
        value = getattr(settings, self.name, None)
        return Rate.parse(value) if value else None


def rate_setting(name: str) -> RateSetting:
    """Declare a consumer's rate as the value of setting `name` (e.g. CRM_RATE_LIMIT), read when used."""
    return RateSetting(name)


def resolve_rate(rate: str | Rate | RateSetting | None) -> Rate | None:
    """Return the Rate a consumer's declaration means now (None: unlimited)."""
    if rate is None or isinstance(rate, Rate):
        return rate
    if isinstance(rate, RateSetting):
        return rate.resolve()
    return Rate.parse(rate)
