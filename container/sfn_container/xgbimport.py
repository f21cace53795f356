"""Import XGBoost without its scikit-learn wrapper's dependency.

``import xgboost`` imports scikit-learn when it is installed, only to give the
``XGBClassifier``/``XGBRegressor`` wrappers sklearn base classes; that costs about a second
of every job's start. The container never uses those wrappers and its image does not ship
scikit-learn, so a job process imports XGBoost as the image would: with scikit-learn
hidden for the duration of the import (a later ``import sklearn`` works as usual).

:func:`import_in_background` starts that import on a thread, for a job that has other
work first: the train job reads its Parquet channel (pyarrow and numpy release the GIL
while they read and cast) while XGBoost, SciPy and their shared libraries load (~0.45 s
on this machine; benchmarks/training_scale.py, figure 6).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from types import ModuleType


def import_xgboost() -> ModuleType:
    """The xgboost module; waits for an import still under way on another thread (Python's
    module lock), and raises here whatever that import raised."""
    if "xgboost" in sys.modules or "sklearn" in sys.modules:
        import xgboost

        return xgboost
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # makes `import sklearn` fail
    try:
        import xgboost
    finally:
        if sys.modules.get("sklearn", False) is None:
            del sys.modules["sklearn"]
    return xgboost


def import_in_background() -> threading.Thread:
    """Start :func:`import_xgboost` on a daemon thread. A later :func:`import_xgboost` (or
    ``import xgboost``) waits for it; if it failed, that later import fails the same way
    in the caller's thread, so no error is lost (the thread's own is dropped)."""

    def run() -> None:
        with contextlib.suppress(BaseException):  # raised again by the caller's own import
            import_xgboost()

    thread = threading.Thread(target=run, name="import-xgboost", daemon=True)
    thread.start()
    return thread
