"""The one exception tree of the service.

Every refusal the service can give is one of these exceptions; each carries the
code of DESIGN section 4 and, where the code names one, the field at fault.
Front ends translate them into their own answers and never invent codes.
Messages are written for the caller: they never hold a secret, a key or SQL.
"""

from __future__ import annotations

KEY_REUSE_WARNING = 1001


class ServiceError(Exception):
    """A refusal with a public code and message."""

    code: int = -9000
    default_message: str = "the request was refused"
    default_field: str | None = None

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


class InternalError(ServiceError):
    """An unexpected failure; the caller sees only the incident ID."""

    code = -9000
    default_message = "internal error"

    def __init__(self, incident_id: str, message: str | None = None) -> None:
        self.incident_id = incident_id
        super().__init__(message or f"internal error, incident {incident_id}")


class LintRefused(ServiceError):
    """The pre-issuance linter found an error in the certificate to be signed.

    ``findings`` lists the linter's codes and messages for the operator's audit
    log; the caller only ever sees code -9000 and an incident ID.
    """

    code = -9000
    default_message = "the certificate failed pre-issuance linting"

    def __init__(self, findings: list[str]) -> None:
        self.findings = findings
        super().__init__()
