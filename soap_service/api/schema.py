"""The published schema's check of an operation element, and what its refusal may say.

A request that does not follow ``schemas/order.xsd`` is refused with
``soap:Client.SchemaValidationError`` (docs/design.md, "Error model"). The refusal names the
element, as its path of local names from the operation element, and the rule it broke,
from a closed set of phrases (:data:`RULES`, and the few built here); it never quotes the
request. lxml's own messages are never passed on: they quote the value that failed
(``'TopSecret-42' is not a valid value of the atomic type 'xs:boolean'``), the name and
namespace of an unexpected element or attribute, and the schema's type names.

The element is found by lxml's error path (libxml2's structural XPath, relative to the
operation element: ``/o:Hello/o:Input``, ``/*/*[2]``), walked down the request once;
a step that is not an element of the published schema (in its namespace, with a name it
declares) is written ``(unknown element)``, so a request-controlled name never appears.
Only the fixed parts of lxml's messages are read (the type at the end of a datatype error,
the expected elements at the end of a content error), with string operations, no pattern.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from lxml import etree

from soap_service.api.models import TNS

XS = "http://www.w3.org/2001/XMLSchema"
UNKNOWN_ELEMENT = "(unknown element)"

_TYPE = etree.ErrorTypes
RULES: dict[int, str] = {
    _TYPE.SCHEMAV_CVC_COMPLEX_TYPE_2_1: "must be empty",
    _TYPE.SCHEMAV_CVC_COMPLEX_TYPE_2_3: "holds text where only elements belong",
    _TYPE.SCHEMAV_CVC_TYPE_3_1_2: "holds an element where only text belongs",
    _TYPE.SCHEMAV_CVC_TYPE_3_1_1: "carries an attribute that is not allowed",
    _TYPE.SCHEMAV_CVC_COMPLEX_TYPE_3_2_1: "carries an attribute that is not allowed",
    _TYPE.SCHEMAV_CVC_COMPLEX_TYPE_3_2_2: "carries an attribute that is not allowed",
    _TYPE.SCHEMAV_CVC_COMPLEX_TYPE_4: "lacks a required attribute",
    _TYPE.SCHEMAV_CVC_ELT_3_1: "carries xsi:nil, which no element allows: leave an optional element out",
    _TYPE.SCHEMAV_CVC_ELT_3_2_1: "carries xsi:nil, which no element allows: leave an optional element out",
    _TYPE.SCHEMAV_CVC_ELT_3_2_2: "carries xsi:nil, which no element allows: leave an optional element out",
    _TYPE.SCHEMAV_CVC_ELT_4_1: "carries an xsi:type that is not the element's type",
    _TYPE.SCHEMAV_CVC_ELT_4_2: "carries an xsi:type that is not the element's type",
    _TYPE.SCHEMAV_CVC_ELT_4_3: "carries an xsi:type that is not the element's type",
    _TYPE.SCHEMAV_CVC_MAXLENGTH_VALID: "is too long",
    _TYPE.SCHEMAV_CVC_MINLENGTH_VALID: "is too short",
    _TYPE.SCHEMAV_CVC_LENGTH_VALID: "does not have the required length",
    _TYPE.SCHEMAV_CVC_ENUMERATION_VALID: "is not one of the allowed values",
    _TYPE.SCHEMAV_CVC_PATTERN_VALID: "is not in the required format",
    _TYPE.SCHEMAV_CVC_MININCLUSIVE_VALID: "is out of range",
    _TYPE.SCHEMAV_CVC_MAXINCLUSIVE_VALID: "is out of range",
    _TYPE.SCHEMAV_CVC_MINEXCLUSIVE_VALID: "is out of range",
    _TYPE.SCHEMAV_CVC_MAXEXCLUSIVE_VALID: "is out of range",
    _TYPE.SCHEMAV_CVC_TOTALDIGITS_VALID: "has too many digits",
    _TYPE.SCHEMAV_CVC_FRACTIONDIGITS_VALID: "has too many digits",
}
"""lxml's error types -> the rule a refusal names; any other type is :data:`OTHER_RULE`."""

OTHER_RULE = "does not follow the schema"
INVALID_VALUE = "is not a valid value of its type"
ATTRIBUTE_VALUE = "carries an attribute whose value is not valid"
MISSING = "a required element is missing"
UNEXPECTED = "unexpected element"
NOT_IN_SCHEMA = "not in the schema"
NOTHING_MORE = "(nothing more belongs here)"
VALUE_KINDS = {
    "xs:boolean": "is not a boolean (true, false, 1 or 0)",
    "xs:int": "is not a 32-bit integer",
    "xs:integer": "is not an integer",
    "xs:long": "is not a 64-bit integer",
    "xs:dateTime": "is not a date and time (such as 2026-03-15T10:00:00Z)",
    "xs:date": "is not a date (such as 2026-03-15)",
    "xs:decimal": "is not a decimal number",
}
"""The built-in types lxml names at the end of a datatype error -> the rule a refusal names."""

UNREADABLE_DATETIME = "is a date and time the service cannot read (hours 00 to 23, years 0001 to 9999)"
"""An ``xs:dateTime`` the schema accepts but a Python datetime cannot hold: the hour 24
(``24:00:00``, the next day's midnight), a year before 0001 or after 9999."""
_READABLE_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):")
"""The start of an ``xs:dateTime`` (already valid by the schema, whitespace collapsed) that
spyne reads into a datetime: four digits of year (not 0000: the schema refuses it), hour 00 to 23."""

PHRASES = frozenset(
    {*RULES.values(), *VALUE_KINDS.values(), OTHER_RULE, INVALID_VALUE, ATTRIBUTE_VALUE, MISSING, UNEXPECTED,
     NOT_IN_SCHEMA, NOTHING_MORE, UNKNOWN_ELEMENT, UNREADABLE_DATETIME}
)
"""Every fixed phrase a schema refusal is made of (the rest: the schema's element names)."""

_DATATYPE_ERRORS = frozenset(
    {
        _TYPE.SCHEMAV_CVC_DATATYPE_VALID_1_2_1,
        _TYPE.SCHEMAV_CVC_DATATYPE_VALID_1_2_2,
        _TYPE.SCHEMAV_CVC_DATATYPE_VALID_1_2_3,
    }
)


@dataclass(frozen=True)
class SchemaBreach:
    """Where a request breaks the schema (local names from the operation element) and which rule."""

    where: str
    rule: str

    def __str__(self) -> str:
        return f"{self.where}: {self.rule}"


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, remove_comments=True)


_SCHEMA_PARSING = threading.Lock()
"""One XML Schema parsed at a time per process. libxml2 sets up its built-in types on the first
parse; threads of a new worker that parsed their first validators at once broke that set-up, and
every later parse in the process failed ("xmlSchemaPValAttrNodeValue, the given type is not a
built-in type"): a worker answered each request with an incident until it was replaced."""


def _new_validator(xsd: bytes) -> etree.XMLSchema:
    with _SCHEMA_PARSING:
        return etree.XMLSchema(etree.fromstring(xsd, _safe_parser()))


class OperationSchema:
    """The published schema, checking operation elements: one validator per thread (an lxml
    validator keeps its error log on the object)."""

    def __init__(self, xsd: bytes) -> None:
        self._xsd = xsd
        document = etree.fromstring(xsd, _safe_parser())
        names = {element.get("name") for element in document.iter(f"{{{XS}}}element")}
        self.element_names = frozenset(name for name in names if name and name.isascii() and name.isidentifier())
        """The local names of every element the schema declares (in its one namespace)."""
        types: dict[str, set[str | None]] = {}
        for element in document.iter(f"{{{XS}}}element"):
            types.setdefault(element.get("name") or "", set()).add(element.get("type"))
        self.boolean_names = frozenset(name for name, kinds in types.items() if name and kinds == {"xs:boolean"})
        """The local names the schema declares as ``xs:boolean`` only (whitespace around the value
        is allowed: the type collapses it)."""
        self.datetime_names = frozenset(name for name, kinds in types.items() if name and kinds == {"xs:dateTime"})
        """The local names the schema declares as ``xs:dateTime`` only."""
        self._datetime_tags = tuple(f"{{{TNS}}}{name}" for name in sorted(self.datetime_names))
        self._local = threading.local()
        self._validator()  # libxml2's schema types set up now, while one thread builds the application

    def _validator(self) -> etree.XMLSchema:
        validator: etree.XMLSchema | None = getattr(self._local, "validator", None)
        if validator is None:
            validator = self._local.validator = _new_validator(self._xsd)
        return validator

    def breach(self, payload: etree._Element) -> SchemaBreach | None:
        """None when ``payload`` follows the schema, else its first breach, in words that never
        quote the request."""
        validator = self._validator()
        if validator.validate(payload):
            return self._unreadable_datetime(payload)
        errors = list(validator.error_log)
        if not errors:
            return SchemaBreach(self._label(payload), OTHER_RULE)
        return self._describe(payload, errors[0])

    def _unreadable_datetime(self, payload: etree._Element) -> SchemaBreach | None:
        """The first ``xs:dateTime`` of a valid ``payload`` that a Python datetime cannot hold
        (:data:`UNREADABLE_DATETIME`): refused here, before spyne raises on it."""
        if not self._datetime_tags:
            return None
        for element in payload.iter(*self._datetime_tags):
            if not _READABLE_DATETIME.match((element.text or "").strip()):
                chain = [element, *element.iterancestors()]
                chain = chain[: chain.index(payload) + 1][::-1]
                return SchemaBreach(self._where(chain, True), UNREADABLE_DATETIME)
        return None

    # ------------------------------------------------------------------------------ words

    def _known(self, element: etree._Element) -> bool:
        name = etree.QName(element)
        return name.namespace == TNS and name.localname in self.element_names

    def _label(self, element: etree._Element) -> str:
        """The element's local name (with its position among same-named siblings when it has
        any) if the schema declares it, else :data:`UNKNOWN_ELEMENT`."""
        if not self._known(element):
            return UNKNOWN_ELEMENT
        local = str(etree.QName(element).localname)
        # Counted by libxml2's XPath engine, no Python object per sibling; ``local`` is a name the
        # schema declares (an NCName of ours), so it may be written into the expression.
        before = element.xpath(f"count(preceding-sibling::tns:{local})", namespaces={"tns": TNS})
        after = element.xpath(f"boolean(following-sibling::tns:{local})", namespaces={"tns": TNS})
        return f"{local}[{int(before) + 1}]" if before or after else local

    def _where(self, chain: list[etree._Element], resolved: bool) -> str:
        labels = [self._label(element) for element in chain]
        return "/".join(labels if resolved else [*labels, UNKNOWN_ELEMENT])

    def _expected(self, message: str) -> list[str]:
        """The schema's element names that lxml lists as expected at the end of its message
        (what comes after the last "Expected is"), kept only when the schema declares them."""
        _before, found, tail = message.rpartition("Expected is")
        if not found:
            return []
        names: list[str] = []
        for token in tail.replace(",", " ").split():
            qualified = token.strip("().")
            local = qualified.removeprefix(f"{{{TNS}}}")
            if local != qualified and local in self.element_names and local not in names:
                names.append(local)
        return names

    def _describe(self, payload: etree._Element, error: etree._LogEntry) -> SchemaBreach:
        chain, resolved = resolve_path(payload, error.path or "")
        element = chain[-1]
        if error.type == _TYPE.SCHEMAV_ELEMENT_CONTENT:
            expected = self._expected(error.message)
            wanted = f"(expected: {' or '.join(expected)})" if expected else ""
            if resolved and self._known(element):
                # The message starts with the element's name, which is then one of the schema's.
                said = error.message.removeprefix(f"Element '{{{TNS}}}{etree.QName(element).localname}': ")
                if said.startswith("Missing child"):
                    return SchemaBreach(self._where(chain, True), f"{MISSING} {wanted}".rstrip())
                if not said.startswith("This element is not expected"):
                    return SchemaBreach(self._where(chain, True), OTHER_RULE)
                parents, what = chain[:-1], f"{UNEXPECTED} {etree.QName(element).localname}"
            else:
                # Not one of the schema's elements: unexpected wherever it is (the walk stopped at
                # its parent when libxml2's path could not be followed to it).
                parents, what = (chain[:-1] if resolved else chain), f"{UNEXPECTED} {NOT_IN_SCHEMA}"
            where = self._where(parents, True) if parents else self._label(payload)
            return SchemaBreach(where, f"{what} {wanted or NOTHING_MORE}")
        where = self._where(chain, resolved)
        if error.type in _DATATYPE_ERRORS:
            if resolved and self._known(element) and error.message.startswith(
                f"Element '{{{TNS}}}{etree.QName(element).localname}', attribute "
            ):
                return SchemaBreach(where, ATTRIBUTE_VALUE)  # xsi:nil="maybe": the schema declares no attribute
            return SchemaBreach(where, VALUE_KINDS.get(_value_type(error.message), INVALID_VALUE))
        return SchemaBreach(where, RULES.get(error.type, OTHER_RULE))


def _value_type(message: str) -> str:
    """The type lxml names at the very end of a datatype error ("... of the atomic type
    'xs:boolean'."), or "" (the value, earlier in the message, is never read)."""
    if not message.endswith("'."):
        return ""
    head, _quote, name = message[:-2].rpartition("'")
    return name if head.endswith(" type ") else ""


def resolve_path(payload: etree._Element, path: str) -> tuple[list[etree._Element], bool]:
    """The elements that libxml2's structural path ``path`` names, from the operation element
    ``payload`` (its first step) down, and whether every step resolved.

    A step is ``prefix:name``, ``name`` (no namespace) or ``*`` (the default namespace), with
    ``[n]`` when the element has siblings it counts: for ``*``, every element sibling; else
    the siblings of the same name and prefix. A step that does not resolve (libxml2 cuts a
    long ``prefix:name``) ends the walk. Each step is one XPath step of libxml2's, matching on
    ``name()`` (the prefix as written) as libxml2 counted: linear, and no Python object per
    sibling (40,000 siblings took 0.5 s as a Python loop)."""
    chain = [payload]
    steps = path.split("/")[2:] if path.startswith("/") else []
    for step in steps:
        name, index = step, 1
        if step.endswith("]") and "[" in step:
            name, _bracket, number = step[:-1].partition("[")
            if not number.isdigit():
                return chain, False
            index = int(number)
        if name == "*":
            found = chain[-1].xpath("*[$i]", i=index)
        elif ":" in name:
            found = chain[-1].xpath("*[name() = $n][$i]", n=name, i=index)
        else:
            found = chain[-1].xpath("*[name() = $n and namespace-uri() = ''][$i]", n=name, i=index)
        if not isinstance(found, list) or len(found) != 1 or not isinstance(found[0], etree._Element):
            return chain, False
        chain.append(found[0])
    return chain, True
