"""Monitoring: one dashboard for the pipeline and the endpoint, and the failed-run alarm."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from shared import resources

PERIOD = Duration.minutes(5)


def _emf_search(expression: str, label: str, statistic: str = "Sum") -> cloudwatch.MathExpression:
    """All metrics the functions emit as EMF (Powertools, dimension `service`) that match."""
    ns = resources.METRICS_NAMESPACE
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{{{ns},service}} {expression}', '{statistic}', 3600)",
        label=label,
        using_metrics={},
        period=Duration.hours(1),
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.StateMachine,
        functions: Mapping[str, lambda_.Function],
        endpoint_name: str,
        endpoint_alarms: Sequence[cloudwatch.Alarm],
        dead_letters: sqs.IQueue,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        sm = state_machine
        failed = sm.metric_failed(period=PERIOD, statistic="Sum")
        timed_out = sm.metric_timed_out(period=PERIOD, statistic="Sum")
        self.failed_alarm = cloudwatch.Alarm(
            self,
            "ExecutionsFailed",
            alarm_name=f"{resources.PROJECT}-executions-failed",
            alarm_description="A pipeline execution failed or timed out (redrive it, see README)",
            metric=cloudwatch.MathExpression(
                expression="failed + timedOut",
                using_metrics={"failed": failed, "timedOut": timed_out},
                label="failed or timed out",
                period=PERIOD,
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.failed_alarm.add_alarm_action(cw_actions.SnsAction(topic))

        endpoint = {"EndpointName": endpoint_name, "VariantName": resources.ENDPOINT_VARIANT_NAME}

        def endpoint_metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name=name,
                dimensions_map=endpoint,
                statistic=statistic,
                period=PERIOD,
            )

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{resources.PROJECT}-pipeline",
            default_interval=Duration.days(7),
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# {resources.STATE_MACHINE_NAME}\nExecutions, state durations, the "
                f"endpoint `{endpoint_name}` and model registry decisions.",
                width=24,
                height=2,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Executions",
                left=[
                    sm.metric_started(period=PERIOD, statistic="Sum"),
                    sm.metric_succeeded(period=PERIOD, statistic="Sum"),
                    failed,
                    timed_out,
                    sm.metric_aborted(period=PERIOD, statistic="Sum"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Execution time (ms)",
                left=[
                    sm.metric_time(period=PERIOD, statistic="p50"),
                    sm.metric_time(period=PERIOD, statistic="p90"),
                ],
                width=8,
            ),
            cloudwatch.AlarmStatusWidget(
                title="Alarms",
                alarms=[self.failed_alarm, *endpoint_alarms],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="State durations: Lambda task time, p90 (ms)",
                left=[
                    f.metric_duration(period=PERIOD, statistic="p90", label=key)
                    for key, f in functions.items()
                    if key != "trigger"
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Function errors and throttles",
                left=[
                    f.metric_errors(period=PERIOD, statistic="Sum", label=f"{key} errors")
                    for key, f in functions.items()
                ],
                right=[
                    dead_letters.metric_approximate_number_of_messages_visible(
                        period=PERIOD, statistic="Maximum", label="event-target DLQ depth"
                    )
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"Endpoint {endpoint_name}: invocations and errors",
                left=[
                    endpoint_metric("Invocations", "Sum"),
                    endpoint_metric("Invocation4XXErrors", "Sum"),
                    endpoint_metric("Invocation5XXErrors", "Sum"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title=f"Endpoint {endpoint_name}: model latency (µs)",
                left=[
                    endpoint_metric("ModelLatency", "p50"),
                    endpoint_metric("ModelLatency", "p99"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title=f"Model registry decisions ({resources.METRICS_NAMESPACE}, EMF)",
                left=[
                    _emf_search(
                        f'service="{resources.FUNCTIONS_BY_KEY["register"].function_name}"',
                        "register",
                    ),
                    _emf_search(
                        f'service="{resources.FUNCTIONS_BY_KEY["gate"].function_name}"', "gate"
                    ),
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"All pipeline metrics ({resources.METRICS_NAMESPACE}, EMF)",
                left=[_emf_search("", "pipeline")],
                width=24,
            ),
        )
