"""THE REPLAY HOOK of the drop-in services: where a request header's ``ReplayToken`` /
``UseReplayToken`` meet the replay core (``soap_service.ra.replay``), through the Order API's
:func:`~soap_service.api.service.replayable` (docs/soap-api.md, "ReplayToken").

Reissue, Revoke and ModifyOrder of ``/webtrust/order`` run through :func:`replay_hook`: with
``UseReplayToken`` true and a ``ReplayToken``, the same token with the same request is answered
the first answer (byte for byte, nothing done again), with another request -4016. Their tokens are
kept under operation names of their own (``webtrust.Reissue``...): a token used on ``/api/order``
and then on ``/webtrust/order`` (or the reverse) is -4016 whatever the request. ValidateOrderParameters
changes nothing and accepts the token and ignores it, as do the query operations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from soap_service.api.requestlog import RequestRecord
from soap_service.api.service import Security, replayable
from soap_service.errors import ServiceError
from soap_service.ra.reissue import PartnerRef
from soap_service.ra.service import RegistrationAuthority

R = TypeVar("R")

OPERATION_PREFIX = "webtrust."
"""The drop-in operations' names in the token table: ``webtrust.Reissue``, ``webtrust.Revoke``,
``webtrust.ModifyOrder`` (the Order API's are ``Reissue``, ``Revoke``, ``ModifyOrder``)."""

REPLAYED = {"Reissue": "reissue", "Revoke": "revoke", "ModifyOrder": "cancel"}
"""The replayable operations of ``/webtrust/order`` and the audit action each is recorded under."""


def replay_hook(
    ra: RegistrationAuthority,
    record: RequestRecord,
    request: Any,
    security: Security,
    *,
    operation: str,
    request_type: Any,
    result_type: Any,
    refused: Callable[[ServiceError], R],
    answer: Callable[[PartnerRef | None], R],
    channel: str,
) -> R:
    """Serve ``request`` (the operation's ``Request``: its ``OrderRequestHeader`` carries the
    credentials, ``ReplayToken`` and ``UseReplayToken``; ``security`` the ``wsse:Security`` token).

    ``answer(None)`` serves it authenticating the header's credentials (no replay asked);
    ``answer(partner)`` serves it for a partner already authenticated, without authenticating
    again (a PasswordDigest nonce is spent once). ``refused`` renders a refusal met before
    ``answer`` runs (-2019 on the token, -4001, -4016, -4017). An operation that is not
    replayable is answered by ``answer(None)``."""
    action = REPLAYED.get(operation)
    if action is None:
        return answer(None)
    result = replayable(
        ra, record, request, security,
        operation=OPERATION_PREFIX + operation, action=action,
        request_type=request_type, result_type=result_type, refused=refused, answer=answer,
        channel=channel,
    )
    if record.order_id is None:  # a stored answer: the drop-in answers name the order GeoTrustOrderID
        record.order_id = getattr(result, "GeoTrustOrderID", None)
    return result
