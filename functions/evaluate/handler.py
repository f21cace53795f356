"""StartEvaluation (`lambda_handler`, result at $.evaluate) and CheckChampion
(`recheck_handler`, result at $.recheck: the same job again if the champion changed). The gate
is functions/gate/."""

from __future__ import annotations

from typing import Any

from functions.evaluate.logic import recheck, start_evaluation
from shared import aws
from shared.adapters.sagemaker import SageMaker
from shared.handler import lambda_entry, parse
from shared.models import EvaluateRequest, RecheckRequest
from shared.observability import count
from shared.settings import JobSettings, load_settings


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(EvaluateRequest, event)
    output = start_evaluation(request, load_settings(JobSettings), SageMaker(aws.sagemaker()))
    count("JobsReused" if output.reused else "JobsStarted")
    return output.model_dump(mode="json")


@lambda_entry()
def recheck_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(RecheckRequest, event)
    output = recheck(request, load_settings(JobSettings), SageMaker(aws.sagemaker()))
    count("ChampionChanged" if output.changed else "ChampionUnchanged")
    return output.model_dump(mode="json")
