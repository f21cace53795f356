"""Import XGBoost without its scikit-learn wrapper's dependency.

``import xgboost`` imports scikit-learn when it is installed, only to give the
``XGBClassifier``/``XGBRegressor`` wrappers sklearn base classes; that costs about a second
of every job's start. The container never uses those wrappers and its image does not ship
scikit-learn, so a job process imports XGBoost as the image would: with scikit-learn
hidden for the duration of the import (a later ``import sklearn`` works as usual).
"""

from __future__ import annotations

import sys
from types import ModuleType


def import_xgboost() -> ModuleType:
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
