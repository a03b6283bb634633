"""THE REPLAY HOOK of the drop-in services: the one place where a request header's
``ReplayToken`` / ``UseReplayToken`` meet the replay core (``soap_service.ra.replay``, built
separately; wired here afterwards).

Every order operation of ``/webtrust/order`` (Reissue, Revoke, ModifyOrder,
ValidateOrderParameters) runs through :func:`replay_hook`: today it reads nothing and runs the
operation; the tokens are accepted (bounded by the schema) and not used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from soap_service.api.requestlog import RequestRecord
from soap_service.api.service import Security
from soap_service.ra.service import RegistrationAuthority

T = TypeVar("T")


def replay_hook(
    ra: RegistrationAuthority,
    record: RequestRecord,
    operation: str,
    request: Any,
    security: Security,
    run: Callable[[], T],
) -> T:
    """Run ``run`` (the operation against the RA, its answer built, a refusal included) for
    ``request`` (the operation's ``Request``: its ``OrderRequestHeader`` carries ``ReplayToken``
    and ``UseReplayToken``, and the credentials with ``security``, the ``wsse:Security`` token).

    REPLAY HOOK: call the replay core here (``ra.replay``, as ``api.service`` does for the Order
    API: with ``UseReplayToken`` true, answer the stored answer of an earlier request with the
    same token, else run and store). Until it is wired, every request runs."""
    del ra, record, operation, request, security  # not read until the replay core is wired
    return run()
