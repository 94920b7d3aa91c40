"""Import structlog with rich hidden, for the ``controller`` process.

structlog imports rich when it is installed (for ``structlog.dev``'s console tracebacks and
``structlog.tracebacks``' pretty reprs), and rich is installed because ``controllerctl`` draws
its tables with it. The controller never uses either path: ``controller.logging`` renders
exceptions with ``plain_traceback`` (console) or ``format_exc_info`` (JSON). Yet rich and
pygments stayed resident for the process's life, ~3 MB of RSS (import base 70.9 -> 67.9 MB).

rich is hidden only while structlog's modules import: ``import rich`` then raises ImportError,
which structlog catches and falls back to without rich. Afterwards rich imports as usual
(``controller dev`` draws its demo table with it).
"""

from __future__ import annotations

import importlib
import sys

HIDDEN = "rich"


def import_structlog_without_rich() -> None:
    """Import structlog now, with rich hidden from it; a no-op once either is imported."""
    if "structlog" in sys.modules or HIDDEN in sys.modules:
        return
    sys.modules[HIDDEN] = None  # type: ignore[assignment]  # None there makes `import` fail
    try:
        importlib.import_module("structlog")
    finally:
        del sys.modules[HIDDEN]
