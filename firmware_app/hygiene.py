"""Process hygiene for ``csd``: no core dumps, no secrets in the environment, private files, never root.

``apply_process_hygiene()`` runs first thing at start, before the configuration, the store or the
HSM is touched; ``lock_memory()`` after it (it never fails the start).  The systemd unit does the
same from outside (``LimitCORE=0``, ``UMask=0077``, ``User=cs-appliance``, ``MemorySwapMax=0``,
credentials instead of environment variables); this module makes a process started any other way
(by hand, by a test, under another supervisor) keep the same rules.

What each step does:

- **Root.** Refused (``HygieneError``) when the real or effective UID is 0, unless ``allow_root``
  (development and CI, which run as root): the daemon has no use for any privilege.
- **Secrets in the environment.** Refused when a variable's *name* says it carries a secret (see
  ``secret_variable_names``).  Refusing rather than scrubbing: ``/proc/<pid>/environ`` keeps the
  block the process was started with whatever ``os.environ`` later says, and the parent and any
  supervisor have it too, so the only fix is to deliver the secret another way (a systemd
  credential, ``$CREDENTIALS_DIRECTORY``).  Names only are judged, and only names are reported,
  never values.
- **Core dumps.** ``RLIMIT_CORE`` set to 0 (soft and hard) and ``prctl(PR_SET_DUMPABLE, 0)``: with
  the default ``fs.suid_dumpable=0`` the kernel writes no core for a non-dumpable process whatever
  the limit or ``core_pattern`` (a pipe to systemd-coredump included), and a process of the same
  UID may no longer ``ptrace`` it or read its ``/proc/<pid>/mem``.  Side effect: the process's
  ``/proc/<pid>`` files belong to root from then on, so a *separate* process of the same UID cannot
  read the mode-0400 ones (``environ``, ``io``, ``mem``); the process itself still reads its own.
- **Files created private.** ``umask(0o077)``: new files 0600, directories 0700.  A file that must
  be shared (the console socket, group ``cs-console``) is chmod-ed explicitly after it is made.

``lock_memory()``: ``mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)``, so that memory holding
unwrapped data keys (OpenSSL and Python heaps, not addressable one key at a time from Python) is
never written to swap.  ``MCL_ONFAULT`` (Linux 4.4+) locks pages as they are touched: without it
every later mapping is populated whole at once — LMDB's map reads the entire store into RAM, each
new thread's stack takes its full 8 MiB (measured: a 1 GiB map over an 80 MB file and 8 threads
took RSS from 15 to 165 MiB; with ``MCL_ONFAULT`` it stayed at 15).  Pages touched stay locked,
so over time the store's pages that were read stay resident.  It needs ``RLIMIT_MEMLOCK`` above
the process's whole *virtual* size (LMDB's map included) or ``CAP_IPC_LOCK``; systemd's default
limit (8 MiB) is far below that, so under the shipped unit it fails and says so, and
``MemorySwapMax=0`` in the unit keeps the service's memory off swap instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import logging
import os
import re
import resource
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from firmware_app.journal import event

__all__ = ["HygieneError", "HygieneReport", "apply_process_hygiene", "lock_memory", "secret_variable_names"]

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
MCL_CURRENT = 1
MCL_FUTURE = 2
MCL_ONFAULT = 4
UMASK = 0o077

#: Name parts (split on ``_``, ``-`` and ``.``, case-insensitive) that mark a variable as carrying
#: a secret.  ``TOKEN`` and ``KEY`` alone are not in the list: a PKCS#11 token and its label, key
#: labels and key *paths* are ordinary settings here (and ``CREDENTIALS_DIRECTORY`` is the sanctioned
#: way to reach secrets); pairs below catch the usual names of secret keys and tokens.
SECRET_WORDS = frozenset({"PIN", "PINS", "PASSWORD", "PASSWORDS", "PASSWD", "PASS", "PASSPHRASE", "SECRET", "SECRETS", "PRIVKEY", "APIKEY"})
SECRET_PAIRS = frozenset({("PRIVATE", "KEY"), ("SECRET", "KEY"), ("API", "KEY"), ("AUTH", "TOKEN"), ("ACCESS", "TOKEN")})
#: A part ending in one of these is a secret too (``PGPASSWORD``, ``CLIENTSECRET``); ``PASS`` is not
#: among them (``SSH_ASKPASS`` is a program's path).
SECRET_SUFFIXES = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET")
_SPLIT = re.compile(r"[_.\-]+")


class HygieneError(RuntimeError):
    """The process must not start this way (as root, or with a secret in its environment)."""


@dataclass(frozen=True)
class HygieneReport:
    """What ``apply_process_hygiene`` did, for one log line (no secrets, no values)."""

    uid: int
    core_limit: tuple[int, int]
    dumpable: bool | None
    umask_was: int
    running_as_root: bool

    def describe(self) -> str:
        dumpable = "unknown" if self.dumpable is None else ("yes" if self.dumpable else "no")
        root = ", running as root (allowed)" if self.running_as_root else ""
        return f"process hygiene: uid {self.uid}, core limit {self.core_limit[0]}/{self.core_limit[1]}, dumpable {dumpable}, umask {UMASK:04o}{root}"


def secret_variable_names(environ: Mapping[str, str]) -> list[str]:
    """The names of the variables in ``environ`` whose name says they carry a secret, sorted."""
    found = []
    for name in environ:
        parts = [part for part in _SPLIT.split(name.upper()) if part]
        if (
            any(part in SECRET_WORDS or part.endswith(SECRET_SUFFIXES) for part in parts)
            or any(pair in SECRET_PAIRS for pair in itertools.pairwise(parts))
        ):
            found.append(name)
    return sorted(found)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _set_dumpable_off(libc: ctypes.CDLL | None) -> bool | None:
    """Clear the dumpable flag; returns the flag as read back (None: not Linux)."""
    if libc is None:
        return None
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise HygieneError(f"prctl(PR_SET_DUMPABLE, 0) failed: {os.strerror(err)}")
    return bool(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def _no_core_limit() -> tuple[int, int]:
    """RLIMIT_CORE to 0; a no-op when already 0 (the unit's LimitCORE=0, and ~@resources refuses setrlimit)."""
    if resource.getrlimit(resource.RLIMIT_CORE) != (0, 0):
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (OSError, ValueError) as exc:
            raise HygieneError(f"cannot set RLIMIT_CORE to 0: {exc}") from None
    return resource.getrlimit(resource.RLIMIT_CORE)


def apply_process_hygiene(*, allow_root: bool, environ: Mapping[str, str] | None = None) -> HygieneReport:
    """Refuse root (unless ``allow_root``) and secrets in the environment; then no core dumps, umask 0077.

    Raises ``HygieneError`` naming the reason (variable names, never values).  Call it before
    anything reads a secret or creates a file.
    """
    uid, euid = os.getuid(), os.geteuid()
    running_as_root = uid == 0 or euid == 0
    if running_as_root and not allow_root:
        raise HygieneError(
            "csd refuses to run as root: run it as its own user (the unit's User=cs-appliance); "
            "development and CI may allow root explicitly"
        )
    secrets = secret_variable_names(os.environ if environ is None else environ)
    if secrets:
        raise HygieneError(
            f"the environment carries what looks like a secret ({', '.join(secrets)}): "
            "deliver PINs and keys as systemd credentials (files under $CREDENTIALS_DIRECTORY), "
            "never in the environment"
        )
    core_limit = _no_core_limit()
    dumpable = _set_dumpable_off(_libc())
    umask_was = os.umask(UMASK)
    return HygieneReport(uid=euid, core_limit=core_limit, dumpable=dumpable, umask_was=umask_was, running_as_root=running_as_root)


def lock_memory(*, onfault: bool = True) -> bool:
    """Try ``mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)``; True when memory is now locked.

    ``onfault=False`` drops ``MCL_ONFAULT`` (every mapping populated and locked whole: see above).

    Never fatal: a refusal (``RLIMIT_MEMLOCK`` too small without ``CAP_IPC_LOCK``, a seccomp filter,
    not Linux) is logged as a warning and False returned.
    """
    libc = _libc()
    if libc is None:
        log.warning("memory not locked: mlockall is available on Linux only", extra=event("csd.memory_unlocked"))
        return False
    flags = MCL_CURRENT | MCL_FUTURE | (MCL_ONFAULT if onfault else 0)
    if libc.mlockall(flags) == 0:
        return True
    err = ctypes.get_errno()
    soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    limit = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft // 1024} KiB"
    log.warning("memory not locked against swap: mlockall failed (%s; RLIMIT_MEMLOCK %s)", os.strerror(err), limit, extra=event("csd.memory_unlocked"))
    return False
