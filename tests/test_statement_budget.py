"""The SQL statements of one Reissue, counted (docs/design.md, "The path of one Reissue"):
what the hot path sends to the database, so that a change that adds a statement (a lazy load,
a savepoint, a PRAGMA sent again) is seen here and not only in the benchmark. The budgets are
the counts the design document gives, exactly: a change that removes statements lowers them."""

from __future__ import annotations

from sqlalchemy import event

from factory import fresh_key_csr, new_order, new_partner
from soap_service.ra.reissue import Reissuer, ReissueRequest

BUDGET = {
    # (signed, replayed), the login's credential cached; see the design document.
    "sqlite": (24, 15),
    "postgresql": (23, 13),
}


def _count(ra, action) -> int:
    sent: list[str] = []

    def listen(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    event.listen(ra.engine, "before_cursor_execute", listen)
    try:
        action()
    finally:
        event.remove(ra.engine, "before_cursor_execute", listen)
    return len(sent)


def test_a_signed_and_a_replayed_reissue_stay_within_their_statement_budgets(ra):
    partner = new_partner(ra)
    order = new_order(ra, partner, names=("example.com",))
    reissuer = Reissuer(ra)
    poid = order.order.partner_order_id
    csr = fresh_key_csr(["example.com"])
    reissuer.reissue(partner.credentials(), ReissueRequest(poid, csr), channel="api")  # the login cached
    signed = [_count(ra, lambda: reissuer.reissue(partner.credentials(),
                                                  ReissueRequest(poid, fresh_key_csr(["example.com"])),
                                                  channel="api")) for _ in range(3)]
    last = fresh_key_csr(["example.com"])
    reissuer.reissue(partner.credentials(), ReissueRequest(poid, last), channel="api")
    replayed = [_count(ra, lambda: reissuer.reissue(partner.credentials(), ReissueRequest(poid, last),
                                                    channel="api")) for _ in range(3)]
    signed_budget, replayed_budget = BUDGET[ra.engine.dialect.name]
    # Exact: a statement more fails, and a statement fewer asks for the budget to come down.
    assert signed == [signed_budget] * 3
    assert replayed == [replayed_budget] * 3
