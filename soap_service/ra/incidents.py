"""Incidents: what a caller sees of an internal failure (an ID), and what the operator
sees (the log, and the audit trail when the failure had a subject).

Every incident of the service is opened by :func:`open_incident`, whichever layer met
the failure: the use cases (``reissue.run_audited``), the SOAP operations, the guard's
last resort and the operator's commands (docs/design.md, "Error model"). The edges
tell the cases apart by type only: a ``ServiceError`` is a refusal and is answered; an
``InternalError`` is an incident already opened, reported with its ID; anything else
is a failure nobody has reported yet, for which they open one here.
"""

from __future__ import annotations

import logging
import secrets

from soap_service.errors import INCIDENT_CODE, InternalError, LintRefused
from soap_service.ra.audit import Subject, record_outcome
from soap_service.ra.service import RegistrationAuthority

logger = logging.getLogger(__name__)


def new_incident_id() -> str:
    return "INC-" + secrets.token_hex(6).upper()


def open_incident(
    log: logging.Logger,
    what: str,
    *,
    failure: BaseException | None = None,
    audit: tuple[RegistrationAuthority, Subject] | None = None,
) -> InternalError:
    """Log (and audit) a new incident and return the error that reports it: ``raise`` it,
    or answer with its ID.

    ``log`` is the logger of the layer that met the failure, ``what`` says what failed
    ("Reissue failed"). ``failure`` is logged with its traceback, except a
    :class:`LintRefused`, whose finding codes are the whole story and are logged instead.
    With ``audit``, the subject's event records the incident (outcome ``failed``, code
    -9000, the failure's type or the lint findings as detail); should that write fail,
    the log says so and the incident stands.
    """
    incident = new_incident_id()
    if isinstance(failure, LintRefused):
        findings = "; ".join(failure.findings)
        log.error("%s: refused by the pre-issuance linter, incident %s: %s", what, incident, findings)
        detail = "lint: " + findings
    elif failure is not None:
        log.error("%s, incident %s", what, incident, exc_info=failure)
        detail = type(failure).__name__
    else:
        log.error("%s, incident %s", what, incident)
        detail = what
    if audit is not None:
        ra, subject = audit
        try:
            record_outcome(ra, subject, outcome="failed", code=INCIDENT_CODE, incident_id=incident, detail=detail)
        except Exception:  # the incident stands; the log says why its event is missing
            logger.exception("audit of incident %s failed", incident)
    return InternalError(incident)
