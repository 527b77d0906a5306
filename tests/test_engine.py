"""The engine: records in, validated tensors and numpy-convention patterns out."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from _helpers import clean_env, run_python
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_diabetes, load_wine
from sklearn.feature_extraction import FeatureHasher
from sklearn.utils import murmurhash3_32 as sklearn_murmurhash3_32

from liam_core import (
    ConfigError,
    EmptyInputError,
    HashCollisionError,
    InvalidTypeError,
    InvalidValueError,
    LaborIntelligenceEngine,
    LiamError,
    MissingMetricError,
    Schema,
    ShapeError,
    UnknownMetricError,
)
from liam_core._hashing import murmurhash3_32

RECORD = {"productivity": 85.5, "efficiency": 92.3, "quality": 88.7, "throughput": 120.0}

README_QUICK_START = """
from liam_core import LaborIntelligenceEngine, BinaryAlgebra
engine = LaborIntelligenceEngine(dimensions=64)
algebra = BinaryAlgebra()
tensor = engine.ingest_labor_data({'productivity': 85.5, 'efficiency': 92.3, 'quality': 88.7, 'throughput': 120.0})
matrix = engine.compute_labor_matrix([tensor])
patterns = engine.analyze_intelligence_patterns(matrix)
print(f"Rank: {patterns['rank']}, Condition: {patterns['condition_number']:.2f}")
"""


@pytest.mark.slow
def test_the_readme_quick_start_runs_verbatim_and_prints_rank_and_condition():
    result = run_python("-c", [README_QUICK_START], timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Rank: 1, Condition: 1.00"


# -- hashing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "a", "ab", "abc", "abcd", "quality", "throughput/h", "é✓"])
def test_murmurhash3_matches_scikit_learn(text):
    assert murmurhash3_32(text.encode()) == sklearn_murmurhash3_32(text.encode(), seed=0)


def test_hashed_ingestion_matches_scikit_learn_feature_hasher():
    engine = LaborIntelligenceEngine(dimensions=64)
    expected = FeatureHasher(n_features=64).transform([RECORD]).toarray()[0]
    np.testing.assert_allclose(engine.ingest_labor_data(RECORD), expected, rtol=1e-6)


@pytest.mark.slow
def test_hashed_slots_are_the_same_in_another_process_with_another_hash_seed():
    code = (
        "from liam_core import LaborIntelligenceEngine as E;"
        "print([E(64).slot_of(n) for n in ['productivity', 'quality', 'x' * 50]])"
    )
    results = [
        run_python("-c", [code], timeout=120, env=clean_env(PYTHONHASHSEED=seed))
        for seed in ("1", "2")
    ]
    assert all(result.returncode == 0 for result in results), results[0].stderr
    outputs = {result.stdout for result in results}
    assert len(outputs) == 1 and outputs.pop().startswith("[(")


def test_tensors_are_float32_of_the_configured_length():
    tensor = LaborIntelligenceEngine(dimensions=16).ingest_labor_data({"quality": 1})
    assert tensor.shape == (16,) and tensor.dtype == jnp.float32


def test_two_names_that_collide_are_reported_not_summed():
    engine = LaborIntelligenceEngine(dimensions=2)
    names = [f"metric_{i}" for i in range(3)]  # three names in two slots must collide
    with pytest.raises(HashCollisionError, match=r"must land in distinct slots, got both in slot"):
        engine.ingest_labor_data(dict.fromkeys(names, 1.0))


# -- schema ------------------------------------------------------------------------------------


@pytest.fixture
def schema_engine():
    schema = Schema(
        ["productivity", "efficiency", "quality"],
        units={"productivity": "%"},
        ranges={"productivity": (0, 100)},
    )
    return LaborIntelligenceEngine(dimensions=4, schema=schema)


def test_a_schema_gives_each_name_its_own_slot_in_order(schema_engine):
    tensor = schema_engine.ingest_labor_data({"quality": 3, "productivity": 1, "efficiency": 2})
    assert tensor.tolist() == [1.0, 2.0, 3.0, 0.0]


def test_an_unknown_name_under_a_schema_is_an_error(schema_engine):
    record = {"productivity": 1, "efficiency": 2, "quality": 3, "overtime": 4}
    with pytest.raises(
        UnknownMetricError, match=r"must be one of the schema's \['productivity'.*got 'overtime'"
    ):
        schema_engine.ingest_labor_data(record)


def test_a_missing_name_under_a_schema_is_an_error_unless_allowed(schema_engine):
    with pytest.raises(
        MissingMetricError, match=r"must hold every metric of the schema.*got no \['quality'\]"
    ):
        schema_engine.ingest_labor_data({"productivity": 1.0, "efficiency": 2.0})
    lenient = LaborIntelligenceEngine(4, Schema(["a", "b"], allow_missing=True))
    assert lenient.ingest_labor_data({"b": 2.0}).tolist() == [0.0, 2.0, 0.0, 0.0]


def test_a_value_outside_its_range_names_metric_unit_range_and_value(schema_engine):
    with pytest.raises(
        InvalidValueError, match=r"metric `productivity` \[%\] must be in \[0.0, 100.0\], got 120"
    ):
        schema_engine.ingest_labor_data({"productivity": 120, "efficiency": 1, "quality": 1})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"names": []}, r"Schema: `names` must list at least one metric name, got \[\]"),
        ({"names": "abc"}, "Schema: `names` must be a list of names, got str: 'abc'"),
        ({"names": ["a", "a"]}, r"Schema: `names` must name each entry once, got \['a'\]"),
        ({"names": ["a", ""]}, "Schema: `names` must be a list of non-empty names, got ''"),
        (
            {"names": ["a"], "ranges": {"b": (0, 1)}},
            r"`ranges` must name only metrics in `names` \['a'\], got \['b'\]",
        ),
        (
            {"names": ["a"], "ranges": {"a": (2, 1)}},
            r"`ranges\['a'\]` must be a pair with low <= high, got \(2, 1\)",
        ),
        (
            {"names": ["a"], "ranges": {"a": "x"}},
            r"`ranges\['a'\]` must be a pair \(low, high\) of numbers, got 'x'",
        ),
    ],
)
def test_invalid_schemas_are_refused(kwargs, match):
    with pytest.raises(LiamError, match=match):
        Schema(**kwargs)


def test_dimensions_must_fit_the_schema():
    with pytest.raises(
        ConfigError, match=r"`dimensions` must be an int >= 3 \(one slot per metric"
    ):
        LaborIntelligenceEngine(dimensions=2, schema=Schema(["a", "b", "c"]))


@pytest.mark.parametrize("dimensions", [0, -3, 2.5, "64", True, None])
def test_dimensions_must_be_a_positive_int(dimensions):
    with pytest.raises(
        ConfigError, match="LaborIntelligenceEngine: `dimensions` must be an int >= 1"
    ):
        LaborIntelligenceEngine(dimensions=dimensions)


# -- bad records -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (float("nan"), InvalidValueError),
        (float("inf"), InvalidValueError),
        (-float("inf"), InvalidValueError),
        ("85.5", InvalidTypeError),
        (True, InvalidTypeError),
        (None, InvalidTypeError),
        ([1.0], InvalidTypeError),
        (1 + 2j, InvalidTypeError),
    ],
)
def test_a_bad_value_names_the_key_and_the_value(value, error):
    with pytest.raises(error, match=r"metric `quality` must be a (real|finite) number.*, got"):
        LaborIntelligenceEngine().ingest_labor_data({"productivity": 1.0, "quality": value})


@pytest.mark.parametrize(
    ("record", "error"),
    [({}, EmptyInputError), ([1.0], InvalidTypeError), ({3: 1.0}, InvalidTypeError)],
)
def test_empty_or_malformed_records_are_refused(record, error):
    with pytest.raises(error):
        LaborIntelligenceEngine().ingest_labor_data(record)


def test_numpy_scalars_are_numbers():
    tensor = LaborIntelligenceEngine(8, Schema(["a", "b"])).ingest_labor_data(
        {"a": np.float32(1.5), "b": np.int64(2)}
    )
    assert tensor[:2].tolist() == [1.5, 2.0]


finite_numbers = st.one_of(
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
names = st.text(min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(names, finite_numbers, min_size=1, max_size=8))
def test_every_record_of_finite_numbers_ingests_unless_two_names_collide(record):
    engine = LaborIntelligenceEngine(dimensions=1 << 20)
    slots = [engine.slot_of(name)[0] for name in record]
    if len(set(slots)) < len(slots):
        with pytest.raises(HashCollisionError):
            engine.ingest_labor_data(record)
        return
    tensor = np.asarray(engine.ingest_labor_data(record))
    expected = np.float32([engine.slot_of(n)[1] * float(v) for n, v in record.items()])
    np.testing.assert_array_equal(tensor[slots], expected)
    assert np.count_nonzero(tensor) == np.count_nonzero(expected)


bad_values = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), None, True, False]),
    st.text(),
    st.lists(st.floats()),
    st.binary(),
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(names, finite_numbers, max_size=5), names, bad_values)
def test_any_non_finite_or_non_numeric_value_raises_a_liam_error(record, bad_name, bad_value):
    with pytest.raises(LiamError, match=r"(?s)metric `.*` must be a (real|finite) number"):
        LaborIntelligenceEngine(dimensions=1 << 20).ingest_labor_data(
            {**record, bad_name: bad_value}
        )


# -- batches -----------------------------------------------------------------------------------


def test_all_batch_formats_give_the_same_tensor_as_single_records():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 4)) * 10
    names = list(RECORD)
    frame = pd.DataFrame(values, columns=names)
    engine = LaborIntelligenceEngine(dimensions=32)
    one_by_one = np.stack([engine.ingest_labor_data(dict(row)) for _, row in frame.iterrows()])
    structured = np.rec.fromarrays(values.T, names=names)
    batches = {
        "records": engine.ingest_batch(frame.to_dict("records")),
        "dataframe": engine.ingest_batch(frame),
        "arrow": engine.ingest_batch(pa.Table.from_pandas(frame)),
        "columns": engine.ingest_batch({name: values[:, i] for i, name in enumerate(names)}),
        "structured": engine.ingest_batch(structured),
        "array": engine.ingest_array(values, names),
    }
    for source, batch in batches.items():
        np.testing.assert_array_equal(batch, one_by_one, err_msg=source)


def test_a_bad_cell_in_a_dataframe_names_source_column_and_row():
    frame = pd.DataFrame({"quality": [1.0, 2.0, np.nan], "throughput": [1.0, 2.0, 3.0]})
    with pytest.raises(
        InvalidValueError, match=r"DataFrame, row 2 \(0-based\): metric `quality` must be a finite"
    ):
        LaborIntelligenceEngine().ingest_batch(frame)
    text = pd.DataFrame({"quality": [1.0, "high", 3.0]})
    with pytest.raises(
        InvalidTypeError, match=r"row 1 \(0-based\): metric `quality` must be a real.*'high'"
    ):
        LaborIntelligenceEngine().ingest_batch(text)
    flags = pd.DataFrame({"quality": [True, False]})
    with pytest.raises(InvalidTypeError, match="metric `quality` must be a column of real numbers"):
        LaborIntelligenceEngine().ingest_batch(flags)


def test_a_null_in_an_arrow_table_names_column_and_row():
    table = pa.table({"quality": [1.0, None, 3.0]})
    with pytest.raises(InvalidValueError, match=r"row 1 \(0-based\): metric `quality` .*missing"):
        LaborIntelligenceEngine().ingest_batch(table)


def test_an_out_of_range_value_in_a_batch_names_its_row():
    engine = LaborIntelligenceEngine(4, Schema(["a"], ranges={"a": (0, 1)}))
    with pytest.raises(InvalidValueError, match="row 3"):
        engine.ingest_batch({"a": np.array([0.0, 0.5, 1.0, 1.5])})


def test_a_batch_record_missing_a_schema_metric_is_named():
    engine = LaborIntelligenceEngine(4, Schema(["a", "b"]))
    with pytest.raises(
        MissingMetricError, match=r"record 1: must hold every metric.*got no \['b'\]"
    ):
        engine.ingest_batch([{"a": 1, "b": 2}, {"a": 1}])


@pytest.mark.parametrize(
    ("batch", "error"),
    [
        ([], EmptyInputError),
        ({}, EmptyInputError),
        ({"a": np.array([])}, EmptyInputError),
        ({"a": np.ones(2), "b": np.ones(3)}, ShapeError),
        ({"a": np.ones((2, 2))}, ShapeError),
        ("records", InvalidTypeError),
        (42, InvalidTypeError),
        ([{"a": 1}, 5], InvalidTypeError),
        ([{"a": 1}, {}], EmptyInputError),
    ],
)
def test_malformed_batches_are_refused(batch, error):
    with pytest.raises(error):
        LaborIntelligenceEngine().ingest_batch(batch)


def test_ingest_array_checks_the_shape_against_the_names():
    with pytest.raises(ShapeError, match=r"\[n, 2\]"):
        LaborIntelligenceEngine().ingest_array(np.ones((3, 3)), ["a", "b"])


# -- matrix and patterns -----------------------------------------------------------------------


def test_patterns_follow_numpy_on_a_real_dataset():
    data = load_wine().data
    engine = LaborIntelligenceEngine(dimensions=13, schema=Schema(load_wine().feature_names))
    matrix = engine.ingest_array(data, load_wine().feature_names)
    patterns = engine.analyze_intelligence_patterns(matrix)
    reference = np.asarray(matrix, dtype=np.float32)
    assert patterns["rank"] == np.linalg.matrix_rank(reference) == 13
    assert patterns["condition_number"] == pytest.approx(np.linalg.cond(reference), rel=1e-3)
    np.testing.assert_allclose(
        patterns["singular_values"], np.linalg.svd(reference, compute_uv=False), rtol=1e-4
    )
    assert patterns["explained_variance_ratio"].sum() == pytest.approx(1.0, abs=1e-5)
    assert 1.0 <= patterns["effective_rank"] <= patterns["rank"]


def test_patterns_scalars_are_python_scalars():
    engine = LaborIntelligenceEngine()
    patterns = engine.analyze_intelligence_patterns(
        engine.compute_labor_matrix([engine.ingest_labor_data(RECORD)])
    )
    assert type(patterns["rank"]) is int
    for name in ("condition_number", "tolerance", "effective_rank"):
        assert type(patterns[name]) is float


def test_condition_number_of_a_rank_deficient_matrix_is_inf():
    engine = LaborIntelligenceEngine(dimensions=64)
    tensor = engine.ingest_labor_data(RECORD)
    patterns = engine.analyze_intelligence_patterns(engine.compute_labor_matrix([tensor] * 3))
    assert patterns["rank"] == 1
    assert math.isinf(patterns["condition_number"])


def test_standardized_and_centered_matrices_match_numpy():
    data = load_diabetes(scaled=False).data.astype(np.float32)
    engine = LaborIntelligenceEngine(dimensions=10)
    standardized = engine.compute_labor_matrix(data, standardize=True)
    expected = (data - data.mean(0)) / data.std(0)
    np.testing.assert_allclose(standardized, expected, atol=1e-4)
    centered = engine.compute_labor_matrix(list(data), center=True)
    np.testing.assert_allclose(centered, data - data.mean(0), atol=1e-3)


@pytest.mark.parametrize(
    ("tensors", "error"),
    [
        ([], EmptyInputError),
        ([np.ones(63, np.float32)], ShapeError),
        ([np.ones(64, np.float32), np.ones((64, 1), np.float32)], ShapeError),
        (np.full((2, 64), np.nan, np.float32), InvalidValueError),
        ("tensors", InvalidTypeError),
    ],
)
def test_compute_labor_matrix_refuses_bad_tensors(tensors, error):
    with pytest.raises(error):
        LaborIntelligenceEngine().compute_labor_matrix(tensors)


@pytest.mark.parametrize(
    ("matrix", "error"),
    [
        (np.ones(3), ShapeError),
        (np.ones((0, 3)), EmptyInputError),
        (np.array([[1.0, np.inf]]), InvalidValueError),
        (np.array([["a", "b"]]), InvalidTypeError),
    ],
)
def test_analyze_refuses_bad_matrices(matrix, error):
    with pytest.raises(error):
        LaborIntelligenceEngine().analyze_intelligence_patterns(matrix)
