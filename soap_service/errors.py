"""The service's two kinds of failure (docs/design.md, "Error model").

A *refusal* is a :class:`ServiceError`: a public code the caller can act on (fix the
CSR, the name, the credentials) and, where the code names one, the field at fault.
Front ends answer it (``Errors`` in a SOAP answer, exit status 1 in a command) and
never invent codes. Messages are written for the caller: they never hold a secret, a
key or SQL.

An *incident* is an :class:`InternalError`: something failed inside the service. The
caller sees only code -9000 and the incident ID; the log (and the audit trail, where
the failure had a subject) holds the rest. Incidents are opened in one place,
:func:`soap_service.ra.incidents.open_incident`, which logs and audits them first.
An incident is not a refusal: it is not a ``ServiceError`` and has no field.

:class:`LintRefused` is neither: the pre-issuance linter's verdict on a certificate
the CA was asked to sign, which only an incident may report.
"""

from __future__ import annotations

from typing import ClassVar

KEY_REUSE_WARNING = 1001
INCIDENT_CODE = -9000
"""The code a caller sees for every incident, whatever failed."""


class ServiceError(Exception):
    """A refusal with a public code and message; each subclass names its code."""

    code: ClassVar[int]
    default_message: ClassVar[str] = "the request was refused"
    default_field: ClassVar[str | None] = None

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or self.default_message
        self.field = field if field is not None else self.default_field
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class InvalidField(ServiceError):
    code = -2019
    default_message = "a field is missing or invalid"


class AuthenticationFailed(ServiceError):
    code = -4001
    default_message = "authentication failed"


class AccountLocked(ServiceError):
    code = -4002
    default_message = "the account is locked after repeated authentication failures"


class OrderNotFound(ServiceError):
    code = -4003
    default_message = "no order with this PartnerOrderID"
    default_field = "PartnerOrderID"


class CSRUnreadable(ServiceError):
    code = -4007
    default_message = "the CSR cannot be read or its signature does not verify"
    default_field = "CSR"


class KeyRefused(ServiceError):
    code = -4009
    default_message = "the CSR's key is refused"
    default_field = "CSR"


class NameNotValidated(ServiceError):
    code = -4010
    default_message = "a requested name is not validated for this order"
    default_field = "CSR"


class CertificateRevoked(ServiceError):
    code = -4011
    default_message = "the certificate is revoked and cannot be reissued"


class OrderStateInvalid(ServiceError):
    code = -4012
    default_message = "the order is not in a state that allows this operation"


class TermEnded(ServiceError):
    code = -4013
    default_message = "the order's term has ended"


class AlreadyRevoked(ServiceError):
    code = -4014
    default_message = "the certificate is already revoked"
    default_field = "SerialNumber"


class CertificateExpired(ServiceError):
    code = -4015
    default_message = "the certificate has expired: relying parties no longer accept it, there is nothing to revoke"
    default_field = "SerialNumber"


class ReplayTokenReused(ServiceError):
    code = -4016
    default_message = "this ReplayToken was used with a different request; send a new token for a new request"
    default_field = "ReplayToken"


class ReplayTokenInProgress(ServiceError):
    code = -4017
    default_message = "a request with this ReplayToken is still being served; retry it in a moment"
    default_field = "ReplayToken"


class InternalError(Exception):
    """An incident: an internal failure, already logged (and audited where it had a subject).

    Made only by :func:`soap_service.ra.incidents.open_incident`. It carries the incident
    ID and nothing of the failure: its message is all a caller may see.
    """

    code: ClassVar[int] = INCIDENT_CODE

    def __init__(self, incident_id: str) -> None:
        self.incident_id = incident_id
        self.message = f"internal error, incident {incident_id}"
        super().__init__(self.message)


class LintRefused(Exception):
    """The pre-issuance linter found an error in the certificate to be signed.

    Not a refusal the caller can act on: a certificate profile or CA defect. ``findings``
    lists the linter's codes and messages; the incident opened for it logs and audits
    them, and the caller sees only code -9000 and the incident ID.
    """

    def __init__(self, findings: list[str]) -> None:
        self.findings = findings
        super().__init__("pre-issuance lint: " + "; ".join(findings))
