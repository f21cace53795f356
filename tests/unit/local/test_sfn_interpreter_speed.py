"""The interpreter's per-step work done once or more cheaply (sfn_mlops/local/sfn.py):
JSONPath parsed once per path text, JSON values copied without deepcopy's memo."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.eval import states
from moto.stepfunctions.parser.asl.utils import json_path

from sfn_mlops.local.cloud import _Patches
from sfn_mlops.local.sfn import install_json_copies, install_jsonpath_cache, json_copy


def test_json_copy_is_a_deep_copy_like_deepcopy() -> None:
    # GIVEN a state's data: nested dicts and lists, scalars, and a non-JSON value
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    value: dict[str, Any] = {"a": [1, 2.5, {"b": None, "c": True}], "s": "x", "t": when}
    # WHEN it is copied
    copied = json_copy(value)
    # THEN it equals what deepcopy makes, and shares no container with the original
    assert copied == copy.deepcopy(value)
    assert copied is not value
    assert copied["a"] is not value["a"]
    assert copied["a"][2] is not value["a"][2]
    copied["a"][2]["b"] = "changed"
    assert value["a"][2]["b"] is None


def test_jsonpath_is_parsed_once_per_path_and_answers_the_same() -> None:
    # GIVEN the interpreter's JSONPath look-ups, before the cache
    data = {"train": {"poll": {"attempt": 2}}, "items": [{"n": 1}, {"n": 2}]}
    before = [json_path.extract_json(p, data) for p in ("$.train.poll.attempt", "$.items[*].n")]
    patches = _Patches()
    # WHEN the cache (and the JSON copies) are installed
    install_jsonpath_cache(patches)
    install_json_copies(patches)
    try:
        after = [json_path.extract_json(p, data) for p in ("$.train.poll.attempt", "$.items[*].n")]
        json_path.extract_json("$.train.poll.attempt", data)
        # THEN the answers are the same and the second look-up of a path parsed nothing
        assert after == before == [2, [1, 2]]
        info = json_path.parse.cache_info()  # type: ignore[attr-defined]
        assert info.hits >= 1
        assert info.misses == 2
        assert states.copy.deepcopy is json_copy  # type: ignore[attr-defined]
        assert states.copy.copy is copy.copy  # type: ignore[attr-defined]
    finally:
        patches.undo()
    # AND uninstalled, moto's own functions are back
    assert not hasattr(json_path.parse, "cache_info")
    assert not hasattr(result_path.parse, "cache_info")
    assert states.copy is copy
