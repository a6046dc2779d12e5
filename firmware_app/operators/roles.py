"""Roles and the rights each grants (pure): who may do what at the console.

Rights are by job, as the PIA asks: a clerk confirms and searches residents; a supervisor also
approves exports and acknowledges alarms; a security admin manages operators; an auditor reads the
audit trail and the physical-access reports; the system operator sees status and runs maintenance
but never personal data.
"""

from __future__ import annotations

from enum import StrEnum

from firmware_app.operators.errors import InvalidOperatorField


class Role(StrEnum):
    CLERK = "clerk"
    SUPERVISOR = "supervisor"
    SECURITY_ADMIN = "security-admin"
    AUDITOR = "auditor"
    SYSTEM = "system"


class Right(StrEnum):
    STATUS = "status"  # links, outbox, HSM, watchdog, room status and open alarms (no personal data)
    RESIDENT_READ = "resident.read"  # confirm and search residents, national query (personal data)
    CHECK_SUMMARY = "check.summary"  # consistency-check digest and counts (no personal data)
    EXPORT_REQUEST = "export.request"
    EXPORT_APPROVE = "export.approve"
    ALARM_ACK = "alarm.ack"
    ROOM_REPORT = "room.report"
    RETENTION_RUN = "retention.run"
    REPORT_READ = "report.read"  # retention reports (counts only)
    BACKUP_RUN = "backup.run"
    OPERATOR_MANAGE = "operator.manage"
    OPERATOR_LIST = "operator.list"
    AUDIT_READ = "audit.read"


ROLE_RIGHTS: dict[Role, frozenset[Right]] = {
    Role.CLERK: frozenset({Right.STATUS, Right.RESIDENT_READ}),
    Role.SUPERVISOR: frozenset(
        {Right.STATUS, Right.RESIDENT_READ, Right.CHECK_SUMMARY, Right.EXPORT_REQUEST, Right.EXPORT_APPROVE, Right.ALARM_ACK,
         Right.RETENTION_RUN, Right.REPORT_READ}
    ),
    Role.SECURITY_ADMIN: frozenset(
        {Right.STATUS, Right.OPERATOR_MANAGE, Right.OPERATOR_LIST, Right.EXPORT_REQUEST, Right.EXPORT_APPROVE, Right.ALARM_ACK,
         Right.ROOM_REPORT}
    ),
    Role.AUDITOR: frozenset({Right.STATUS, Right.AUDIT_READ, Right.ROOM_REPORT, Right.REPORT_READ, Right.OPERATOR_LIST}),
    Role.SYSTEM: frozenset({Right.STATUS, Right.CHECK_SUMMARY, Right.RETENTION_RUN, Right.REPORT_READ, Right.BACKUP_RUN}),
}


def parse_role(text: str) -> Role:
    """The role named ``text``; ``InvalidOperatorField`` listing the roles otherwise."""
    try:
        return Role(text)
    except ValueError:
        raise InvalidOperatorField(f"unknown role; roles are {', '.join(r.value for r in Role)}") from None


def rights_of(roles: frozenset[Role] | set[Role]) -> frozenset[Right]:
    """The union of the rights of ``roles``."""
    out: set[Right] = set()
    for role in roles:
        out |= ROLE_RIGHTS[role]
    return frozenset(out)
