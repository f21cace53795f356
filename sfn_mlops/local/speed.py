"""Per-request work of moto's server that gives the same answer every time, done once.

Measured on a warm InvokeEndpoint through the local cloud (benchmarks/inference_lambda.py,
2 loaded cores): of ~14 ms in moto's server, ~2 ms went to finding the backend for the
Host header and ~1 ms to listing the response class's methods.

- moto's DomainDispatcherApplication.get_backend_for_host lists moto's package directory
  (one isdir per service, ~200) on every request (moto.backends.list_of_moto_modules);
  the directory cannot change while the process runs, so it is listed once.
- BaseResponse.call_action lists every function of the response class (inspect.getmembers,
  ~1 ms) to ask whether one is named after the action; the question is answered for that
  one name instead (the same test: an attribute of the class that is a plain function).

Nothing here changes what a request does or answers: each is a cache of a pure look-up.
"""

from __future__ import annotations

import inspect
from typing import Any


class _FunctionNames:
    """`name in _FunctionNames(cls)` == `name in moto.core.utils.method_names_from_class(cls)`
    (inspect.getmembers(cls, inspect.isfunction)), for the one name asked about."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not any(name in vars(k) for k in self.cls.__mro__):
            return False
        return inspect.isfunction(getattr(self.cls, name, None))


def install(patches: Any) -> None:
    from moto import backends
    from moto.core import responses

    patches.set(responses, "method_names_from_class", _FunctionNames)

    modules = tuple(backends.list_of_moto_modules())
    patches.set(backends, "list_of_moto_modules", lambda: modules)
