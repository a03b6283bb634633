"""The data directory is private to the service's user (docs/security.md).

It holds the SQLite database and its WAL (password hashes, encrypted CA keys, CSRs, the
audit trail) and the generated CA passphrase. Nobody but the service's user may read it:

- :func:`restrict_umask` sets the process umask to ``077`` (each process that opens the
  data calls it first), so every file and directory the service, SQLite or Alembic
  creates from then on is ``0600`` / ``0700`` whatever umask the shell had;
- :func:`secure_data_dir` refuses a directory that another user owns (that user could
  read it, or plant links in it, whatever its mode), creates the directory ``0700`` and
  tightens one made before
  (by an older version, by hand, or by ``mkdir`` under a ``022`` umask) to ``0700``, and
  its files to ``0600``; the same for a SQLite database kept outside it (its directory
  is the operator's and is left alone). A tightening is logged with the path and the
  modes, never the content.

Only this module's functions change modes; of the package it imports only the
configuration's error.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from soap_service.config import ConfigurationError

logger = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database: they hold its pages too."""


def restrict_umask() -> None:
    """Files and directories this process creates from now on are its user's alone."""
    os.umask(PRIVATE_UMASK)


def secure_data_dir(data_dir: Path, *, sqlite_database: Path | None = None) -> None:
    """Create ``data_dir`` (``0700``) or tighten it and the files in it; tighten the SQLite
    database ``sqlite_database`` and its sidecar files wherever they are.
    :class:`~soap_service.config.ConfigurationError` when another user owns ``data_dir``."""
    restrict_umask()
    data_dir.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    owner = data_dir.stat().st_uid
    if owner != os.geteuid():
        raise ConfigurationError(
            f"the data directory {data_dir} belongs to another user (uid {owner}), who can read it or plant "
            f"links in it: use a directory of this user's own (uid {os.geteuid()})"
        )
    _tighten(data_dir, DIRECTORY_MODE)
    for entry in data_dir.iterdir():
        if entry.is_file() and not entry.is_symlink():
            _tighten(entry, FILE_MODE)
    if sqlite_database is not None:
        for path in [sqlite_database, *(Path(f"{sqlite_database}{suffix}") for suffix in SQLITE_SIDECARS)]:
            if path.is_file() and not path.is_symlink():
                _tighten(path, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    """Take away every permission of ``path`` beyond ``mode`` (the owner's own are kept)."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return  # gone meanwhile (a SQLite sidecar removed at its last close)
    if current & ~mode == 0:
        return
    try:
        os.chmod(path, current & mode)
    except PermissionError:
        logger.error("%s is accessible to other users (mode %04o) and this user cannot change that: "
                     "make it %04o", path, current, current & mode)
        return
    logger.warning("%s was accessible to other users (mode %04o): now %04o", path, current, current & mode)
