"""``csd``'s health watchdog for systemd (``Type=notify``, ``WatchdogSec=``).

How it works:

* ``notify``: a minimal sd_notify client.  Datagrams go to ``$NOTIFY_SOCKET`` (a path or an
  ``@abstract`` name); without it every send is a no-op.  ``watchdog_interval_s()`` reads
  ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, which must be ours) and returns half the period.
* The daemon sends ``READY=1`` only once storage is open, the HSM self-test has passed and the
  listener and outbound links have started; ``STOPPING=1`` first thing when it stops.
* ``service.WatchdogService`` runs every interval (half of ``WATCHDOG_USEC``; every
  ``STATUS_INTERVAL_S`` when systemd does not watch, to keep ``STATUS=`` current).  Each round
  gathers checks from ``checks``: event-loop lag (a task measuring how late it is woken), a probe
  against the HSM's KEK on a thread of its own, a durable write of ``meta/watchdog_probe`` through
  the intake's writer thread, free disk of the store's filesystem, available memory, open files
  against ``RLIMIT_NOFILE``, and how long each outbound link has been down.
* ``health`` (pure) judges them.  A *failed* check (loop stalled, HSM lost or not answering, the
  storage write failing or hung, disk, memory or file handles exhausted) withholds ``WATCHDOG=1``,
  so systemd restarts the service.  A *degraded* one (a peer unreachable past its grace period,
  the disk filling up, the loop slow) keeps the pings and says so.  A probe that hangs is judged
  on its age, so a hung HSM becomes a failed check, never a hung watchdog; and a hung event loop
  sends nothing at all.
* ``STATUS=`` is sent whenever the summary changes, e.g. ``degraded: prefecture unreachable for
  3 min, 12,345 notices queued``.  It names parts, durations and counts, never personal data.
"""
