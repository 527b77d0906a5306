"""``LaborArray`` in one process with 8 simulated CPU devices: primitives, errors, compiles.

The determinism matrix over device counts, each in its own process, is in
``test_alda_determinism.py``; several processes are in ``test_distributed.py``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from liam_core import ConfigError, EmptyInputError, LiamError, ShapeError, digest
from liam_core.alda import ChunkedBatch, LaborArray, reduce_tree
from liam_core.mesh import MeshSpec, build_mesh

# 7919 is prime; the two large sizes compile several buckets on 3 devices (seconds each).
RAGGED_SIZES = [1, 255, 256, 257, *(pytest.param(n, marks=pytest.mark.slow) for n in (4097, 7919))]
MESH_4X2 = "<a 4 x 2 jax Mesh>"  # built in the test: the backend is not started at import


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    rng = np.random.default_rng(11)
    scales = 10.0 ** rng.integers(-3, 4, 6)
    return (rng.standard_normal((8000, 6)) * scales + scales).astype(np.float32)


@pytest.fixture(scope="module")
def one() -> LaborArray:
    return LaborArray(1)


@pytest.fixture(scope="module")
def three() -> LaborArray:
    return LaborArray(3)  # not a power of two: the top of the tree is padded with -0.0


@pytest.fixture(scope="module")
def two_sharded() -> LaborArray:
    return LaborArray(2, executor="shard_map")


# --------------------------------------------------------------------------- reductions


@pytest.mark.parametrize("n_rows", RAGGED_SIZES)
def test_ragged_reductions_agree_with_numpy_and_across_device_counts(data, one, three, n_rows):
    x = data[:n_rows]
    totals = {n: digest(labor.sum(x)) for n, labor in (("1", one), ("3", three))}
    means = {n: digest(labor.mean(x)) for n, labor in (("1", one), ("3", three))}
    assert len(set(totals.values())) == 1
    assert len(set(means.values())) == 1
    np.testing.assert_allclose(one.sum(x), x.astype(np.float64).sum(0), rtol=1e-5)
    np.testing.assert_allclose(one.mean(x), x.astype(np.float64).mean(0), rtol=1e-5)
    if n_rows > 1:
        covariances = {digest(labor.covariance(x)) for labor in (one, three)}
        assert len(covariances) == 1
        expected = np.cov(x.astype(np.float64), rowvar=False)
        np.testing.assert_allclose(one.covariance(x), expected, rtol=1e-4, atol=1e-6)


def test_sums_are_the_canonical_tree_over_single_chunks(data, three):
    x = data[:5000]
    partials = [x[start : start + 256] for start in range(0, len(x), 256)]
    chunk_sums = np.stack(
        [np.asarray(reduce_tree(np.pad(p, ((0, 256 - len(p)), (0, 0))))) for p in partials]
    )
    assert digest(three.sum(x)) == digest(reduce_tree(chunk_sums))


@pytest.mark.slow
def test_covariance_follows_numpy_conventions(data, two_sharded):
    x = data[:1000, :3]
    np.testing.assert_allclose(
        two_sharded.covariance(x, ddof=0), np.cov(x, rowvar=False, ddof=0), rtol=1e-4
    )
    one_variable = two_sharded.covariance(x[:, 0])
    assert one_variable.shape == ()
    np.testing.assert_allclose(one_variable, np.cov(x[:, 0]), rtol=1e-4)


def test_integer_sums_are_exact_and_means_are_floating(two_sharded):
    counts = np.arange(3000, dtype=np.int32).reshape(1000, 3)
    assert two_sharded.sum(counts).tolist() == counts.sum(0).tolist()
    assert two_sharded.mean(counts).dtype == jnp.float32


def test_pytree_batches_reduce_leaf_by_leaf(data, two_sharded):
    batch = {"a": data[:700, :2], "b": data[:700, 2:]}
    total = two_sharded.sum(batch)
    for key, leaf in batch.items():
        assert digest(total[key]) == digest(two_sharded.sum(leaf))
        np.testing.assert_allclose(total[key], leaf.astype(np.float64).sum(0), rtol=1e-5)


def test_reduce_takes_a_user_kernel_with_extra_arguments(data, two_sharded):
    def weighted(chunk, mask, weights):
        return jnp.sum(jnp.where(mask[:, None], chunk * weights, 0.0), axis=0), jnp.sum(mask)

    weights = jnp.arange(6, dtype=jnp.float32)
    total, count = two_sharded.reduce(weighted, data[:1000], weights)
    assert int(count) == 1000
    np.testing.assert_allclose(total, (data[:1000] * np.arange(6)).sum(0), rtol=1e-5)


def test_vectorized_elementwise_kernels_keep_the_bits_of_the_loop(data, two_sharded):
    def tree_of_squares(chunk, mask):
        return reduce_tree(jnp.where(mask[:, None], chunk * chunk, 0.0))

    looped = two_sharded.reduce(tree_of_squares, data[:3000])
    vectorized = two_sharded.reduce(tree_of_squares, data[:3000], vectorize=True)
    assert digest(looped) == digest(vectorized)


def test_results_are_returned_on_the_home_device(data, three):
    result = three.sum(data[:100])
    assert result.devices() == {three.topology.home}
    assert three.topology.home == jax.devices()[0]


def test_fast_mode_is_close_but_opt_in(data):
    fast = LaborArray(2, fast=True)
    assert fast.fast and not LaborArray(2).fast
    np.testing.assert_allclose(
        fast.covariance(data[:3000]), np.cov(data[:3000], rowvar=False), rtol=1e-4
    )
    assert "gives up the guarantee" in LaborArray.__doc__


# --------------------------------------------------------------------------- map


def test_map_returns_rows_in_order_with_padding_removed(data, three):
    x = data[:1001]
    out = three.map(lambda rows: rows * 2.0 + 1.0, x)
    assert isinstance(out, np.ndarray)
    assert out.shape == x.shape
    assert np.array_equal(out, x * np.float32(2.0) + np.float32(1.0))


def test_map_takes_and_returns_pytrees(data, two_sharded):
    def fn(b):
        return {"sum": b[0] * 3.0 + b[1], "first": jnp.tanh(b[0][:, :1])}

    batch = (data[:300], data[::-1][:300])
    out = two_sharded.map(fn, batch)
    # A row-wise map gives the bits of the same function jitted on the whole batch.
    want = jax.jit(fn)(batch)
    assert out.keys() == want.keys()
    for key in want:
        assert isinstance(out[key], np.ndarray)
        assert out[key].shape == want[key].shape
        assert np.array_equal(out[key], np.asarray(want[key])), key


def test_map_through_an_algebra_pipeline_matches_one_device(data, one, three):
    from liam_core.algebra import chain, stateless

    weights = jnp.ones((6, 2), jnp.float32)
    pipeline = chain(stateless(jnp.tanh), stateless(lambda rows: rows @ weights))
    state = pipeline.init(jnp.zeros((1, 6), jnp.float32))

    def apply(rows):
        return pipeline.apply(state, rows)

    assert digest(one.map(apply, data[:2000])) == digest(three.map(apply, data[:2000]))


def test_map_refuses_a_function_that_is_not_row_wise(two_sharded, data):
    with pytest.raises(ShapeError, match="row-wise"):
        two_sharded.map(lambda rows: rows.sum(0), data[:300])


# --------------------------------------------------------------------------- value_and_grad


def mlp_loss(model, example):
    x, y = example
    return jnp.sum((model(x) - y) ** 2)


@pytest.mark.slow
def test_value_and_grad_is_the_mean_loss_and_gradient(getkey):
    model = eqx.nn.MLP(4, 1, 8, 2, key=getkey())
    rng = np.random.default_rng(3)
    x = rng.standard_normal((900, 4)).astype(np.float32)
    y = rng.standard_normal((900, 1)).astype(np.float32)
    value, grads = LaborArray(1).value_and_grad(mlp_loss)(model, (x, y))

    @eqx.filter_value_and_grad
    def mean_loss(model):
        return jnp.mean(jax.vmap(mlp_loss, in_axes=(None, 0))(model, (x, y)))

    want_value, want_grads = mean_loss(model)
    np.testing.assert_allclose(value, want_value, rtol=1e-5)
    for got, want in zip(
        jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(want_grads), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # Non-array leaves (the activation functions) get None, as with equinox.filter_grad.
    assert grads.activation is None


@pytest.mark.slow
def test_value_and_grad_has_the_same_bits_on_one_and_three_devices(getkey, one, three):
    model = eqx.nn.MLP(4, 1, 8, 2, key=getkey())
    rng = np.random.default_rng(4)
    batch = (
        rng.standard_normal((1500, 4)).astype(np.float32),
        rng.standard_normal((1500, 1)).astype(np.float32),
    )
    results = {digest(labor.value_and_grad(mlp_loss)(model, batch)) for labor in (one, three)}
    assert len(results) == 1


def test_value_and_grad_needs_a_scalar_loss_and_float_params(two_sharded):
    vag = two_sharded.value_and_grad(lambda w, x: x * w)
    with pytest.raises(ShapeError, match="scalar per example"):
        vag(jnp.ones(3), np.ones((10, 3), np.float32))
    with pytest.raises(ConfigError, match="floating-point array leaf"):
        two_sharded.value_and_grad(lambda w, x: jnp.sum(x))(
            jnp.ones(3, jnp.int32), np.ones((10, 3), np.float32)
        )


# --------------------------------------------------------------------------- compiles, streams


@pytest.mark.slow
def test_a_stream_of_ragged_batches_stops_compiling_after_warm_up(data):
    labor = LaborArray(2)
    sizes = [300, 1000, 2600, 4000, 513, 257, 3900, 1200]  # chunks per device: 1, 2, 4, 8

    def column_max(chunk, mask):  # a kernel of its own: no program is shared with other tests
        return jnp.max(jnp.where(mask[:, None], chunk, -jnp.inf), axis=0)

    def step(total, batch):
        return total + labor.reduce(column_max, batch)

    first = labor.run_stream(step, (data[:n] for n in sizes), jnp.zeros(6, jnp.float32))
    warm = labor.compile_count
    again = labor.run_stream(step, (data[:n] for n in reversed(sizes)), jnp.zeros(6, jnp.float32))
    assert labor.compile_count == warm
    np.testing.assert_allclose(first, again, rtol=1e-5)
    # The chunk program for each of 4 shape buckets, compiled once and loaded onto the other
    # device; in one process the partials are copied to the home device (no gather program),
    # and the finish sees one partial per device, whose shape does not depend on the bucket
    # (the finish program may already exist: it is shared by the whole process).
    assert 4 <= warm <= 4 + 1


def test_a_chunk_program_is_compiled_once_and_loaded_onto_every_other_device(data):
    def spread(chunk, mask):  # kernels of their own: no program is shared with other tests
        centered = jnp.where(mask[:, None], chunk - chunk[:1], 0)
        return jnp.sort(centered, axis=0)[-1] + jnp.fft.rfft(centered, axis=0).real.sum(0)

    def scaled(rows):
        return jnp.tanh(rows * 0.5) @ jnp.ones((6, 2), rows.dtype)

    eight, one = LaborArray(8), LaborArray(1)
    total, mapped = eight.reduce(spread, data), eight.map(scaled, data)
    assert eight.compile_count <= 3  # a chunk program per kernel (not per device), the finish
    assert digest(total) == digest(one.reduce(spread, data))
    assert digest(mapped) == digest(one.map(scaled, data))


def test_a_kernel_with_a_host_callback_is_compiled_on_each_device_and_runs_there(data):
    from liam_core.algebra._sorting import sort  # a numpy callback on CPU

    def smallest(chunk, mask):
        return sort(jnp.where(mask[:, None], chunk, jnp.inf), axis=0)[0]

    eight = LaborArray(8)
    total = eight.reduce(smallest, data)
    assert eight.compile_count >= 8  # not loaded from another device's serialized code
    assert digest(total) == digest(LaborArray(1).reduce(smallest, data))
    # Such a program is never serialized: a copy loaded elsewhere fails its first run (the
    # run check would then compile, but a callback is not something to call blind).
    from liam_core.alda._executors import _CompiledCode

    x = jax.device_put(data, jax.devices()[0])
    assert (
        _CompiledCode.of(jax.jit(lambda x: sort(x, axis=0)).lower(x).compile()).serialized is None
    )


def test_a_program_loaded_onto_another_device_runs_there_with_the_bits_of_its_own_compile(data):
    from liam_core.alda._executors import _CompiledCode, _load_on

    def kernel(x):
        return jnp.sort(x, axis=0)[::7] + jnp.fft.rfft(x, axis=0).real[:1] + jnp.cumsum(x, 0)[1]

    devices = jax.devices()[:8]
    first = jax.device_put(data, devices[0])
    code = _CompiledCode.of(jax.jit(kernel).lower(first).compile())
    assert code.serialized is not None
    for device in devices[1:]:
        x = jax.device_put(data, device)
        loaded = _load_on(code, device)
        assert loaded is not None
        out = loaded(x)
        assert out.devices() == {device}
        np.testing.assert_array_equal(out, jax.jit(kernel).lower(x).compile()(x))
    with pytest.raises(ValueError, match="shardings"):
        loaded(first)  # a loaded program refuses rows on another device, as a compiled one does


def test_never_more_than_max_in_flight_dispatches_are_queued(data):
    labor = LaborArray(2, max_in_flight=3)
    batch = labor.put(data)
    peak = 0
    for _ in range(40):
        labor.sum(batch)
        peak = max(peak, labor.in_flight)
    assert peak <= 3


def test_load_reads_each_block_of_rows_once_in_device_order(data):
    labor = LaborArray(4)
    seen = []
    batch = labor.load(5000, lambda start, stop: seen.append((start, stop)) or data[start:stop])
    assert seen == [(0, 2048), (2048, 4096), (4096, 5000), (5000, 5000)]
    assert isinstance(batch, ChunkedBatch)
    assert digest(labor.sum(batch)) == digest(labor.sum(data[:5000]))


def test_the_plan_and_the_topology_are_visible(data):
    labor = LaborArray(MeshSpec(axes={"data": 4, "model": 2}, executor="shard_map"))
    assert labor.executor == "shard_map"
    assert labor.n_blocks == 4
    assert labor.plan(5000).assignment().tolist() == [0] * 8 + [1] * 8 + [2] * 4
    assert "shard_map" in repr(labor)


def test_a_mesh_can_be_given_directly(data, one):
    mesh = jax.sharding.Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
    labor = LaborArray(mesh, data_axis=("data", "model"))
    assert labor.executor == "shard_map"
    assert labor.n_blocks == 8
    assert digest(labor.sum(data[:3000])) == digest(one.sum(data[:3000]))


def test_a_mesh_spec_names_the_mesh_the_executor_and_the_data_axes(data, one):
    spec = MeshSpec(axes={"data": 4, "model": 2}, executor="shard_map", data_axis=("data", "model"))
    labor = LaborArray(spec, chunk_size=128)
    assert (labor.executor, labor.n_blocks, labor.chunk_size) == ("shard_map", 8, 128)
    assert labor.mesh == spec.make_mesh()
    assert digest(labor.sum(data[:3000])) == digest(one.sum(data[:3000]))
    with pytest.raises(ConfigError, match=r"`executor` must be left unset for a MeshSpec"):
        LaborArray(spec, executor="pmap")
    with pytest.raises(ConfigError, match=r"`data_axis` must be left unset for a MeshSpec"):
        LaborArray(spec, data_axis="model")


def test_a_device_list_becomes_a_1d_mesh_in_the_given_order(data, one):
    devices = jax.devices()[::-1][:4]
    labor = LaborArray(devices, data_axis="rows")
    assert labor.mesh == build_mesh(devices, {"rows": -1})
    assert labor.topology.home == devices[0]
    assert digest(labor.sum(data[:3000])) == digest(one.sum(data[:3000]))


# --------------------------------------------------------------------------- errors


def test_the_empty_batch_is_a_typed_error(two_sharded):
    empty = np.zeros((0, 3), np.float32)
    for primitive in (two_sharded.sum, two_sharded.mean, two_sharded.covariance, two_sharded.put):
        with pytest.raises(EmptyInputError):
            primitive(empty)
    with pytest.raises(EmptyInputError):
        two_sharded.map(jnp.tanh, empty)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"chunk_size": 0}, r"LaborArray: `chunk_size` must be an int >= 1, got 0"),
        ({"chunk_size": 2.5}, r"LaborArray: `chunk_size` must be an int >= 1, got float: 2.5"),
        ({"mesh": 9}, r"`devices` must be an int in \[1, 8\] \(the first k of the 8 cpu devices\)"),
        ({"mesh": 0}, r"`devices` must be an int in \[1, 8\]"),
        ({"mesh": "cpu"}, r"`mesh` must be a Mesh, a MeshSpec, None, an int or a sequence"),
        ({"executor": "vmap"}, r"`executor` must be one of 'pmap', 'shard_map', got 'vmap'"),
        (
            {"mesh": MESH_4X2, "executor": "pmap"},
            r"`executor` must be 'shard_map' for the 2-D mesh .*\(pmap runs 1-D meshes only\)",
        ),
        ({"mesh": MESH_4X2, "data_axis": "batch"}, r"`data_axis` must be one of 'data', 'model'"),
        ({"mesh": MESH_4X2, "data_axis": ("data", "data")}, r"`data_axis` must name each mesh"),
        ({"data_axis": ("data", "model")}, r"`data_axis` must be one axis name for a 1-D mesh"),
        ({"fast": "yes"}, r"LaborArray: `fast` must be True or False, got str: 'yes'"),
        ({"max_in_flight": 64}, r"LaborArray: `max_in_flight` must be an int in \[1, 32\], got 64"),
    ],
)
def test_bad_settings_name_the_setting_and_the_allowed_values(settings, message):
    if settings.get("mesh") == MESH_4X2:
        settings = settings | {"mesh": build_mesh(None, {"data": 4, "model": 2})}
    with pytest.raises(ConfigError, match=message) as error:
        LaborArray(**settings)
    assert isinstance(error.value, LiamError)


def test_a_batch_placed_by_another_topology_is_refused(data, one, two_sharded):
    batch = one.put(data[:100])
    with pytest.raises(ConfigError, match="another topology"):
        two_sharded.sum(batch)


def test_bad_batches_get_shape_errors(two_sharded, data):
    with pytest.raises(ShapeError, match="same leading row axis"):
        two_sharded.sum((data[:10], data[:11]))
    with pytest.raises(ShapeError, match="needs more than ddof rows"):
        two_sharded.covariance(data[:1])
    with pytest.raises(ShapeError, match="covariance needs one"):
        two_sharded.covariance((data[:10], data[:10]))
    with pytest.raises(ConfigError, match="`fn` must be callable, got str: 'sum'"):
        two_sharded.reduce("sum", data[:10])


# --------------------------------------------------------------------------- documentation


@pytest.mark.parametrize(
    "module", ["_plan", "_tree", pytest.param("_labor_array", marks=pytest.mark.slow)]
)
def test_the_docstring_examples_run_and_print_what_they_say(module):
    import doctest
    import importlib

    failures, attempted = doctest.testmod(
        importlib.import_module(f"liam_core.alda.{module}"), optionflags=doctest.ELLIPSIS
    )
    assert attempted > 0
    assert failures == 0


PERSISTENT_CACHE_RUN = """
import os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
import jax, numpy as np
jax.config.update("jax_compilation_cache_dir", sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
from liam_core import digest
from liam_core._detect import StepBlock, fleet_center, fleet_units
from liam_core.alda import LaborArray

rng = np.random.default_rng(0)
values, valid = rng.normal(size=(4000, 8, 3)).astype(np.float32), rng.random((4000, 8)) > 0.2
labor = LaborArray(8)
block = StepBlock(0, values, valid, np.zeros((4000, 8), np.int64), None, None)
center = fleet_center(labor, block, fleet_units(np.zeros((8, 3)), np.ones((8, 3))))
print(digest(center), labor.compile_count)
"""


@pytest.mark.slow
def test_with_jax_persistent_cache_a_second_process_loads_and_runs_the_same_programs(tmp_path):
    # A program JAX loaded from its persistent cache is not reserialized (it would miss its
    # kernels when loaded onto another device: measured with this very program).
    from _helpers import run_python

    runs = [
        run_python("-c", [PERSISTENT_CACHE_RUN, str(tmp_path / "cache")], cwd=tmp_path)
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    (first, cold), (second, warm) = (run.stdout.split() for run in runs)
    assert first == second
    assert int(cold) == 1  # compiled once, loaded onto the 7 other devices
    # The first device's program comes from JAX's cache, so it is not reserialized: the second
    # device compiles (the cache never saw its program) and the 6 others load that compile.
    assert int(warm) == 2
