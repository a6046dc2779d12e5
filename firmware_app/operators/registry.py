"""The operators as stored (LMDB table ``operators``): login, lockout, grants, password changes.

Every method blocks (Argon2id and LMDB); the console runs them on a worker thread.  Every change
carries the acting operator's ID and terminal ID and the time.  Nothing here logs.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from firmware_app.clock import Clock, today_of
from firmware_app.operators.errors import (
    InvalidOperatorField,
    LoginRefused,
    OperatorExists,
    OperatorError,
    PasswordRejected,
    UnknownOperator,
)
from firmware_app.operators.kdf import KdfParams, PasswordHash, dummy_hash, hash_password, password_matches
from firmware_app.operators.policy import LockoutPolicy, PasswordPolicy, check_date, check_operator_id, valid_on
from firmware_app.operators.roles import Role, parse_role
from storage import layout
from storage.store import Store, Writer


class Grant(msgspec.Struct, frozen=True):
    """One role held from ``valid_from`` to ``valid_until`` (inclusive; empty: open-ended)."""

    role: str
    valid_from: str
    valid_until: str
    granted_by: str
    granted_terminal: str
    granted_at: str


class OperatorRecord(msgspec.Struct, frozen=True):
    """One operator as stored."""

    operator_id: str
    password: PasswordHash
    must_change: bool
    failures: int
    locked: bool
    grants: tuple[Grant, ...]
    created_by: str
    created_terminal: str
    created_at: str
    changed_by: str
    changed_terminal: str
    changed_at: str

    def __repr__(self) -> str:
        return f"OperatorRecord(operator_id={self.operator_id!r})"

    def roles_on(self, today: str) -> frozenset[Role]:
        """The roles whose grant is valid on ``today``."""
        return frozenset(Role(g.role) for g in self.grants if valid_on(g.valid_from, g.valid_until, today))

    def public(self, today: str) -> dict[str, object]:
        """What the console shows of an operator (never the password hash)."""
        return {
            "operator": self.operator_id,
            "roles_now": sorted(r.value for r in self.roles_on(today)),
            "grants": [{"role": g.role, "from": g.valid_from, "until": g.valid_until or None, "by": g.granted_by} for g in self.grants],
            "locked": self.locked,
            "failures": self.failures,
            "must_change_password": self.must_change,
            "created_by": self.created_by,
            "changed_by": self.changed_by,
            "changed_terminal": self.changed_terminal,
            "changed_at": self.changed_at,
        }


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(OperatorRecord)


@dataclass(frozen=True)
class Actor:
    """Who makes a change: operator ID and terminal ID (items 27 and 28 of what they change)."""

    operator_id: str
    terminal_id: str


class OperatorRegistry:
    """Operators in the store, with the password and lockout rules applied."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        password_policy: PasswordPolicy | None = None,
        lockout: LockoutPolicy | None = None,
        kdf_params: KdfParams | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.password_policy = password_policy or PasswordPolicy()
        self.lockout = lockout or LockoutPolicy()
        self._kdf = kdf_params or KdfParams()

    def today(self) -> str:
        return today_of(self._clock)

    def _now(self) -> str:
        return self._clock.now().isoformat(timespec="seconds")

    # -- reads ------------------------------------------------------------------------------------

    def get_blocking(self, operator_id: str) -> OperatorRecord:
        with self._store.read() as r:
            value = r.get(layout.OPERATORS, operator_id.encode("ascii", "replace"))
        if value is None:
            raise UnknownOperator("no such operator")
        return _DECODER.decode(value)

    def list_blocking(self) -> list[OperatorRecord]:
        with self._store.read() as r:
            return [_DECODER.decode(v) for _, v in r.items(layout.OPERATORS)]

    def count_blocking(self) -> int:
        with self._store.read() as r:
            return r.count(layout.OPERATORS)

    # -- login ------------------------------------------------------------------------------------

    def authenticate_blocking(self, operator_id: str, password: str) -> OperatorRecord:
        """The operator if ``password`` is theirs, the account is unlocked and a grant is valid today.

        A wrong password counts a failure (the account locks at the policy's limit); the right one
        resets the count.  ``LoginRefused.reason``: unknown, locked, wrong_password, no_rights.
        """
        try:
            check_operator_id(operator_id)
            record = self.get_blocking(operator_id)
        except OperatorError:
            password_matches(password, dummy_hash(self._kdf))  # the same cost as a known ID
            raise LoginRefused("unknown_operator") from None
        matches = password_matches(password, record.password)
        if record.locked:
            raise LoginRefused("locked")
        if not matches:
            locked = self._store.write(lambda w: self._count_failure(w, operator_id))
            raise LoginRefused("wrong_password_locked" if locked else "wrong_password")
        if not record.roles_on(self.today()):
            raise LoginRefused("no_valid_rights")
        if record.failures:
            record = self._update(operator_id, None, lambda rec: msgspec.structs.replace(rec, failures=0))
        return record

    def _count_failure(self, w: Writer, operator_id: str) -> bool:
        record = _DECODER.decode(w.get(layout.OPERATORS, operator_id.encode()))
        failures = record.failures + 1
        locked = self.lockout.locks_after(failures)
        w.put(layout.OPERATORS, operator_id.encode(), _ENCODER.encode(msgspec.structs.replace(record, failures=failures, locked=locked)))
        return locked

    # -- changes ----------------------------------------------------------------------------------

    def _update(self, operator_id: str, actor: Actor | None, change) -> OperatorRecord:  # type: ignore[no-untyped-def]
        def write(w: Writer) -> OperatorRecord:
            value = w.get(layout.OPERATORS, operator_id.encode("ascii", "replace"))
            if value is None:
                raise UnknownOperator("no such operator")
            record = change(_DECODER.decode(value))
            if actor is not None:
                record = msgspec.structs.replace(record, changed_by=actor.operator_id, changed_terminal=actor.terminal_id, changed_at=self._now())
            w.put(layout.OPERATORS, operator_id.encode(), _ENCODER.encode(record))
            return record

        return self._store.write(write)

    def bootstrap_blocking(self, operator_id: str, password: str, terminal_id: str) -> OperatorRecord:
        """The first security admin; refused once any operator exists (there is no default password)."""
        actor = Actor("bootstrap", terminal_id)
        return self._add(actor, operator_id, password, Role.SECURITY_ADMIN, self.today(), "", only_if_empty=True, must_change=False)

    def add_blocking(self, actor: Actor, operator_id: str, password: str, role: str, valid_from: str, valid_until: str) -> OperatorRecord:
        """A new operator with one grant and a first password they must change at first login."""
        return self._add(actor, operator_id, password, parse_role(role), valid_from, valid_until, only_if_empty=False, must_change=True)

    def _add(
        self, actor: Actor, operator_id: str, password: str, role: Role, valid_from: str, valid_until: str, *, only_if_empty: bool, must_change: bool
    ) -> OperatorRecord:
        check_operator_id(operator_id)
        valid_from, valid_until = self._dates(valid_from, valid_until)
        self.password_policy.check(password, operator_id)
        digest = hash_password(password, self._kdf)
        now = self._now()
        grant = Grant(role.value, valid_from, valid_until, actor.operator_id, actor.terminal_id, now)
        record = OperatorRecord(
            operator_id, digest, must_change, 0, False, (grant,), actor.operator_id, actor.terminal_id, now, actor.operator_id, actor.terminal_id, now
        )

        def write(w: Writer) -> OperatorRecord:
            if only_if_empty and w.count(layout.OPERATORS):
                raise OperatorExists("operators exist already; the bootstrap is for the first security admin only")
            if not w.put(layout.OPERATORS, operator_id.encode(), _ENCODER.encode(record), overwrite=False):
                raise OperatorExists("an operator with that ID exists already")
            return record

        return self._store.write(write)

    def _dates(self, valid_from: str, valid_until: str) -> tuple[str, str]:
        start = check_date(valid_from, "valid from") if valid_from else self.today()
        end = check_date(valid_until, "valid until") if valid_until else ""
        if end and end < start:
            raise InvalidOperatorField("valid until is before valid from")
        return start, end

    def grant_blocking(self, actor: Actor, operator_id: str, role: str, valid_from: str, valid_until: str) -> OperatorRecord:
        """Add a grant of ``role`` (replacing an earlier grant of the same role)."""
        parsed = parse_role(role)
        start, end = self._dates(valid_from, valid_until)
        grant = Grant(parsed.value, start, end, actor.operator_id, actor.terminal_id, self._now())
        return self._update(
            operator_id, actor, lambda rec: msgspec.structs.replace(rec, grants=(*(g for g in rec.grants if g.role != parsed.value), grant))
        )

    def revoke_blocking(self, actor: Actor, operator_id: str, role: str) -> OperatorRecord:
        """End the grant of ``role`` (or of every role with ``"all"``) today: the next request is refused."""
        roles = {r.value for r in Role} if role == "all" else {parse_role(role).value}

        def change(rec: OperatorRecord) -> OperatorRecord:
            if not any(g.role in roles for g in rec.grants):
                raise InvalidOperatorField("the operator holds no such grant")
            return msgspec.structs.replace(rec, grants=tuple(g for g in rec.grants if g.role not in roles))

        return self._update(operator_id, actor, change)

    def unlock_blocking(self, actor: Actor, operator_id: str) -> OperatorRecord:
        return self._update(operator_id, actor, lambda rec: msgspec.structs.replace(rec, locked=False, failures=0))

    def lock_blocking(self, actor: Actor, operator_id: str) -> OperatorRecord:
        return self._update(operator_id, actor, lambda rec: msgspec.structs.replace(rec, locked=True))

    def reset_password_blocking(self, actor: Actor, operator_id: str, password: str) -> OperatorRecord:
        """A security admin sets a first password again; the operator must change it at next login."""
        self.password_policy.check(password, operator_id)
        digest = hash_password(password, self._kdf)
        return self._update(operator_id, actor, lambda rec: msgspec.structs.replace(rec, password=digest, must_change=True, failures=0, locked=False))

    def change_password_blocking(self, actor: Actor, old_password: str, new_password: str) -> OperatorRecord:
        """The operator's own change: the old password proves it is them; the new one must differ."""
        record = self.get_blocking(actor.operator_id)
        if not password_matches(old_password, record.password):
            raise LoginRefused("wrong_password")
        self.password_policy.check(new_password, actor.operator_id)
        if new_password == old_password:
            raise PasswordRejected("the new password must differ from the old one")
        digest = hash_password(new_password, self._kdf)
        return self._update(actor.operator_id, actor, lambda rec: msgspec.structs.replace(rec, password=digest, must_change=False))
