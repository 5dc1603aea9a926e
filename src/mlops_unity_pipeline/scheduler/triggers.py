"""Cron triggers with an IANA time zone.

Daylight-saving rules (documented and tested):
* a local time that does not exist (spring forward, e.g. 02:30 in Europe/Berlin on the last Sunday of March)
  fires once, at the first instant after the gap (03:00 local);
* a local time that exists twice (fall back) fires once, at its first occurrence (the earlier UTC instant);
  croniter alone would fire it twice.
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from ..errors import SpecError


def _is_second_occurrence(dt: datetime) -> bool:
    """True for the later of two instants that share this wall-clock time."""
    return dt.replace(fold=0).utcoffset() != dt.utcoffset()


class CronTrigger:
    def __init__(self, expression: str, tz: str = "UTC") -> None:
        if not croniter.is_valid(expression):
            raise SpecError(f"cron_expression {expression!r} is not a valid cron expression",
                            hint="use 5 fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * *'")
        try:
            self.tz = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise SpecError(f"timezone {tz!r} is not an IANA time zone name",
                            hint="use a name such as 'UTC', 'Europe/Berlin' or 'America/New_York'") from None
        self.expression = expression
        try:  # valid fields can still describe a date that never comes (`0 0 31 2 *`)
            self.next_after(datetime(2000, 1, 1, tzinfo=timezone.utc))
        except (CroniterError, ValueError, OverflowError) as exc:
            raise SpecError(f"cron_expression {expression!r} never fires ({exc})",
                            hint="check the day-of-month against the month, e.g. February has no 30th") from None

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after `after` (aware), in UTC."""
        if after.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        it = croniter(self.expression, after.astimezone(self.tz))
        while True:
            candidate: datetime = it.get_next(datetime)
            if not _is_second_occurrence(candidate):
                return candidate.astimezone(timezone.utc)
