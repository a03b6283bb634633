"""The portal's form reader (soap_service.portal.forms): bounded, linear, strict; hostile bodies are
refused as FormError before anything costs, never a RecursionError or seconds of CPU."""

from __future__ import annotations

import io

import pytest

from soap_service.portal.forms import MAX_FIELDS, MAX_FORM_BYTES, FormError, read_form

BOUNDARY = "b0undary"


def environ(body: bytes, content_type: str) -> dict[str, object]:
    return {"CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": content_type, "wsgi.input": io.BytesIO(body)}


def multipart(*parts: tuple[str, str], boundary: str = BOUNDARY, extra: str = "") -> bytes:
    body = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n{value}\r\n'
                   for name, value in parts)
    return (body + f"--{boundary}--\r\n").encode()


def read(body: bytes, content_type: str = f"multipart/form-data; boundary={BOUNDARY}", multipart: bool = True
         ) -> dict[str, str]:
    return read_form(environ(body, content_type), multipart=multipart)


def test_a_browsers_multipart_form_is_read() -> None:
    csr = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\ntoken\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csr_file\"; filename=\"a.csr\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n{csr}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"agreement\"\r\n\r\nyes\r\n"
            f"--{BOUNDARY}--\r\n").encode()
    assert read(body) == {"csrf": "token", "csr_file": csr, "agreement": "yes"}
    assert read(multipart(("a", "1")), f'multipart/form-data; boundary="{BOUNDARY}"') == {"a": "1"}


def test_urlencoded_forms_are_read_and_multipart_only_where_asked() -> None:
    assert read(b"a=1&b=%C3%A9&a=2", "application/x-www-form-urlencoded", multipart=False) == {"a": "1", "b": "é"}
    with pytest.raises(FormError):
        read(multipart(("a", "1")), multipart=False)  # the anonymous forms take no multipart


@pytest.mark.parametrize(("body", "content_type"), [
    (multipart(*[(f"f{i}", "x") for i in range(MAX_FIELDS + 1)]), f"multipart/form-data; boundary={BOUNDARY}"),
    (multipart(("a", "1"))[:-10], f"multipart/form-data; boundary={BOUNDARY}"),  # no closing boundary
    (b"garbage" + multipart(("a", "1")), f"multipart/form-data; boundary={BOUNDARY}"),
    (multipart(("a", "1")), "multipart/form-data"),  # no boundary
    (multipart(("a", "1")), "multipart/form-data; boundary=" + "x" * 71),
    (multipart(("a", "1"), extra="\r\nContent-Type: multipart/mixed; boundary=inner"),
     f"multipart/form-data; boundary={BOUNDARY}"),
    (multipart(("a", "1"), extra="\r\nContent-Transfer-Encoding: base64"), f"multipart/form-data; boundary={BOUNDARY}"),
    (multipart(("a", "X")).replace(b"X", b"\xff"), f"multipart/form-data; boundary={BOUNDARY}"),
    (b"a=" + b"\xff", "application/x-www-form-urlencoded"),
    ("&".join(f"f{i}=x" for i in range(MAX_FIELDS + 1)).encode(), "application/x-www-form-urlencoded"),
    (b"x" * (MAX_FORM_BYTES + 1), "application/x-www-form-urlencoded"),
    (b"a=1", "text/plain"),
    (b"a=1", "application/x-www-form-urlencoded; " + "a=b; " * 100),
])
def test_what_is_no_form_of_ours_is_refused(body: bytes, content_type: str) -> None:
    with pytest.raises(FormError):
        read(body, content_type)


def test_the_attack_reviews_bodies_are_refused_without_a_recursion_error() -> None:
    """Bodies that took email.parser seconds of CPU (52,000 header parameters: 3.8 s; 16,000 empty
    parts: 1.5 s) or made it recurse until it failed (2,500 nested parts; 30,000 parentheses in a
    header) are refused by a bound before any parsing."""
    parameters = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a"' + "; a=b" * 50_000
                  + f"\r\n\r\nx\r\n--{BOUNDARY}--\r\n").encode()[:MAX_FORM_BYTES]
    empty_parts = (f"--{BOUNDARY}\r\n\r\n\r\n" * 16_000).encode()[:MAX_FORM_BYTES]
    nested = "".join(f'--b{i}\r\nContent-Type: multipart/mixed; boundary="b{i + 1}"\r\n\r\n' for i in range(2_500))
    parentheses = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a"; x=' + "(" * 30_000
                   + f"\r\n\r\nx\r\n--{BOUNDARY}--\r\n").encode()
    for body, boundary in ((parameters, BOUNDARY), (empty_parts, BOUNDARY), (nested.encode(), "b0"),
                           (parentheses, BOUNDARY)):
        with pytest.raises(FormError):
            read(body, f"multipart/form-data; boundary={boundary}")
