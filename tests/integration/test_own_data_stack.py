"""A data set of its own (text columns, an id column, missing values) on a stack deployed
for it: its endpoint and model package group are the stack's, since a payload may name only
those. Its own module: a second local cloud must not run beside another module's (the local
cloud's fakes are per process), so this module's cloud starts after the scenarios' stops."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sfn_container import tabular
from sfn_container.model import load_model
from test_pipeline_scenarios import Pipeline

from sfn_mlops.history import failure
from sfn_mlops.local.cloud import LocalCloud
from sfn_mlops.local.stack import deploy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """A stack of its own for the churn data: its endpoint and model group are the stack's
    (a payload may name only the endpoints the stack was deployed with)."""
    workdir = tmp_path_factory.mktemp("churn")
    with LocalCloud(workdir=workdir) as cloud:
        own = {"endpoint_name": "churn-endpoint", "model_package_group": "churn-models"}
        yield Pipeline(cloud, deploy(cloud, overrides=own, triggers=False), {}, [])


def test_categorical_data_trains_deploys_and_serves_raw_values(
    churn: Pipeline, tmp_path: Any
) -> None:
    # GIVEN a data set of its own, with text columns, an id column and missing values,
    # and a stack deployed for it (its own endpoint and model group)
    pipeline = churn

    rng = np.random.default_rng(3)
    n = 1200
    plan = rng.choice(["basic", "pro", "team, annual"], n)
    tenure = rng.integers(0, 60, n)
    churn = ((plan == "basic") & (tenure < 30)) | (rng.random(n) < 0.05)
    lines = ["customer_id,plan,tenure,churn"] + [
        f'{i},"{plan[i]}",{"" if i % 25 == 0 else tenure[i]},{int(churn[i])}' for i in range(n)
    ]
    s3 = pipeline.cloud.client("s3")
    bucket = pipeline.stack.bucket
    s3.put_object(Bucket=bucket, Key="datasets/churn/churn.csv", Body="\n".join(lines).encode())
    # WHEN a run is started on it
    desc, events = pipeline.start(
        {
            "raw_data_uri": f"s3://{bucket}/datasets/churn/",
            "target_column": "churn",
            "ignore_columns": ["customer_id"],
            "objective": {"name": "auc", "goal": "maximize", "threshold": 0.7,
                          "min_improvement": 0},
        }
    )  # fmt: skip
    assert desc["status"] == "SUCCEEDED", failure(events)
    output = json.loads(desc["output"])
    assert output["gate"]["deploy"] is True
    # THEN the endpoint answers raw records (an unseen plan included) as the model does
    # in process
    artifact = output["train"]["model_artifact_uri"]
    body = s3.get_object(Bucket=bucket, Key=artifact.split("/", 3)[3])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        tar.extractall(tmp_path, filter="data")
    model = load_model(tmp_path)
    assert model.categories["plan"] == ["basic", "pro", "team, annual"]
    records = [
        {"plan": "basic", "tenure": 3},
        {"plan": "team, annual", "tenure": None},
        {"plan": "enterprise", "tenure": 40},
    ]
    answer = pipeline.cloud.client("sagemaker-runtime").invoke_endpoint(
        EndpointName="churn-endpoint",
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps({"instances": records}).encode(),
    )
    served = json.loads(answer["Body"].read())["predictions"]

    table = pa.table(
        {"plan": [r["plan"] for r in records], "tenure": [r["tenure"] for r in records]}
    )
    expected = model.predict(model.schema.matrix(table, "records"))
    assert np.allclose(served, expected, rtol=1e-6)
    assert tabular.CATEGORICAL in model.metadata["feature_types"]
