"""The watchdog task: every interval, run the checks, then ``WATCHDOG=1`` unless one failed, and
``STATUS=`` whenever the operator's summary changes.  Transitions are logged (parts, durations and
counts only)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from firmware_app.journal import event
from watchdog.checks import CheckSource, LagMonitor
from watchdog.health import Check, State, Thresholds, Verdict, evaluate, loop_lag_check
from watchdog.notify import Notifier

__all__ = ["STATUS_INTERVAL_S", "WatchdogService"]

log = logging.getLogger("csd.watchdog")

#: Without a systemd watchdog the checks still run this often, to keep STATUS= current.
STATUS_INTERVAL_S = 10.0
#: The longest one check may hold up a round (a probe still running is judged on its age).
MAX_CHECK_WAIT_S = 2.0


class WatchdogService:
    """Runs until cancelled.  ``interval_s``: half of ``WATCHDOG_USEC`` when systemd watches the
    service (``pinging``), else ``STATUS_INTERVAL_S``."""

    def __init__(
        self,
        notifier: Notifier,
        sources: Sequence[CheckSource],
        *,
        interval_s: float | None,
        thresholds: Thresholds | None = None,
        lag: LagMonitor | None = None,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._notifier = notifier
        self._sources = list(sources)
        self.pinging = interval_s is not None
        self.interval_s = interval_s if interval_s is not None else STATUS_INTERVAL_S
        self._t = thresholds or Thresholds()
        self._lag = lag or LagMonitor(monotonic_s)
        self._states: dict[str, State] = {}
        self._status = ""
        self._pinged: bool | None = None
        self.last: Verdict | None = None

    async def run(self) -> None:
        lag_task = asyncio.create_task(self._lag.run(), name="watchdog-lag")
        loop = asyncio.get_running_loop()
        next_s = loop.time()
        try:
            while True:
                await self.round()
                next_s += self.interval_s  # a fixed rate: a slow round does not stretch the period
                now_s = loop.time()
                next_s = max(next_s, now_s)
                await asyncio.sleep(next_s - now_s)
        except Exception:
            log.exception("watchdog failed; pings stopped, systemd will restart the service", extra=event("watchdog.failed"))
            raise
        finally:
            lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag_task
            for source in self._sources:
                with contextlib.suppress(Exception):
                    await source.close()

    async def round(self) -> Verdict:
        """One round of checks and the notification that follows from it."""
        wait_s = min(self.interval_s / 2, MAX_CHECK_WAIT_S)
        found = await asyncio.gather(*(source.check(wait_s) for source in self._sources))
        # Taken after the other checks: the longest lag since the last round, this one included.
        checks: list[Check] = [loop_lag_check(self._lag.take_max_s(), self._t)]
        for source_checks in found:
            checks.extend(source_checks)
        verdict = evaluate(checks)
        fields: dict[str, str | int] = {}
        if verdict.ping and self.pinging:
            fields["WATCHDOG"] = 1
        if verdict.status != self._status:
            fields["STATUS"] = verdict.status
            self._status = verdict.status
        self._notifier.send(**fields)
        self._log_transitions(checks, verdict)
        self.last = verdict
        return verdict

    def _log_transitions(self, checks: Sequence[Check], verdict: Verdict) -> None:
        reported = {check.name for check in checks}
        gone = [Check(name, State.OK) for name, state in self._states.items() if state is not State.OK and name not in reported]
        for check in [*checks, *gone]:
            before = self._states.get(check.name, State.OK)
            if check.state is before:
                continue
            self._states[check.name] = check.state
            if check.state is State.FAILED:
                log.error("health check failed: %s", check.text, extra=event("watchdog.check_failed"))
            elif check.state is State.DEGRADED:
                log.warning("health degraded: %s", check.text, extra=event("watchdog.degraded"))
            else:
                log.info("health check %s ok again", check.name, extra=event("watchdog.check_ok"))
        if self.pinging and verdict.ping is not self._pinged:
            if not verdict.ping:
                log.error("watchdog pings stopped; systemd will restart the service", extra=event("watchdog.pings_stopped"))
            elif self._pinged is False:
                log.info("watchdog pings resumed", extra=event("watchdog.pings_resumed"))
        self._pinged = verdict.ping

