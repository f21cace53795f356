"""The champion: the model the endpoint serves now (evaluation, the recheck under the
deployment lock, and UpdateEndpoint when it takes the lock back after a redrive)."""

from __future__ import annotations

from shared.adapters.sagemaker import SageMaker
from shared.observability import logger

#: Endpoint states in which EndpointConfigName is the config that serves traffic.
SERVING_STATES = frozenset({"InService", "Updating", "SystemUpdating", "RollingBack"})


def find_champion(sagemaker: SageMaker, endpoint_name: str) -> str | None:
    """The model artifact (ModelDataUrl) the endpoint serves now; None if there is no endpoint,
    or it serves nothing (Creating, Failed)."""
    endpoint = sagemaker.describe_endpoint(endpoint_name)
    if endpoint is None:
        logger.info("no champion: endpoint does not exist", extra={"endpoint": endpoint_name})
        return None
    status = endpoint.get("EndpointStatus")
    if status not in SERVING_STATES:
        logger.info("no champion: endpoint not serving", extra={"status": status})
        return None
    config = sagemaker.describe_endpoint_config(str(endpoint["EndpointConfigName"]))
    if config is None or not config.get("ProductionVariants"):
        return None
    model = sagemaker.describe_model(str(config["ProductionVariants"][0]["ModelName"]))
    if model is None:
        return None
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    url = container.get("ModelDataUrl")
    return str(url) if url else None
