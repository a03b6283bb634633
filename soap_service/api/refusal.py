"""What the guard refuses a message with, before any work: a SOAP 1.1 fault, most of them
``soap:Client.<subcode>`` (docs/design.md, "Error model").

A refusal's message names the rule the message broke; it never quotes a value of the
request nor a name the client chose. The guard (``guard``) answers it as a fault; the
readers of the body (``http_body``) and of the envelope (``envelope``) raise it.
"""

from __future__ import annotations


class Refusal(Exception):
    """A message refused before any work: a ``soap:Client.<subcode>`` fault, or the SOAP 1.1
    fault code given as ``faultcode`` (``MustUnderstand``)."""

    def __init__(self, subcode: str, message: str, *, faultcode: str | None = None) -> None:
        super().__init__(message)
        self.subcode = subcode
        self.message = message
        self.faultcode = faultcode if faultcode is not None else "Client." + subcode
