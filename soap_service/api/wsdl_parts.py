"""The WSDL's operation messages in the WS-I "document/literal wrapped" form .NET recognises.

spyne names the one part of each operation message after its element
(``<wsdl:part name="Reissue" element="tns:Reissue"/>``). In document/literal a part's name
never reaches the wire (the body carries the element), so every SOAP stack sends the same
bytes whatever it is called, but the .NET proxy generators (wsdl.exe, Mono's ``wsdl``,
svcutil) unwrap an operation into ``ReissueResult Reissue(ReissueRequest Request)`` only
when the single part is named ``parameters``; otherwise they generate
``ReissueResponse Reissue(Reissue Reissue1)``, one wrapper layer deeper.
:func:`name_parts_parameters` renames the wrapper part of every operation's input and
output message so, with the ``parameterOrder`` and ``soap:body parts`` that name it
(docs/design.md, "The SOAP contract").
"""

from __future__ import annotations

from lxml import etree

WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP_BINDING = "http://schemas.xmlsoap.org/wsdl/soap/"
PARAMETERS = "parameters"
"""The part name of the WS-I Basic Profile's wrapped convention."""


def _qname(element: etree._Element, value: str) -> tuple[str | None, str]:
    """A ``prefix:local`` attribute value as (namespace, local name), in ``element``'s scope."""
    prefix, _, local = value.rpartition(":")
    return element.nsmap.get(prefix or None), local


def _wrapper_part(message: etree._Element, element: tuple[str | None, str]) -> etree._Element:
    """The part of ``message`` whose element is ``element`` (the operation's wrapper)."""
    found = [part for part in message.iterfind(f"{{{WSDL}}}part")
             if part.get("element") is not None and _qname(part, part.get("element") or "") == element]
    if len(found) != 1:
        raise RuntimeError(f"message {message.get('name')} has {len(found)} parts of element {element[1]}, not one")
    return found[0]


def _renamed(names: str | None, old: str) -> str | None:
    """A space-separated list of part names with ``old`` replaced by ``parameters``."""
    if names is None:
        return None
    return " ".join(PARAMETERS if name == old else name for name in names.split())


def name_parts_parameters(definitions: etree._Element) -> None:
    """Rename, in place, the wrapper part of each operation's input (element ``<Op>``) and output
    (element ``<Op>Response``) message to ``parameters``; other messages (faults, headers) and
    other parts are left as they are."""
    target = definitions.get("targetNamespace")
    messages = {message.get("name"): message for message in definitions.iterfind(f"{{{WSDL}}}message")}
    renamed: dict[tuple[str, str], str] = {}  # (operation, "input"|"output") -> the part's old name
    for operation in definitions.iterfind(f"{{{WSDL}}}portType/{{{WSDL}}}operation"):
        name = operation.get("name") or ""
        for direction, element in (("input", name), ("output", name + "Response")):
            reference = operation.find(f"{{{WSDL}}}{direction}")
            if reference is None:
                raise RuntimeError(f"operation {name} has no {direction}")
            namespace, message_name = _qname(reference, reference.get("message") or "")
            message = messages.get(message_name)
            if namespace != target or message is None:
                raise RuntimeError(f"operation {name}: {direction} message {reference.get('message')} is not defined")
            part = _wrapper_part(message, (target, element))
            old = part.get("name") or ""
            part.set("name", PARAMETERS)
            renamed[(name, direction)] = old
            if direction == "input" and operation.get("parameterOrder") is not None:
                operation.set("parameterOrder", _renamed(operation.get("parameterOrder"), old) or "")
    for operation in definitions.iterfind(f"{{{WSDL}}}binding/{{{WSDL}}}operation"):
        for direction in ("input", "output"):
            old_name = renamed.get((operation.get("name") or "", direction))
            if old_name is None:
                continue
            for body in operation.iterfind(f"{{{WSDL}}}{direction}/{{{SOAP_BINDING}}}body"):
                parts = _renamed(body.get("parts"), old_name)
                if parts is not None:
                    body.set("parts", parts)
