"""A model server kept ready: ``python .../standby.py`` (run by path, not as a module of
this package, so that none of the local cloud is imported) imports what ``python -m
sfn_container serve`` imports - XGBoost (through sfn_container.xgbimport), Granian, the
codec - then waits for one line on stdin: ``{"env": {...}, "cwd": "..."}``, the
environment and working directory the endpoint's server gets. It then becomes that server:
the environment is replaced by the given one, the working directory changed, and
``sfn_container``'s ``__main__`` run with the argument ``serve``, as ``python -m
sfn_container serve`` runs it: the same code, reading the same model directory.

Why (sfn_mlops/local/sagemaker/endpoints.py uses one per endpoint server it starts): those
imports were most of a model server's start, ~0.5-0.7 s of the ~0.9 s to the first /ping
on a loaded 2-core machine, paid twice in a pipeline run (the staging endpoint, then the
production endpoint's blue/green update). The endpoint manager starts the next standby as
soon as one is taken. What the environment can change at interpreter start or library load
(PYTHON*, LD_*, OpenMP and BLAS settings, ...) cannot be applied this late: a container
Environment with such a key gets a server started cold (endpoints.STARTUP_ENV).

End of stdin without a line (the local cloud stopped or dropped it): exit 0.
"""

from __future__ import annotations

import json
import os
import runpy
import sys


def _prepare() -> None:
    # the script's directory (this package) must not shadow anything: `common`, `jobs`...
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        sys.path.pop(0)
    import granian.constants
    import granian.http
    import granian.log
    import granian.server  # noqa: F401
    import sfn_container.serve  # noqa: F401 - codec, model, numpy, granian.rsgi
    from sfn_container.xgbimport import import_xgboost

    import_xgboost()


def main() -> None:
    _prepare()
    line = sys.stdin.readline()
    if not line.strip():
        sys.exit(0)
    order = json.loads(line)
    os.environ.clear()
    os.environ.update(order["env"])
    os.chdir(order["cwd"])
    sys.path.insert(0, order["cwd"])  # as `python -m` puts the working directory first
    sys.stdin.close()
    main_file = os.path.join(os.path.dirname(sys.modules["sfn_container"].__file__ or ""),
                             "__main__.py")  # fmt: skip
    sys.argv = [main_file, "serve"]
    runpy.run_module("sfn_container", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
