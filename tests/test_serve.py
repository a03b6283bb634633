"""`soap-service serve` refuses, plainly and at once, what it cannot serve."""

from __future__ import annotations

import os
import subprocess
import sys


def test_serve_refuses_a_database_without_a_hierarchy(tmp_path):
    environ = {**os.environ, "SOAP_SERVICE_DATA_DIR": str(tmp_path), "SOAP_SERVICE_DATABASE_URL": ""}
    done = subprocess.run([sys.executable, "-m", "soap_service.main", "serve", "--bind", "127.0.0.1:0"],
                          capture_output=True, text=True, env=environ, timeout=120)
    assert done.returncode == 2
    assert "run `soap-service init`" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_a_bad_setting(tmp_path):
    environ = {**os.environ, "SOAP_SERVICE_DATA_DIR": str(tmp_path), "SOAP_SERVICE_KEY_REUSE": "sometimes"}
    done = subprocess.run([sys.executable, "-m", "soap_service.main", "serve"], capture_output=True, text=True,
                          env=environ, timeout=120)
    assert done.returncode == 2
    assert "SOAP_SERVICE_KEY_REUSE must be one of warn, refuse" in done.stderr


def test_serve_refuses_to_start_without_the_key_blocklist_when_it_is_required(tmp_path):
    """Production can demand badkeys's blocklist (Debian weak keys): no silent start without it."""
    environ = {**os.environ, "SOAP_SERVICE_DATA_DIR": str(tmp_path), "SOAP_SERVICE_REQUIRE_KEY_BLOCKLIST": "yes",
               "XDG_CACHE_HOME": str(tmp_path / "empty-cache")}
    done = subprocess.run([sys.executable, "-m", "soap_service.main", "serve"], capture_output=True, text=True,
                          env=environ, timeout=120)
    assert done.returncode == 2
    assert "badkeys --update-bl" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_a_bad_header_deadline(tmp_path):
    environ = {**os.environ, "SOAP_SERVICE_DATA_DIR": str(tmp_path), "SOAP_SERVICE_HEADER_READ_TIMEOUT_SECONDS": "0"}
    done = subprocess.run([sys.executable, "-m", "soap_service.main", "serve"], capture_output=True, text=True,
                          env=environ, timeout=120)
    assert done.returncode == 2
    assert "SOAP_SERVICE_HEADER_READ_TIMEOUT_SECONDS must be a number of seconds above 0" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_banner_names_the_interpreter_that_serves(tmp_path, monkeypatch) -> None:
    """Not a hard-coded `.venv`: `make run PYTHON=python3.13` serves from `.venv-3.13`."""
    from soap_service.config import load_settings
    from soap_service.server import banner

    venv_python = tmp_path / ".venv-3.13" / "bin" / "python"
    monkeypatch.setattr(sys, "executable", str(venv_python))
    monkeypatch.chdir(tmp_path)
    text = banner(load_settings({"SOAP_SERVICE_DATA_DIR": str(tmp_path)}), bind="127.0.0.1:8080", workers=1, threads=1)
    assert "    .venv-3.13/bin/python examples/reissue_zeep.py" in text
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    text = banner(load_settings({"SOAP_SERVICE_DATA_DIR": str(tmp_path)}), bind="127.0.0.1:8080", workers=1, threads=1)
    assert f"    {venv_python} examples/reissue_zeep.py" in text
