"""The error model (docs/design.md, "Error model"): a refusal is a ServiceError with a public
code; an incident is an InternalError of its own, made only by ``ra.incidents.open_incident``,
which logs it (and audits it on a subject); the edges tell the two apart by type alone."""

from __future__ import annotations

import ast
import dataclasses
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from factory import new_partner
from soap_service import errors
from soap_service.errors import INCIDENT_CODE, InternalError, LintRefused, OrderNotFound, ServiceError
from soap_service.ra.audit import Subject
from soap_service.ra.incidents import open_incident
from soap_service.ra.reissue import run_audited
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage.models import AuditEvent

PACKAGE = Path(errors.__file__).parent
INCIDENTS_MODULE = PACKAGE / "ra" / "incidents.py"
SECRET_DETAIL = "postgres://user:hunter2@db/secret SELECT * FROM partners"
LOG = logging.getLogger("tests.error_model")


def _boom() -> datetime:
    raise RuntimeError(SECRET_DETAIL)


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_an_incident_is_not_a_refusal() -> None:
    assert not issubclass(InternalError, ServiceError)
    assert not issubclass(LintRefused, ServiceError)
    assert InternalError.code == INCIDENT_CODE == -9000


def test_every_refusal_has_a_code_of_its_own_and_none_is_the_incident_code() -> None:
    refusals = [cls for cls in _subclasses(ServiceError) if cls.__module__ == "soap_service.errors"]
    codes = [cls.code for cls in refusals]
    assert len(refusals) >= 10
    assert all(code < 0 and code != INCIDENT_CODE for code in codes), codes
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize("document", ["design", "soap-api"])
def test_every_refusal_code_is_in_the_error_tables(document: str) -> None:
    """The design's table (code, exception) and the integration guide's (code, meaning) list every code."""
    text = (PACKAGE.parent / "docs" / f"{document}.md").read_text()
    rows = {line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| -")}
    refusals = [cls for cls in _subclasses(ServiceError) if cls.__module__ == "soap_service.errors"]
    assert {str(cls.code) for cls in refusals} <= rows, sorted(str(c.code) for c in refusals if str(c.code) not in rows)
    if document == "design":
        assert all(f"| {cls.code} | `{cls.__name__}` |" in text for cls in refusals)


def _events(ra: RegistrationAuthority, incident_id: str) -> list[AuditEvent]:
    with ra.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.incident_id == incident_id)))


def _subject(tag: str) -> Subject:
    return Subject(channel="cli", action="test." + tag, partner_code="ERRMODEL", partner_order_id=tag)


def test_an_incident_is_logged_with_its_traceback_and_says_nothing_of_the_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failure = RuntimeError(SECRET_DETAIL)
    try:
        raise failure
    except RuntimeError:
        with caplog.at_level(logging.INFO):
            incident = open_incident(LOG, "the test's step failed", failure=failure)
    assert incident.incident_id.startswith("INC-") and len(incident.incident_id) == 16
    assert incident.message == str(incident) == f"internal error, incident {incident.incident_id}"
    [record] = [r for r in caplog.records if incident.incident_id in r.getMessage()]
    assert (record.name, record.levelno) == ("tests.error_model", logging.ERROR)
    assert record.getMessage() == f"the test's step failed, incident {incident.incident_id}"
    assert record.exc_info is not None and record.exc_info[1] is failure
    assert SECRET_DETAIL in caplog.text  # the operator's log has it, the caller's message does not
    assert SECRET_DETAIL not in incident.message and incident.__cause__ is None


def test_an_incident_on_a_subject_is_audited(ra: RegistrationAuthority) -> None:
    incident = open_incident(LOG, "step failed", failure=KeyError("x"), audit=(ra, _subject("audited")))
    [event] = _events(ra, incident.incident_id)
    assert (event.action, event.outcome, event.code, event.detail) == ("test.audited", "failed", -9000, "KeyError")


def test_a_lint_refusal_is_an_incident_with_its_findings_in_the_log_and_the_audit(
    ra: RegistrationAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    findings = ["ERROR cabf.internal_domain_name: intranet.local", "ERROR pkix.example: example"]
    with caplog.at_level(logging.INFO):
        incident = open_incident(LOG, "reissue failed", failure=LintRefused(findings), audit=(ra, _subject("lint")))
    [record] = [r for r in caplog.records if incident.incident_id in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is None  # the findings say it all
    assert all(finding in record.getMessage() for finding in findings)
    [event] = _events(ra, incident.incident_id)
    assert (event.outcome, event.code) == ("failed", -9000)
    assert event.detail == "lint: " + "; ".join(findings)
    assert "cabf" not in incident.message


def test_an_incident_stands_when_its_audit_cannot_be_written(
    ra: RegistrationAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    def gone() -> None:
        raise OperationalError("INSERT INTO audit_events", {}, Exception("the database is gone"))

    broken = dataclasses.replace(ra, sessions=gone)
    with caplog.at_level(logging.INFO):
        incident = open_incident(LOG, "step failed", failure=ValueError("x"), audit=(broken, _subject("gone")))
    assert isinstance(incident, InternalError)
    assert f"audit of incident {incident.incident_id} failed" in caplog.text
    assert _events(ra, incident.incident_id) == []


# ------------------------------------------------------------------------------- run_audited


def test_run_audited_audits_a_refusal_and_raises_it_as_it_is(ra: RegistrationAuthority) -> None:
    refusal = OrderNotFound()

    def refuse() -> None:
        raise refusal

    with pytest.raises(OrderNotFound) as caught:
        run_audited(ra, _subject("refused"), refuse)
    assert caught.value is refusal
    with ra.sessions() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "test.refused")))
    assert [(e.outcome, e.code, e.incident_id) for e in events] == [("refused", -4003, None)]


def test_run_audited_turns_any_other_failure_into_an_audited_incident(
    ra: RegistrationAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    def fail() -> None:
        raise RuntimeError(SECRET_DETAIL)

    with caplog.at_level(logging.INFO), pytest.raises(InternalError) as caught:
        run_audited(ra, _subject("failed"), fail)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert SECRET_DETAIL not in str(caught.value)
    [event] = _events(ra, caught.value.incident_id)
    assert (event.action, event.outcome, event.code, event.detail) == ("test.failed", "failed", -9000, "RuntimeError")
    assert f"test.failed failed, incident {caught.value.incident_id}" in caplog.text


def test_an_incident_opened_below_passes_run_audited_once(
    ra: RegistrationAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    """Not audited again (it was a 'refused' event with code -9000 when incidents were
    ServiceErrors), not logged again, not given another ID."""
    inner = _subject("inner")

    def fail_inside() -> None:
        raise open_incident(LOG, "inner step failed", failure=RuntimeError("x"), audit=(ra, inner))

    with caplog.at_level(logging.INFO), pytest.raises(InternalError) as caught:
        run_audited(ra, _subject("outer"), fail_inside)
    [event] = _events(ra, caught.value.incident_id)
    assert event.action == "test.inner"
    with ra.sessions() as session:
        assert list(session.scalars(select(AuditEvent).where(AuditEvent.action == "test.outer"))) == []
    assert len([r for r in caplog.records if "incident INC-" in r.getMessage()]) == 1


def test_a_real_use_case_refusal_and_incident_through_the_reissuer(ra: RegistrationAuthority) -> None:
    """The three cases seen from a front end's side of the RA: a refusal is a ServiceError
    and never an InternalError; an internal failure is an InternalError and never a ServiceError."""
    from soap_service.ra.reissue import Reissuer, ReissueRequest

    partner = new_partner(ra)
    with pytest.raises(ServiceError) as refused:
        Reissuer(ra).reissue(partner.credentials(), ReissueRequest("NO-SUCH-ORDER", "x"), channel="api")
    assert not isinstance(refused.value, InternalError)
    broken = dataclasses.replace(ra, clock=_boom)  # authentication keeps its own clock
    with pytest.raises(InternalError) as failed:
        Reissuer(broken).reissue(partner.credentials(), ReissueRequest("NO-SUCH-ORDER", "x"), channel="api")
    assert not isinstance(failed.value, ServiceError)


# --------------------------------------------------------------------------- in the source


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def test_incidents_are_made_in_one_place() -> None:
    makers: dict[str, set[str]] = {"InternalError": set(), "new_incident_id": set()}
    for path, module in _modules():
        for node in ast.walk(module):
            if isinstance(node, ast.Call) and _called_name(node) in makers:
                makers[str(_called_name(node))].add(str(path.relative_to(PACKAGE)))
    assert makers == {"InternalError": {"ra/incidents.py"}, "new_incident_id": {"ra/incidents.py"}}


def _is_incident_code(node: ast.expr) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return node.operand.value == -INCIDENT_CODE
    if isinstance(node, ast.Name):
        return node.id == "INCIDENT_CODE"
    return isinstance(node, ast.Attribute) and (
        node.attr == "INCIDENT_CODE"
        or (node.attr == "code" and isinstance(node.value, ast.Name) and node.value.id == "InternalError")
    )


def test_nothing_tells_an_incident_from_a_refusal_by_its_code_or_by_probing_for_an_id() -> None:
    found = []
    for path, module in _modules():
        for node in ast.walk(module):
            if isinstance(node, ast.Compare) and any(_is_incident_code(e) for e in [node.left, *node.comparators]):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} compares with the incident code")
            if (
                isinstance(node, ast.Call)
                and _called_name(node) in ("getattr", "hasattr")
                and any(isinstance(a, ast.Constant) and a.value == "incident_id" for a in node.args)
            ):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} probes for incident_id")
    assert found == []
