"""Every missing variable and every invalid value is reported in one error, not one a run (issue 15)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.errors import Refusal, VariableError
from broadcaster.templates.variables import example_inputs, resolve
from tests.templates.support import DUBAI
from tests.templates.test_variables import CATALOGUE, NOW, ROAD

REQUIRED = [v.name for v in ROAD.variables if v.required]


def refusal(inputs: dict[str, dict[str, str]]) -> VariableError:
    with pytest.raises(VariableError) as caught:
        resolve(ROAD, CATALOGUE.gazetteer, inputs, DUBAI, now=NOW)
    return caught.value


def examples_without(*names: str) -> dict[str, dict[str, str]]:
    inputs = example_inputs(ROAD, NOW, DUBAI)
    for name in names:
        del inputs[name]
    return inputs


def test_several_missing_variables_are_named_in_one_error() -> None:
    error = refusal({"road": {"ar": "E11", "en": "E11"}})
    assert "missing required variables: reason, starts, ends, detour" in str(error)
    assert error.refusal is Refusal.REQUIRED
    assert error.refusal_params == {"variables": ["reason", "starts", "ends", "detour"], "invalid": []}
    assert error.variable is None  # about the variables as a whole: the API's field is "variables"


def test_one_missing_variable_keeps_its_name_and_message() -> None:
    error = refusal(examples_without("detour"))
    assert str(error) == "road_closure: variable 'detour' is required and was not given"
    assert error.variable == "detour"
    assert error.refusal_params == {"variables": ["detour"], "invalid": []}


def test_missing_and_invalid_values_are_reported_together() -> None:
    inputs = examples_without("starts", "ends")
    inputs["reason"] = {"ar": "boredom", "en": "boredom"}
    error = refusal(inputs)
    message = str(error)
    assert "missing required variables: starts, ends" in message
    assert "variable 'reason': 'boredom' is not one of" in message
    assert error.refusal is Refusal.REQUIRED
    assert error.refusal_params == {"variables": ["starts", "ends"], "invalid": ["reason"]}


def test_several_invalid_values_are_reported_together() -> None:
    inputs = example_inputs(ROAD, NOW, DUBAI)
    inputs["road"] = {"ar": "E999", "en": "E999"}
    inputs["reason"] = {"ar": "boredom", "en": "boredom"}
    inputs["detour"] = {"ar": "شارع الخيل"}  # no English
    error = refusal(inputs)
    message = str(error)
    assert "'E999' is not a road in the gazetteer" in message
    assert "'boredom' is not one of" in message
    assert "variable 'detour' needs a value in en too" in message
    assert error.refusal is Refusal.INVALID
    assert error.refusal_params == {"variables": ["road", "reason", "detour"]}
    assert error.variable is None
    inputs["road"], inputs["detour"] = example_inputs(ROAD, NOW, DUBAI)["road"], {"ar": "شارع الخيل", "en": "Al Khail"}
    alone = refusal(inputs)  # a single invalid value keeps its own reason and field
    assert alone.refusal is Refusal.NOT_A_CHOICE and alone.variable == "reason"


def test_every_unknown_variable_is_named() -> None:
    inputs = example_inputs(ROAD, NOW, DUBAI)
    inputs["colour"] = {"ar": "x", "en": "x"}
    inputs["bridge"] = {"ar": "x", "en": "x"}
    message = str(refusal(inputs))
    assert "unknown variables 'bridge', 'colour'" in message


@settings(max_examples=40, deadline=None)
@given(st.sets(st.sampled_from(REQUIRED), min_size=1))
def test_the_error_names_exactly_the_missing_variables(left_out: set[str]) -> None:
    error = refusal(examples_without(*left_out))
    missing = [name for name in REQUIRED if name in left_out]  # in the template's order
    assert error.refusal is Refusal.REQUIRED
    assert error.refusal_params is not None and error.refusal_params["variables"] == missing
    for name in missing:
        assert name in str(error)
