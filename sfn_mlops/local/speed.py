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

- BaseResponse._get_action (moto's operation router over the service model) ran 2-3 times
  per request: for the strict check, the IAM check and the dispatch. It is answered once
  per response object and request (the answer depends on nothing else).

The two hot routes (a warm Lambda Invoke and InvokeEndpoint: figure 4 in benchmarks/) skip
Flask: moto's Flask app only finds the view for the URL (its own url_map, as Flask does),
pushes a request context nothing on these routes reads, and adds the CORS header. The fast
route (`_HotRoutes`) finds the same view with the same url_map and calls moto's same
callback with the same request object, so every check behind it runs unchanged (SigV4 and
IAM, strict requests, the Lambda seam and its throttling, InvokeEndpoint's metrics, data
capture and faults). It serves only a POST to .../invocations of the lambda and
sagemaker-runtime backends without an Origin header (what the SDKs send); anything else
takes Flask's path. Measured (cProfile, warm Invoke of the inference Lambda): Flask's part
was ~12% of moto's server CPU per request.

- moto makes some per-service state on a service's first request: the botocore service
  model its request parsing and the strict check read (`get_service_model`, cached for the
  process), and the account's backend (`BackendDict[account]`, whose region list is
  computed from botocore's endpoint data each time; moto's reset drops it). SageMaker's is
  the largest: the first SageMaker call of a run (the preprocess Lambda's, inside the first
  execution's timed path) took 0.7-0.9 s more than the next ones on the loaded 2-core
  machine (py-spy: `_load_service_model` and `_generate_regions` in the request thread).
  :func:`prime` makes that state when the cloud starts, in a background thread, for the
  services a pipeline run calls.

- An error response looks its error shape up in a table of the service's errors, which
  moto builds afresh for every error response (moto.core.errors.get_error_model makes a
  new ErrorLookupFactory, whose cache is per instance). One factory serves every error
  response, so each service's table is built once. A run answers a dozen errors on
  purpose (the "not found yet" of the Describe calls before a Create). The package-name
  look-up of the first error of each service (service_name_from_moto_package_name, a
  table of every botocore service: ~0.1 s) is made by :func:`prime`.

Nothing here changes what a request does or answers: each is a cache of a pure look-up, or
the same call reached without the framework around it.
"""

from __future__ import annotations

import inspect
from typing import Any

#: moto backends whose invocations route takes the fast route (see the module doc)
HOT_SERVICES = frozenset({"awslambda", "sagemakerruntime"})
_HOT_SUFFIXES = ("/invocations", "/invocations/")


class _FunctionNames:
    """`name in _FunctionNames(cls)` == `name in moto.core.utils.method_names_from_class(cls)`
    (inspect.getmembers(cls, inspect.isfunction)), for the one name asked about."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not any(name in vars(k) for k in self.cls.__mro__):
            return False
        return inspect.isfunction(getattr(self.cls, name, None))


def _memo_action(original: Any) -> Any:
    """BaseResponse._get_action, answered once per response object and its inputs: the
    querystring's Action (S3's responses set it in place as they go: it is part of the
    key), the X-Amz-Target header, and the request setup_class stored (its method and path
    are what the router reads). The router's side effect (uri_match) is kept from that
    one call."""

    def _get_action(self: Any) -> Any:
        request = getattr(self, "normalized_request", None)
        query = getattr(self, "querystring", None)
        headers = getattr(self, "headers", None)
        key = (
            query.get("Action") if isinstance(query, dict) else query,
            # `is not None`: the truth of werkzeug's EnvironHeaders is its length, which
            # walks the whole WSGI environ (~0.7 ms a call under cProfile, 5 calls a request)
            headers.get("x-amz-target") or headers.get("X-Amz-Target")
            if headers is not None
            else None,
        )
        memo = self.__dict__.get("_sfn_mlops_action")
        if (
            memo is not None
            and memo[0] is request
            and memo[1] is query
            and memo[2] is headers
            and memo[3] == key
        ):
            return memo[4]
        action = original(self)
        self.__dict__["_sfn_mlops_action"] = (request, query, headers, key, action)
        return action

    _get_action.__wrapped__ = original  # type: ignore[attr-defined]
    return _get_action


class _HotRoutes:
    """The fast route for the hot invocations routes (module doc): in front of moto's
    DomainDispatcherApplication.__call__, whose Flask app is still the one that answers
    everything else."""

    def __init__(self, original_call: Any) -> None:
        from moto.core.utils import convert_to_flask_response
        from moto.settings import DISABLE_GLOBAL_CORS

        self.original_call = original_call
        self.view_type = convert_to_flask_response
        self.cors = not DISABLE_GLOBAL_CORS
        #: requests served by the fast route (tests check that it is taken)
        self.served = 0
        #: False: every request takes Flask's path (tests compare the two)
        self.enabled = True

    def __call__(self, dispatcher: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if (
            self.enabled
            and environ.get("REQUEST_METHOD") == "POST"
            and "HTTP_ORIGIN" not in environ
            and str(environ.get("PATH_INFO", "")).endswith(_HOT_SUFFIXES)
        ):
            app = dispatcher.get_application(environ)  # the backend, as moto chooses it
            if getattr(app, "service", None) in HOT_SERVICES:
                request = app.request_class(environ)
                view = self._view(app, request)
                if view is not None:
                    response = self._serve(view, request)
                    self.served += 1
                    return response(environ, start_response)
        return self.original_call(dispatcher, environ, start_response)

    def _view(self, app: Any, request: Any) -> Any:
        """The view Flask would dispatch to (Flask.create_url_adapter + match), if it is
        one of moto's response callbacks."""
        from werkzeug.exceptions import HTTPException

        try:
            endpoint, _ = app.create_url_adapter(request).match()
        except HTTPException:
            return None  # Flask's path answers it (404, 405, a redirect)
        view = app.view_functions.get(endpoint)
        return view if isinstance(view, self.view_type) else None

    def _serve(self, view: Any, request: Any) -> Any:
        """moto.core.utils.convert_to_flask_response.__call__ with the request passed in
        (it reads Flask's context-local request), then the header flask_cors adds to a
        request without an Origin header (Access-Control-Allow-Origin: *)."""
        from botocore.exceptions import ClientError
        from flask import Response
        from moto.core.request import normalize_request
        from moto.moto_api import recorder

        try:
            request = normalize_request(request)
            recorder._record_request(request)
            result = view.callback(request, request.raw_url, dict(request.headers))
        except ClientError as exc:
            result = 400, {}, exc.response["Error"]["Message"]
        if len(result) == 3:
            status, headers, content = result
        else:
            status, headers, content = 200, {}, result
        response = Response(response=content, status=status, headers=headers)
        if self.cors and not response.headers.get("Access-Control-Allow-Origin"):
            response.headers["Access-Control-Allow-Origin"] = "*"
        return response


#: boto3 service names the pipeline calls while it runs (Lambdas, jobs, the cloud itself)
PRIMED_SERVICES = (
    "sagemaker", "sagemaker-runtime", "stepfunctions", "lambda", "s3", "dynamodb", "sns",
    "sqs", "events", "logs", "cloudwatch", "sts", "ecr",
)  # fmt: skip
_BACKEND_NAMES = {"lambda": "awslambda"}  # moto's module name, where it differs


def prime(account: str, region: str, services: tuple[str, ...] = PRIMED_SERVICES) -> None:
    """Make moto's per-service state for `services` now (see the module doc): the service
    model and the account's and region's backend, as their first request would."""
    from moto.backends import get_backend, list_of_moto_modules
    from moto.core.utils import get_service_model, service_name_from_moto_package_name

    modules = set(list_of_moto_modules())
    for service in services:
        get_service_model(service)
        name = _BACKEND_NAMES.get(service, service.replace("-", ""))
        service_name_from_moto_package_name(name)  # cached: an error response's look-up
        if name in modules:
            backends = get_backend(name)  # type: ignore[call-overload]
            account_backends = backends[account]
            if region in account_backends.regions:
                account_backends[region]
            elif "global" in account_backends.regions:
                account_backends["global"]


def install(patches: Any) -> _HotRoutes:
    from moto import backends
    from moto.core import responses
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    patches.set(responses, "method_names_from_class", _FunctionNames)

    modules = tuple(backends.list_of_moto_modules())
    patches.set(backends, "list_of_moto_modules", lambda: modules)

    base = responses.BaseResponse
    patches.set(base, "_get_action", _memo_action(base._get_action))

    from moto.core import errors

    shared_errors = errors.ErrorLookupFactory()  # one error table per service (module doc)
    patches.set(errors, "ErrorLookupFactory", lambda: shared_errors)

    hot = _HotRoutes(DomainDispatcherApplication.__call__)

    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        return hot(self, environ, start_response)

    patches.set(DomainDispatcherApplication, "__call__", call)
    return hot
