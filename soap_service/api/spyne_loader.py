"""The one way into spyne: spyne 2.14.0 made importable on Python 3.11, 3.12 and 3.13.

Every spyne name that ``soap_service`` uses is imported here and only here (an
import-linter contract in ``pyproject.toml`` refuses any other importer of spyne), so
:func:`install` has always run before spyne's first import, whoever imports first.

What it mends, measured on spyne 2.14.0 (its last release) with six 1.17:

* spyne carries its own copy of six (1.14) as ``spyne.util.six``. That copy serves
  ``spyne.util.six.moves`` and the modules below it (``moves.collections_abc``,
  ``moves.urllib.parse``, ``moves.http_cookies``...) through a meta path importer that
  only has ``find_module``/``load_module``, which Python 3.12 no longer calls: there
  ``import spyne`` fails with ``No module named 'spyne.util.six.moves'``. :func:`install`
  puts a finder first on ``sys.meta_path`` that answers for ``spyne.util.six.moves`` and
  every name below it with the module of the same name in the real six (1.16 and later
  import through ``find_spec``): ``spyne.util.six.moves.urllib.parse`` *is*
  ``six.moves.urllib.parse``, whose ``unquote`` is ``urllib.parse.unquote``, and
  ``spyne.util.six.moves.collections_abc`` is ``collections.abc``. Only ``moves`` is aliased: the rest
  of spyne's copy stays, because spyne uses helpers that only its copy has. Both copies
  resolve these names to the same standard-library modules, so spyne does on 3.12+
  exactly what it does on 3.11; the alias is installed on 3.11 too, so every version
  takes the same path.
* spyne imports ``cgi`` (for ``cgi.parse_header``), which Python 3.13 removed. The
  ``legacy-cgi`` distribution (a dependency on 3.13 and later) installs the same module
  under the same name; without it :func:`install` raises an ImportError saying so.

The WSDL and the answers are byte-for-byte the same on each version
(``tests/test_python_versions.py``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

ALIASED = "spyne.util.six.moves"
"""The package of spyne's copy of six that no longer imports on Python 3.12+, and everything below it."""

TARGET = "six.moves"
"""Where :data:`ALIASED` and the names below it are taken from: the real six's ``moves``."""

MISSING_CGI = (
    "spyne 2.14 imports the `cgi` module, which Python 3.13 removed: install the `legacy-cgi` "
    "package (a dependency of soap-service on Python 3.13 and later; `make install` installs it)"
)


class SixMovesAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``spyne.util.six.moves[.X...]`` and loads it as ``six.moves[.X...]``.

    The module that the import system creates for the spec is thrown away: loading puts
    the real six's module in ``sys.modules`` under the aliased name, and the import
    system returns (and binds on the parent) what ``sys.modules`` holds once the loader is
    done. The real module's own ``__name__`` and ``__spec__`` are left as they are.
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != ALIASED and not fullname.startswith(ALIASED + "."):
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        sys.modules[module.__name__] = importlib.import_module(real_name(module.__name__))


def real_name(aliased: str) -> str:
    """``spyne.util.six.moves.urllib.parse`` -> ``six.moves.urllib.parse``."""
    return TARGET + aliased[len(ALIASED) :]


def install() -> None:
    """Put the alias first on ``sys.meta_path`` (once), and check that ``cgi`` can be imported."""
    if not any(isinstance(finder, SixMovesAlias) for finder in sys.meta_path):
        sys.meta_path.insert(0, SixMovesAlias())
    if importlib.util.find_spec("cgi") is None:
        raise ImportError(MISSING_CGI, name="cgi")


install()

# Only after install(): the spyne names soap_service uses. Import them from here, never from spyne.
from spyne import (  # noqa: E402
    Application,
    Boolean,
    ComplexModel,
    DateTime,
    Fault,
    Integer32,
    ServiceBase,
    Unicode,
    rpc,
)
from spyne import const as spyne_const  # noqa: E402
from spyne.interface.wsdl import Wsdl11  # noqa: E402
from spyne.protocol.soap import Soap11  # noqa: E402
from spyne.server.wsgi import WsgiApplication  # noqa: E402
from spyne.util.xml import get_object_as_xml, get_xml_as_object  # noqa: E402

__all__ = [
    "ALIASED",
    "TARGET",
    "Application",
    "Boolean",
    "ComplexModel",
    "DateTime",
    "Fault",
    "Integer32",
    "ServiceBase",
    "SixMovesAlias",
    "Soap11",
    "Unicode",
    "Wsdl11",
    "WsgiApplication",
    "get_object_as_xml",
    "get_xml_as_object",
    "install",
    "real_name",
    "rpc",
    "spyne_const",
]
