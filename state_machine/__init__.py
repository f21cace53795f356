"""The pipeline's Step Functions definition, built with the `stepfunctions` SDK.

`state_machine.definition` composes the workflow from small step factories;
`python -m state_machine.render` (`make asl`) writes the committed artefacts next to this
file: `asl.json` (with `${...}` placeholders for CDK's definition substitutions),
`diagram.md` (Mermaid) and `input.schema.json` (the start-execution payload).

Nothing in functions/ or shared/ imports this package: the SDK stays out of the Lambdas.
"""

import logging as _logging
import os as _os
import warnings as _warnings

# The stepfunctions SDK imports the sagemaker SDK, which logs its config search to stdout
# and warns about its own deprecations at import. Quiet exactly that noise (a level set
# beforehand is respected by sagemaker), so `make asl` prints only what it wrote.
if _logging.getLogger("sagemaker.config").level == _logging.NOTSET:
    _logging.getLogger("sagemaker.config").setLevel(_logging.WARNING)
_os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
_warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
