"""The metrics' and the JSON log's rules, in process (docs/operations.md): bounded label values,
the request ID's check, the JSON line's keys and cuts, the multiprocess directory's reset. The
same metrics on a real two-worker server: tests/test_operations_http.py."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from soap_service import metrics
from soap_service.logjson import (
    MAX_FIELD_CHARS,
    JsonFormatter,
    RequestIdFilter,
    current_request_id,
    json_handler,
    request_id_from,
)


@pytest.mark.parametrize(("outcome", "label"), [
    ("0", "0"), ("-4003", "-4003"), ("fault:Client.SchemaValidationError", "fault:Client.SchemaValidationError"),
    ("fault:Server", "fault:Server"), ("crl:1234", "0"), ("good", "good"), ("not-found", "not-found"),
    (None, "-"), ("fault:Client.x y", "other"), ("fault:" + "A" * 100, "other"), ("1234567", "other"),
    ("PARTNER-SUPPLIED", "other"), ("0\n", "other"), ("", "other"),
])
def test_outcome_labels_are_the_services_own_codes(outcome: str | None, label: str) -> None:
    assert metrics.outcome_label(outcome) == label


def test_a_label_outside_its_list_is_other() -> None:
    assert metrics.bounded("Reissue", frozenset({"Reissue"})) == "Reissue"
    assert metrics.bounded("reissue", frozenset({"Reissue"})) == "other"
    assert metrics.bounded(None, frozenset({"Reissue"})) == "other"


def test_a_soap_operation_label_names_its_service_from_fixed_lists() -> None:
    from soap_service.api.requestlog import operation_label

    order = frozenset({"Reissue", "Revoke"})
    assert operation_label("api", "Reissue", order) == "Reissue"
    assert operation_label("webtrust-order", "Reissue", order) == "webtrust-order.Reissue"
    assert operation_label("webtrust-query", "wsdl", frozenset()) == "webtrust-query.wsdl"
    assert operation_label("webtrust-order", "QuickOrder", order) == "other"
    assert operation_label("webtrust-x", "Reissue", order) == "other"


def test_certificates_count_by_brand_and_an_unknown_brand_as_other() -> None:
    before = metrics.exposition(lambda: None).decode()
    metrics.certificate_issued("GEOTRUST")
    metrics.certificate_issued("<script>")
    metrics.certificates_revoked(["THAWTE", "THAWTE", "nobody"])
    after = metrics.exposition(lambda: 3).decode()

    def value(text: str, sample: str) -> float:
        for line in text.splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    assert value(after, 'soap_service_certificates_issued_total{brand="GEOTRUST"}') - value(
        before, 'soap_service_certificates_issued_total{brand="GEOTRUST"}') == 1
    assert value(after, 'soap_service_certificates_issued_total{brand="other"}') - value(
        before, 'soap_service_certificates_issued_total{brand="other"}') == 1
    assert value(after, 'soap_service_certificates_revoked_total{brand="THAWTE"}') - value(
        before, 'soap_service_certificates_revoked_total{brand="THAWTE"}') == 2
    assert value(after, "soap_service_mail_outbox_depth") == 3
    assert "<script>" not in after and "nobody" not in after
    assert "soap_service_mail_outbox_depth" not in before  # not read: the gauge is left out


@pytest.mark.parametrize("value", ["a", "A" * 64, "req-1.2_3", "0123456789abcdef"])
def test_a_valid_request_id_is_kept(value: str) -> None:
    assert request_id_from(value) == value


@pytest.mark.parametrize("value", [None, "", "A" * 65, "a b", "a\r\nb", "a\nb", "ä", "a/b", "a;b", "a" * 100_000, 5])
def test_any_other_request_id_is_replaced_by_a_new_one(value: object) -> None:
    made = request_id_from(value)
    assert len(made) == 32 and all(c in "0123456789abcdef" for c in made)
    assert request_id_from(value) != made  # new each time


def _format(record: logging.LogRecord) -> dict[str, object]:
    RequestIdFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line and "\r" not in line
    value = json.loads(line)
    assert isinstance(value, dict)
    return value


def test_a_json_line_has_the_fixed_keys_the_request_id_and_the_fields() -> None:
    record = logging.LogRecord("soap_service.api.requests", logging.INFO, __file__, 1, "op=%s", ("Hello",), None)
    record.fields = {"op": "Hello", "http": 200, "ms": 1.5, "partner": "x" * 100, "level": "forged", "none": None}
    token = current_request_id.set("abc")
    try:
        line = _format(record)
    finally:
        current_request_id.reset(token)
    assert line["level"] == "INFO" and line["logger"] == "soap_service.api.requests" and line["msg"] == "op=Hello"
    assert line["request_id"] == "abc" and line["pid"] == os.getpid()
    assert (line["op"], line["http"], line["ms"], line["none"]) == ("Hello", 200, 1.5, None)
    assert line["partner"] == "x" * MAX_FIELD_CHARS + "..."
    assert str(line["ts"]).endswith("+00:00")


def test_a_line_outside_a_request_has_no_request_id_and_a_traceback_stays_on_one_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed\r\nforged", (), sys.exc_info())
    line = _format(record)
    assert "request_id" not in line
    assert line["msg"] == "failed\r\nforged"
    assert "ValueError: boom" in str(line["exc"])


def test_the_handler_writes_one_json_line_a_record() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test_metrics.handler")
    logger.propagate = False
    logger.addHandler(json_handler(stream, "INFO"))
    logger.setLevel(logging.INFO)
    token = current_request_id.set("req-9")
    try:
        logger.info("one\ntwo")
        logger.debug("not written")
    finally:
        current_request_id.reset(token)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["request_id"] == "req-9"


def test_the_multiprocess_directory_is_emptied_and_chosen_before_any_metric(tmp_path: Path) -> None:
    """In a fresh interpreter (the mode is chosen once per process): the master's call empties the
    directory of an earlier server's files and every metric made afterwards counts in files there."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"stale")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from soap_service import metrics\n"
        "d = Path(sys.argv[1])\n"
        "metrics.use_multiprocess_directory(d)\n"
        "assert not (d / 'counter_1.db').exists()\n"
        "metrics.count_request('soap', 'Hello', '0', 0.01)\n"
        "assert any(d.glob('counter_*.db')), list(d.iterdir())\n"
        "text = metrics.exposition(lambda: None).decode()\n"
        "assert 'soap_service_requests_total{front_end=\"soap\",operation=\"Hello\",outcome=\"0\"} 1.0' in text, text\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != metrics.MULTIPROC_VARIABLE}
    done = subprocess.run([sys.executable, "-c", script, str(directory)], capture_output=True, text=True,
                          env=environ, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_count_that_cannot_be_written_is_lost_not_a_failure(tmp_path: Path) -> None:
    """``PROMETHEUS_MULTIPROC_DIR`` set (as in a container's environment) to a directory that does
    not exist, in a CLI process: a revocation already committed must not fail for its count."""
    script = (
        "import logging\n"
        "from soap_service import metrics\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "metrics.certificates_revoked(['THAWTE'])\n"
        "metrics.count_request('soap', 'Hello', '0', 0.01)\n"
        "with metrics.timed_issuance():\n"
        "    pass\n"
        "print('counted or lost')\n"
    )
    environ = {**os.environ, metrics.MULTIPROC_VARIABLE: str(tmp_path / "gone")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environ, timeout=120)
    assert done.returncode == 0 and "counted or lost" in done.stdout, done.stderr
    assert "metric certificates_revoked not counted: FileNotFoundError" in done.stderr
