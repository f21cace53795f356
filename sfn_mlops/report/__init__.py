"""`sfn-mlops report`: one self-contained HTML page about one execution.

`collect` reads what AWS (or a local cloud) knows about the execution — its description,
history and definition, the evaluation report and data profile it wrote to S3, and its
SageMaker jobs — into a `ReportData`; `render` turns that into the page (plots drawn by
matplotlib as inline SVG, no script and no network needed to view it).
"""

from sfn_mlops.report.collect import ReportData, collect
from sfn_mlops.report.page import render

__all__ = ["ReportData", "collect", "render"]
