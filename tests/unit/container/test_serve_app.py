"""The model server's settings and request handling, without a socket."""

from __future__ import annotations

import numpy as np
import pytest
from sfn_container.errors import ModelError
from sfn_container.model import Model
from sfn_container.serve import App, Limits


class _Booster:
    def inplace_predict(self, x: np.ndarray, validate_features: bool = False) -> np.ndarray:
        return x.sum(axis=1)


MODEL = Model(_Booster(), {"feature_names": ["a", "b"], "problem_type": "regression"})


def test_limits_default_to_sagemaker_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SERVE_MAX_BODY_BYTES", "SAGEMAKER_MODEL_SERVER_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    limits = Limits.from_env()
    assert limits.max_body == 6 * 1024 * 1024
    assert limits.request_timeout == 60
    assert limits.graceful_timeout < 30  # SageMaker sends SIGKILL 30 s after SIGTERM


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_a_bad_limit_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_TIMEOUT", value)
    with pytest.raises(ModelError, match="SAGEMAKER_MODEL_SERVER_TIMEOUT"):
        Limits.from_env()


def test_deep_json_is_a_400_not_a_500() -> None:
    status, kind, body = App(MODEL).invocations(
        "application/json", None, b"[" * 100_000 + b"]" * 100_000
    )
    assert status == 400
    assert kind.startswith("text/plain")
    assert b"nested too deeply" in body


def test_rows_are_predicted_in_the_accepted_type() -> None:
    status, kind, body = App(MODEL).invocations("text/csv", "application/json", b"1,2\n3,4\n")
    assert (status, kind) == (200, "application/json")
    assert body == b'{"predictions": [3.0, 7.0]}'
