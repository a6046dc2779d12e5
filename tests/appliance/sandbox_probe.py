"""Run inside the appliance under the daemon's own sandbox (a copy of cs-appliance.service with
this as ExecStart): tries what the sandbox must forbid and what it must allow, and prints one
JSON object of outcomes.  Standard library only; it runs in the appliance root."""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import socket

libc = ctypes.CDLL(None, use_errno=True)
results: dict[str, object] = {}


def outcome(name: str, action) -> None:  # type: ignore[no-untyped-def]
    try:
        action()
        results[name] = "allowed"
    except OSError as exc:
        results[name] = errno.errorcode.get(exc.errno or 0, str(exc.errno))


def write_file(path: str) -> None:
    with open(path, "w") as f:
        f.write("x")
    os.unlink(path)


def open_socket(family: int, kind: int = socket.SOCK_STREAM) -> None:
    socket.socket(family, kind).close()


def syscall(number: int, *args: int) -> None:
    if libc.syscall(number, *args) == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def mount() -> None:
    if libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def wx_memory() -> None:
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.close()


def raise_rlimit() -> None:
    """Raising a hard limit needs CAP_SYS_RESOURCE.  (glibc's setrlimit() is the prlimit64 system
    call, which @system-service allows: getrlimit() is the same call, and Python needs it.)"""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard + 1))
    except ValueError as exc:  # Python reports EPERM here as "not allowed to raise maximum limit"
        raise OSError(errno.EPERM if "not allowed" in str(exc) else errno.EINVAL, str(exc)) from None


def unshare_user() -> None:
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


SYS_REBOOT, SYS_SWAPON, SYS_KEXEC_LOAD, SYS_INIT_MODULE = 169, 167, 246, 175  # x86_64

outcome("write_usr", lambda: write_file("/usr/probe"))
outcome("write_etc", lambda: write_file("/etc/probe"))
outcome("write_opt", lambda: write_file("/opt/cs-appliance/probe"))
outcome("write_root", lambda: write_file("/probe"))
outcome("write_state", lambda: write_file("/var/lib/cs-appliance/probe"))
outcome("write_tmp", lambda: write_file("/tmp/probe"))
outcome("list_home", lambda: os.listdir("/root"))
def udp_to(address: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"probe", (address, 9))


def open_serial() -> None:
    os.close(os.open("/dev/ttyS1", os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK))


outcome("af_unix", lambda: open_socket(socket.AF_UNIX))
outcome("af_inet", lambda: open_socket(socket.AF_INET))
outcome("af_inet6", lambda: open_socket(socket.AF_INET6))
outcome("af_packet", lambda: open_socket(socket.AF_PACKET, socket.SOCK_RAW))
outcome("af_netlink", lambda: open_socket(socket.AF_NETLINK, socket.SOCK_RAW))
outcome("udp_localhost", lambda: udp_to("127.0.0.1"))
outcome("udp_outside_allow_list", lambda: udp_to("192.0.2.1"))  # IPAddressDeny=: enforced in a VM only
outcome("open_ttyS1", open_serial)  # bound in by the probe unit, not in DeviceAllow=: refused in a VM only
outcome("mount", mount)
outcome("reboot", lambda: syscall(SYS_REBOOT, 0, 0, 0, 0))
outcome("swapon", lambda: syscall(SYS_SWAPON, 0, 0))
outcome("kexec_load", lambda: syscall(SYS_KEXEC_LOAD, 0, 0, 0, 0))
outcome("init_module", lambda: syscall(SYS_INIT_MODULE, 0, 0, 0))
outcome("raise_rlimit", raise_rlimit)
outcome("unshare_user", unshare_user)
outcome("wx_memory", wx_memory)

status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
results["uid"] = os.getuid()
results["no_new_privs"] = status.get("NoNewPrivs", "").strip()
results["seccomp"] = status.get("Seccomp", "").strip()
results["cap_eff"] = status.get("CapEff", "").strip()
results["cap_bnd"] = status.get("CapBnd", "").strip()
results["devices"] = sorted(os.listdir("/dev"))
results["pids_visible"] = sum(1 for p in os.listdir("/proc") if p.isdigit())
results["environment_names"] = sorted(os.environ)
print("SANDBOX-PROBE " + json.dumps(results, sort_keys=True), flush=True)
