"""Request bodies to checked raw rows: the four MLflow formats, V2 tensors, and what gets refused."""

import pytest

from apps.deployments.serving.inputs import InputError, InputSpec, check_columns, loads_body, parse_mlflow, parse_v2

SPEC = InputSpec(columns=("f1", "f2", "ticker"), kinds={"f1": "numeric", "f2": "numeric", "ticker": "text"})
ROWS = [{"f1": 1.0, "f2": 2, "ticker": "AAA"}, {"f1": -1.5, "f2": 0.25, "ticker": "BBB"}]
EXPECTED = {"f1": [1.0, -1.5], "f2": [2, 0.25], "ticker": ["AAA", "BBB"]}


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_records": ROWS},
        {"dataframe_split": {"columns": ["f1", "f2", "ticker"], "data": [[1.0, 2, "AAA"], [-1.5, 0.25, "BBB"]]}},
        {"instances": ROWS},
        {"instances": [[1.0, 2, "AAA"], [-1.5, 0.25, "BBB"]]},
        {"inputs": {"f1": [1.0, -1.5], "f2": [2, 0.25], "ticker": ["AAA", "BBB"]}},
        {"inputs": [[1.0, 2, "AAA"], [-1.5, 0.25, "BBB"]]},
    ],
    ids=["records", "split", "instances-records", "instances-rows", "inputs-columns", "inputs-rows"],
)
def test_every_mlflow_format_gives_the_same_columns(body):
    columns, _ = parse_mlflow(body, SPEC)
    assert columns == EXPECTED
    frame = check_columns(columns, SPEC, known=set(SPEC.columns), max_rows=10)
    assert list(frame.columns) == ["f1", "f2", "ticker"] and len(frame) == 2


def test_v2_column_tensors_and_a_single_matrix_give_the_same_columns():
    per_column = {
        "inputs": [
            {"name": "f1", "shape": [2], "datatype": "FP64", "data": [1.0, -1.5]},
            {"name": "f2", "shape": [2, 1], "datatype": "FP32", "data": [[2], [0.25]]},
            {"name": "ticker", "shape": [2], "datatype": "BYTES", "data": ["AAA", "BBB"]},
        ]
    }
    assert parse_v2(per_column, SPEC) == EXPECTED
    numeric = InputSpec(columns=("f1", "f2"), kinds={"f1": "numeric", "f2": "numeric"})
    matrix = {"inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP64", "data": [1.0, 2, -1.5, 0.25]}]}
    assert parse_v2(matrix, numeric) == {"f1": [1.0, -1.5], "f2": [2, 0.25]}


BAD_BODIES = [
    (b"", "body", "empty"),
    (b"{not json", "body", "malformed JSON at line 1"),
    (b"[1, 2]", "body", "expected a JSON object"),
    (b'{"dataframe_records": [], "instances": []}', "body", "exactly one of"),
    (b'{"rows": []}', "rows", "unknown field"),
    (b'{"dataframe_records": {"f1": 1}}', "dataframe_records", "expected an array of records"),
    (
        b'{"dataframe_records": [{"f1": 1, "f2": 2, "ticker": "A"}, {"f1": 1, "ticker": "A"}]}',
        "dataframe_records[1]",
        "lacks 'f2'",
    ),
    (b'{"dataframe_split": {"columns": ["f1", "f1"], "data": []}}', "dataframe_split.columns", "appears twice"),
    (
        b'{"dataframe_split": {"columns": ["f1", "f2", "ticker"], "data": [[1, 2]]}}',
        "dataframe_split.data[0]",
        "expected 3 values",
    ),
    (b'{"inputs": {"f1": [1, 2], "f2": [1]}}', "inputs.f2", "has 1 values"),
]


@pytest.mark.parametrize("raw, field, words", BAD_BODIES, ids=[f"{b[1]}:{b[2]}" for b in BAD_BODIES])
def test_a_malformed_body_is_refused_naming_the_field(raw, field, words):
    with pytest.raises(InputError) as caught:
        parse_mlflow(loads_body(raw), SPEC)
    assert caught.value.field == field
    assert words in caught.value.message


BAD_VALUES = [
    ({"f1": [float("nan")], "f2": [1], "ticker": ["A"]}, "f1", "nan is not allowed"),
    ({"f1": [1], "f2": [float("inf")], "ticker": ["A"]}, "f2", "inf is not allowed"),
    ({"f1": ["abc"], "f2": [1], "ticker": ["A"]}, "f1", "expected a number, got a string"),
    ({"f1": [True], "f2": [1], "ticker": ["A"]}, "f1", "expected a number, got a boolean"),
    ({"f1": [None], "f2": [1], "ticker": ["A"]}, "f1", "null is not allowed"),
    ({"f1": [1], "f2": [1], "ticker": [5]}, "ticker", "expected a string"),
    ({"f1": [1, 2], "f2": [1, 2], "ticker": ["A", "B\x00"]}, "ticker", "row 1: the value holds a NUL character"),
    ({"f1": [1], "ticker": ["A"]}, "f2", "missing column"),
    ({"f1": [1], "f2": [1], "ticker": ["A"], "colour": ["red"]}, "colour", "unexpected column"),
    ({"f1": [1] * 11, "f2": [1] * 11, "ticker": ["A"] * 11}, "rows", "more than the limit of 10"),
]


@pytest.mark.parametrize("columns, field, words", BAD_VALUES, ids=[f"{b[1]}:{b[2]}" for b in BAD_VALUES])
def test_bad_values_are_refused_naming_the_column_and_row(columns, field, words):
    with pytest.raises(InputError) as caught:
        check_columns(columns, SPEC, known=set(SPEC.columns), max_rows=10)
    assert caught.value.field == field
    assert words in caught.value.message


def test_nan_and_infinity_literals_in_json_reach_the_check_that_names_them():
    body = loads_body(b'{"dataframe_records": [{"f1": NaN, "f2": 1, "ticker": "A"}]}')
    columns, _ = parse_mlflow(body, SPEC)
    with pytest.raises(InputError, match="row 0: nan is not allowed") as caught:
        check_columns(columns, SPEC, known=set(SPEC.columns), max_rows=10)
    assert caught.value.field == "f1"
    body = loads_body(b'{"dataframe_records": [{"f1": 1e999, "f2": 1, "ticker": "A"}]}')
    with pytest.raises(InputError, match="inf is not allowed"):
        check_columns(parse_mlflow(body, SPEC)[0], SPEC, known=set(SPEC.columns), max_rows=10)


def test_a_column_another_served_version_needs_is_accepted_and_left_out():
    columns = {"f1": [1], "f2": [2], "ticker": ["A"], "extra_for_challenger": [3]}
    frame = check_columns(columns, SPEC, known={"f1", "f2", "ticker", "extra_for_challenger"}, max_rows=10)
    assert list(frame.columns) == ["f1", "f2", "ticker"]


V2_BAD = [
    ({}, "inputs", "non-empty array"),
    (
        {"inputs": [{"name": "f1", "shape": [2], "datatype": "FP64", "data": [1.0]}]},
        "inputs[0] (f1).data",
        "needs 2 values",
    ),
    (
        {"inputs": [{"name": "f1", "shape": [1], "datatype": "FLOAT", "data": [1.0]}]},
        "inputs[0] (f1).datatype",
        "unknown datatype",
    ),
    (
        {"inputs": [{"name": "ticker", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
        "inputs[0] (ticker).datatype",
        "needs datatype BYTES",
    ),
    ({"inputs": [{"shape": [1], "datatype": "FP64", "data": [1.0]}]}, "inputs[0].name", "needs a name"),
    (
        {
            "inputs": [
                {"name": "f1", "shape": [1], "datatype": "FP64", "data": [1]},
                {"name": "f2", "shape": [2], "datatype": "FP64", "data": [1, 2]},
            ]
        },
        "inputs[1] (f2).shape",
        "has 2 rows",
    ),
]


@pytest.mark.parametrize("body, field, words", V2_BAD, ids=[b[1] for b in V2_BAD])
def test_a_bad_v2_request_is_refused_naming_the_tensor(body, field, words):
    with pytest.raises(InputError) as caught:
        parse_v2(body, SPEC)
    assert caught.value.field == field
    assert words in caught.value.message
