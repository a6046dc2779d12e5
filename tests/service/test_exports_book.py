"""The two-person rule's state machine on a real store and keyring: self-approval, one write per
approval, expiry, and the parameters sealed at rest."""

from __future__ import annotations

import pytest

from firmware_app.service.exports import ExportBook, ExportError, SelfApproval, Step
from firmware_app.service.keyring import Keyring
from storage import layout

REQUESTER, APPROVER = Step("sup1", "pts/1"), Step("sup2", "pts/2")


@pytest.fixture
def book(store, token, clock) -> ExportBook:  # type: ignore[no-untyped-def]
    keyring = Keyring(token, store, clock)
    keyring.open_blocking()
    return ExportBook(store, keyring, clock, approval_valid_s=3600)


def test_request_approve_claim_write(book: ExportBook, store) -> None:  # type: ignore[no-untyped-def]
    req = book.request_blocking(REQUESTER, "residents", "court order 12", {"codes": ["77731710239"]})
    with store.read() as r:
        assert b"77731710239" not in r.get(layout.EXPORTS, layout.pack_u64(req.export_id))  # sealed at rest
    with pytest.raises(SelfApproval):
        book.decide_blocking(REQUESTER, req.export_id, approve=True)
    with pytest.raises(ExportError, match="not approved"):
        book.claim_blocking(REQUESTER, req.export_id)
    approved = book.decide_blocking(APPROVER, req.export_id, approve=True)
    assert (approved.state, approved.decided_by, approved.decided_terminal) == ("approved", "sup2", "pts/2")
    with pytest.raises(ExportError, match="already"):
        book.decide_blocking(Step("sup3", "pts/3"), req.export_id, approve=False)
    with pytest.raises(ExportError, match="only the requester"):
        book.claim_blocking(APPROVER, req.export_id)
    claimed, params = book.claim_blocking(REQUESTER, req.export_id)
    assert claimed.state == "writing" and params == {"codes": ["77731710239"]}
    with pytest.raises(ExportError, match="writing"):
        book.claim_blocking(REQUESTER, req.export_id)  # a second write of the same approval
    book.release_blocking(req.export_id)
    book.claim_blocking(REQUESTER, req.export_id)
    done = book.written_blocking(REQUESTER, req.export_id, "export-000001-residents.cse", "ab" * 32, 1234)
    assert (done.state, done.written_by, done.size_bytes) == ("written", "sup1", 1234)
    with pytest.raises(ExportError, match="written"):
        book.claim_blocking(REQUESTER, req.export_id)


def test_refusals(book: ExportBook, clock) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExportError, match="kind"):
        book.request_blocking(REQUESTER, "everything", "why not", {})
    with pytest.raises(ExportError, match="reason"):
        book.request_blocking(REQUESTER, "check-file", "   ", {})
    with pytest.raises(ExportError, match="no such"):
        book.decide_blocking(APPROVER, 99, approve=True)
    req = book.request_blocking(REQUESTER, "check-file", "prefecture media", {})
    book.decide_blocking(APPROVER, req.export_id, approve=True)
    clock.advance(3601)
    with pytest.raises(ExportError, match="expired"):
        book.claim_blocking(REQUESTER, req.export_id)
    denied = book.request_blocking(REQUESTER, "check-file", "again", {})
    assert book.decide_blocking(APPROVER, denied.export_id, approve=False).state == "denied"
    with pytest.raises(ExportError, match="denied"):
        book.claim_blocking(REQUESTER, denied.export_id)
