"""ReplayToken: a partner's state-changing request made idempotent
(docs/design.md, "Concurrency and failures"; docs/soap-api.md, "ReplayToken").

A request sent with ``UseReplayToken`` true and a ``ReplayToken`` is served once per partner and
token: the first request claims the token (a ``pending`` row, in a short transaction of its own),
does the work, and stores the answer it gives (``done``, again in a short transaction of its own);
the same token with the same request is answered with that stored answer, nothing done again and
the replay audited; with a different request it is refused (-4016); while the first is still being
served, -4017. A refusal of the use case (a ``ServiceError`` answered to the caller) is an answer
like any other and is stored; an incident is not: the claim is given back and a retry does the
work. A pending claim older than :data:`STALE_PENDING` is taken over (its worker died), and a token
older than the ``SOAP_SERVICE_REPLAY_TOKEN_HOURS`` setting is answered from no more (the work is
done again) and is pruned.

Nothing here knows SOAP: the caller authenticates the partner first (a token never answers anyone
but its partner, and a wrong password is refused before any stored answer is looked at), gives the
SHA-256 of its canonical request (:func:`request_digest`; the operation's element without the
credentials nor the ReplayToken and UseReplayToken fields) and renders and serializes its answers
itself: a stored answer is the text it serialized. Both front ends call :func:`run_replayable`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from soap_service.errors import InvalidField, ReplayTokenInProgress, ReplayTokenReused, ServiceError
from soap_service.ra.audit import Subject, record_outcome
from soap_service.ra.auth import Credentials
from soap_service.ra.fields import bounded, is_clean_text
from soap_service.ra.reissue import PartnerRef
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage import replay_tokens
from soap_service.storage.replay_tokens import Claimed, Found

logger = logging.getLogger(__name__)

MAX_REPLAY_TOKEN_CHARS = 64
"""A ReplayToken's length at most (the column's width); a longer one is -2019 before anything."""
STALE_PENDING = timedelta(minutes=5)
"""How long a claimed token may stay ``pending`` before another request takes it over: longer than
any request is served (the database's busy timeout is 30 seconds, a signature well under one), so
only a claim whose worker was killed mid-request is taken over."""
FIELD = "ReplayToken"


@dataclass(frozen=True)
class ReplayRequest:
    """What identifies a replayable request: the partner's token, the operation's name and the
    SHA-256 (hex) of the canonical request (:func:`request_digest`)."""

    token: str
    operation: str
    request_sha256: str


@dataclass(frozen=True)
class Answered:
    """How :func:`run_replayable` ended: the serialized answer and its code (0, 1 or a refusal's),
    ``replayed`` when it is the stored answer of an earlier request (nothing was done)."""

    answer: str
    code: int
    replayed: bool


def read_token(token: str | None, use: bool | None) -> str | None:
    """The ReplayToken to use, or ``None`` when the request does not ask for replay (``UseReplayToken``
    absent or false: the token is then accepted and ignored, as before). Asked for, the token must be
    1 to :data:`MAX_REPLAY_TOKEN_CHARS` characters without control characters, else -2019 on
    ``ReplayToken``: checked before anything else, its length first."""
    if not use:
        return None
    if not token:
        raise InvalidField("UseReplayToken is true: send a ReplayToken", field=FIELD)
    bounded(token, MAX_REPLAY_TOKEN_CHARS, FIELD)
    if not is_clean_text(token) or token != token.strip():
        raise InvalidField("ReplayToken holds a control character or leading or trailing spaces", field=FIELD)
    return token


def authenticated_partner(ra: RegistrationAuthority, credentials: Credentials, *, channel: str) -> PartnerRef:
    """The partner a replayable request acts for: its credentials checked first (-4001, -4002), so
    that no token is looked at for a caller who is not that partner."""
    user = ra.authenticator.authenticate(credentials, channel=channel)
    return PartnerRef(id=user.partner_id, code=user.partner_code, actor=user.username)


def request_digest(canonical_request: bytes) -> str:
    """The SHA-256 (hex) of a canonical request, as :class:`ReplayRequest` takes it."""
    return hashlib.sha256(canonical_request).hexdigest()


def token_lifetime(ra: RegistrationAuthority) -> timedelta:
    """How long a token's stored answer is answered from: ``SOAP_SERVICE_REPLAY_TOKEN_HOURS``."""
    return timedelta(hours=ra.settings.replay_token_hours)


def claim(ra: RegistrationAuthority, partner: PartnerRef, request: ReplayRequest,
          subject: Subject) -> Claimed | Answered:
    """Claim the token for this request (:class:`Claimed`: do the work, then :func:`store` or
    :func:`release`), or answer from it (:class:`Answered`, ``replayed``; audited), or refuse: -4016
    (another request's token) or -4017 (its request is still being served), audited as refused."""
    now = ra.clock()
    with ra.sessions() as session, session.begin():
        found = replay_tokens.claim(
            session, partner_id=partner.id, token=request.token, operation=request.operation,
            request_sha256=request.request_sha256, now=now,
            expired_before=now - token_lifetime(ra), stale_before=now - STALE_PENDING,
        )
    if isinstance(found, Claimed):
        return found
    try:
        answered = _answer_from(found, request)
    except ServiceError as refusal:
        _audit(ra, subject, outcome="refused", code=refusal.code, detail=refusal.message)
        raise
    first = found.created_at.isoformat()
    _audit(ra, subject, outcome="replayed", code=answered.code,
           detail=f"ReplayToken: the stored answer of the request of {first}, nothing done again")
    return answered


def _answer_from(found: Found, request: ReplayRequest) -> Answered:
    if found.operation != request.operation or found.request_sha256 != request.request_sha256:
        raise ReplayTokenReused()
    if found.state != replay_tokens.DONE or found.answer is None or found.answer_code is None:
        raise ReplayTokenInProgress()
    return Answered(found.answer, found.answer_code, replayed=True)


def store(ra: RegistrationAuthority, claimed: Claimed, answered: Answered) -> None:
    """Keep a claim's answer (a success or a refusal) for the token's retries, in a short transaction
    of its own. A failure to keep it is logged, not raised: the work is done and answered; the token
    stays pending and is taken over once stale."""
    try:
        with ra.sessions() as session, session.begin():
            kept = replay_tokens.store(session, claimed, answer=answered.answer, answer_code=answered.code,
                                       now=ra.clock())
    except Exception:
        logger.exception("could not store the answer of a ReplayToken's request")
        return
    if not kept:
        logger.warning("a ReplayToken's claim was taken over before its answer was stored")


def release(ra: RegistrationAuthority, claimed: Claimed) -> None:
    """Give a claimed token back (its request failed inside the service), so that a retry does the
    work; a failure to do so is logged (the claim is taken over once stale)."""
    try:
        with ra.sessions() as session, session.begin():
            replay_tokens.release(session, claimed)
    except Exception:
        logger.exception("could not give back a ReplayToken after its request failed")


def run_replayable(
    ra: RegistrationAuthority,
    partner: PartnerRef,
    request: ReplayRequest,
    subject: Subject,
    work: Callable[[], tuple[str, int]],
) -> Answered:
    """Serve a replayable request for an authenticated partner.

    ``work`` does the request and returns its serialized answer and code (a refusal of the use case
    rendered as an answer, too); it runs with no transaction of this module open. Any exception it
    raises (an incident) gives the token back and passes. Raises -4016 or -4017 as :func:`claim`;
    ``subject`` names the use case in the audit events of a replay or of those refusals."""
    claimed = claim(ra, partner, request, subject)
    if isinstance(claimed, Answered):
        return claimed
    try:
        answer, code = work()
    except BaseException:
        release(ra, claimed)
        raise
    answered = Answered(answer, code, replayed=False)
    store(ra, claimed, answered)
    return answered


def _audit(ra: RegistrationAuthority, subject: Subject, *, outcome: str, code: int, detail: str) -> None:
    record_outcome(ra, subject, outcome=outcome, code=code, detail=detail)
