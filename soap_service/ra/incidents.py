"""Incident IDs: what a caller sees of an internal failure, and what the log holds."""

from __future__ import annotations

import secrets


def new_incident_id() -> str:
    return "INC-" + secrets.token_hex(6).upper()
