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
from soap_service.ra.service import RegistrationAuthority

T = TypeVar("T")


def replay_hook(
    ra: RegistrationAuthority, record: RequestRecord, operation: str, header: Any, run: Callable[[], T]
) -> T:
    """Run ``run`` (the operation against the RA, answer built) for ``header`` (the request's
    ``orderRequestHeader``, carrying ``ReplayToken`` and ``UseReplayToken``).

    REPLAY HOOK: call the replay core here (with ``header.ReplayToken`` when
    ``header.UseReplayToken`` is true: answer the stored answer of an earlier request with the
    same token, else run and store). Until it is wired, every request runs."""
    del ra, record, operation, header  # not read until the replay core is wired
    return run()
