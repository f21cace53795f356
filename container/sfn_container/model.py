"""The model directory: what ``train`` writes to ``/opt/ml/model`` and ``serve``/``evaluate``
read back.

* ``model.ubj``      the XGBoost booster (XGBoost's own binary JSON format, version-stable)
* ``metadata.json``  ``feature_names`` (the order the model expects), ``feature_types``
  (``q`` numeric, ``c`` categorical) and ``categories`` (per categorical feature, its
  training values: a value's code is its index; unseen values are missing), ``problem_type``,
  ``target_column``, ``objective``, the hyperparameters used, the validation metrics.

SageMaker tars the directory into ``model.tar.gz``; :func:`find_model_dir` accepts either
that archive (as a processing job or the endpoint receives it) or the extracted directory.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sfn_container.errors import ModelError

if TYPE_CHECKING:
    from sfn_container.tabular import FeatureSchema

MODEL_FILE = "model.ubj"
METADATA_FILE = "metadata.json"
ARCHIVE = "model.tar.gz"


@dataclass
class Model:
    booster: Any  # xgboost.Booster
    metadata: dict[str, Any]
    nthread: int | None = None  # None: XGBoost's default (all cores)

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata["feature_names"])

    @property
    def schema(self) -> FeatureSchema:
        from sfn_container.tabular import FeatureSchema  # pyarrow: not needed to serve

        return FeatureSchema.from_metadata(self.metadata)

    @property
    def categories(self) -> dict[str, list[str]]:
        """Per categorical feature, its category list (empty: an all-numeric model)."""
        return dict(self.metadata.get("categories") or {})

    @property
    def num_features(self) -> int:
        return len(self.metadata["feature_names"])

    @property
    def problem_type(self) -> str:
        return str(self.metadata["problem_type"])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probability of class 1 (classification) or the value (regression), float32."""
        width = len(self.metadata["feature_names"])
        if x.ndim != 2 or x.shape[1] != width:
            raise ModelError(f"expected {width} features, got shape {tuple(x.shape)}")
        if not self.metadata.get("categories"):  # (not self.categories: no copy per request)
            return np.asarray(self.booster.inplace_predict(x, validate_features=False))
        import xgboost as xgb

        types = self.metadata.get("feature_types") or ["q"] * self.num_features
        matrix = xgb.DMatrix(  # nthread: a forked serving worker must not start a thread pool
            x,
            feature_names=self.feature_names,
            feature_types=types,
            enable_categorical=True,
            nthread=self.nthread or -1,
        )
        return np.asarray(self.booster.predict(matrix))

    def feature_importance(self) -> dict[str, float]:
        """XGBoost's total gain per feature (features never split on are 0), by feature name."""
        names = self.feature_names
        scores = self.booster.get_score(importance_type="total_gain")
        by_name = {
            # a booster saved without names reports f0, f1, ...: the metadata's order
            (names[int(k[1:])] if k not in names and k[1:].isdigit() else k): float(v)
            for k, v in scores.items()
        }
        return {name: by_name.get(name, 0.0) for name in names}


def save_model(booster: Any, model_dir: Path, metadata: dict[str, Any]) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / MODEL_FILE))
    body = {"model_file": MODEL_FILE, **metadata}
    (model_dir / METADATA_FILE).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def load_model(model_dir: Path, nthread: int | None = None) -> Model:
    # without scikit-learn, as the image has it: `serve` imported it through XGBoost,
    # about 80% of a model server's start (python -X importtime)
    from sfn_container.xgbimport import import_xgboost

    xgb = import_xgboost()

    model_file = model_dir / MODEL_FILE
    metadata_file = model_dir / METADATA_FILE
    if not model_file.is_file() or not metadata_file.is_file():
        raise ModelError(f"{model_dir} has no {MODEL_FILE} and {METADATA_FILE}")
    try:
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
        booster = xgb.Booster(model_file=str(model_file))
    except (ValueError, OSError, xgb.core.XGBoostError) as exc:
        raise ModelError(f"cannot load the model in {model_dir}: {exc}") from exc
    if "feature_names" not in metadata or "problem_type" not in metadata:
        raise ModelError(f"{metadata_file} lacks feature_names or problem_type")
    if nthread is not None:
        booster.set_param({"nthread": nthread})
    return Model(booster, metadata, nthread)


def find_model_dir(path: Path, workdir: Path | None = None) -> Path | None:
    """The model directory in ``path``: ``path`` itself when it holds the model files, or
    ``model.tar.gz`` (anywhere below ``path``) extracted into ``workdir``. None if neither."""
    if not path.is_dir():
        return None
    if (path / MODEL_FILE).is_file():
        return path
    archives = sorted(path.rglob(ARCHIVE))
    if not archives:
        return None
    target = Path(tempfile.mkdtemp(prefix="model-", dir=workdir))
    try:
        with tarfile.open(archives[0], "r:gz") as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ModelError(f"cannot extract {archives[0]}: {exc}") from exc
    if (target / MODEL_FILE).is_file():
        return target
    nested = sorted(target.rglob(MODEL_FILE))
    if not nested:
        raise ModelError(f"{archives[0]} contains no {MODEL_FILE}")
    return nested[0].parent


def write_archive(model_dir: Path, archive: Path) -> Path:
    """Tar a model directory the way SageMaker does (files at the archive's root)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted(model_dir.iterdir()):
            tar.add(item, arcname=item.name)
    return archive
