"""MeshSpec: topologies as typed data, with one clear message naming the field at fault."""

from __future__ import annotations

import jax
import pytest

from liam_core import ConfigError, InvalidTypeError
from liam_core.mesh import MeshSpec, ProcessSpec, build_mesh, configure_backend


@pytest.mark.parametrize(
    ("axes", "executor", "expected"),
    [
        ({"data": -1}, "pmap", {"data": 8}),
        ({"data": 8}, "pmap", {"data": 8}),
        ({"data": 4, "model": 2}, "shard_map", {"data": 4, "model": 2}),
        ({"data": -1, "model": 2}, "shard_map", {"data": 4, "model": 2}),
        ({"data": 2, "model": -1}, "shard_map", {"data": 2, "model": 4}),
    ],
)
def test_axis_sizes_resolve_against_the_devices(axes, executor, expected):
    assert MeshSpec(axes=axes, executor=executor).resolve(8) == expected


def test_a_spec_builds_an_explicit_mesh_over_every_device_in_id_order():
    mesh = MeshSpec(axes={"data": 4, "model": 2}, executor="shard_map").make_mesh()
    assert dict(mesh.shape) == {"data": 4, "model": 2}
    assert mesh.axis_types == (jax.sharding.AxisType.Explicit,) * 2
    assert [d.id for d in mesh.devices.flat] == sorted(d.id for d in jax.devices())


def test_a_spec_and_build_mesh_give_the_same_mesh():
    spec = MeshSpec(axes={"data": -1, "model": 2}, executor="shard_map")
    assert spec.make_mesh() == build_mesh(None, {"data": -1, "model": 2})


@pytest.mark.parametrize(
    ("devices", "axes", "shape", "ids"),
    [
        (None, None, {"data": 8}, list(range(8))),
        (3, {"rows": -1}, {"rows": 3}, [0, 1, 2]),
        (4, {"data": 2, "model": 2}, {"data": 2, "model": 2}, [0, 1, 2, 3]),
        ("reversed", {"data": -1}, {"data": 8}, list(range(7, -1, -1))),
    ],
)
def test_build_mesh_lays_out_the_devices_in_the_given_order(devices, axes, shape, ids):
    if devices == "reversed":
        devices = jax.devices()[::-1]
    mesh = build_mesh(devices, axes)
    assert dict(mesh.shape) == shape
    assert [d.id for d in mesh.devices.flat] == ids


@pytest.mark.parametrize(
    ("devices", "axes", "error", "match"),
    [
        (9, None, ConfigError, r"`devices` must be an int in \[1, 8\] \(the first k of the 8 cpu"),
        (0, None, ConfigError, r"`devices` must be an int in \[1, 8\]"),
        (True, None, InvalidTypeError, r"`devices` must be None, an int or a sequence of devices"),
        ([], None, ConfigError, r"`devices` must be a non-empty sequence of distinct devices"),
        ("dup", None, ConfigError, r"`devices` must be a non-empty sequence of distinct devices"),
        (4, {"data": 3}, ConfigError, r"`axes` must use exactly the 4 devices present"),
        (4, {"data": -1, "model": 3}, ConfigError, r"`axes` must have fixed sizes whose product"),
    ],
)
def test_build_mesh_names_the_argument_at_fault(devices, axes, error, match):
    if devices == "dup":
        devices = [jax.devices()[0]] * 2
    with pytest.raises(error, match=match):
        build_mesh(devices, axes)


@pytest.mark.parametrize(
    ("settings", "n_devices", "match"),
    [
        (
            {"axes": {"data": 3}},
            8,
            r"`mesh.axes` must use exactly the 8 devices .* needs 3 and would leave the rest idle",
        ),
        ({"axes": {"data": 16}}, 8, r"`mesh.axes` must use exactly the 8 devices .* needs 16$"),
        (
            {"axes": {"data": -1, "model": 3}, "executor": "shard_map"},
            8,
            r"`mesh.axes` must have fixed sizes whose product divides the 8 devices, .*\(product 3\)",
        ),
        (
            {"axes": {"data": -1, "model": -1}, "executor": "shard_map"},
            8,
            r"`mesh.axes` must use -1 at most once",
        ),
        (
            {"axes": {"data": 0}},
            8,
            r"`mesh.axes.data` must be an int >= 1 or -1 \(the remaining devices\), got 0",
        ),
        (
            {"axes": {"data": 2.0}},
            8,
            r"`mesh.axes.data` must be an int >= 1 or -1 .*, got float: 2.0",
        ),
        (
            {"axes": {"data x": 8}},
            8,
            r"`mesh.axes` must name its axes with identifiers, got 'data x'",
        ),
        (
            {"axes": {"data": 4, "model": 2}, "executor": "pmap"},
            8,
            r"`mesh.executor` must be 'shard_map' for the 2-D mesh .*\(pmap runs 1-D meshes only\)",
        ),
        (
            {"executor": "vmap"},
            8,
            r"`mesh.executor` must be one of 'pmap', 'shard_map', got 'vmap'",
        ),
        ({"data_axis": "batch"}, 8, r"`mesh.data_axis` must be one of 'data', got 'batch'"),
        ({"platform": "quantum"}, 8, r"`mesh.platform` must be one of 'cpu', 'gpu', 'tpu', None"),
        ({"cpu_devices": 0}, 8, r"`mesh.cpu_devices` must be an int >= 1, got 0"),
        (
            {"platform": "gpu", "cpu_devices": 2},
            8,
            r"`mesh.cpu_devices` must be null unless mesh.platform is 'cpu'",
        ),
        ({"axes": {}}, 8, r"`mesh.axes` must map axis names to sizes"),
    ],
)
def test_invalid_specs_name_the_field(settings, n_devices, match):
    with pytest.raises(ConfigError, match=match):
        MeshSpec(**settings).resolve(n_devices)


@pytest.mark.parametrize(
    ("processes", "match"),
    [
        ({"num_processes": 0}, r"`mesh.processes.num_processes` must be an int >= 1, got 0"),
        (
            {"num_processes": 2, "process_id": 2},
            r"`mesh.processes.process_id` must be an int in \[0, 1\] \(below mesh.processes.num_processes\)",
        ),
        ({"heartbeat_timeout_s": 0}, r"`mesh.processes.heartbeat_timeout_s` must be an int >= 1"),
        (
            {"init_timeout_s": 0},
            r"`mesh.processes.init_timeout_s` must be an int >= 1 \(seconds\), got 0",
        ),
    ],
)
def test_invalid_process_settings_name_the_field(processes, match):
    with pytest.raises(ConfigError, match=match):
        ProcessSpec(**processes)


def test_a_data_axis_may_be_several_axes_given_as_a_list():
    spec = MeshSpec.from_dict(
        {"axes": {"data": 4, "model": 2}, "executor": "shard_map", "data_axis": ["data", "model"]}
    )
    assert spec.data_axis == ("data", "model") == spec.data_axes
    assert MeshSpec().data_axes == ("data",)


def test_from_dict_names_unknown_fields_at_both_levels():
    with pytest.raises(ConfigError, match=r"mesh has unknown fields \['axis'\]"):
        MeshSpec.from_dict({"axis": {"data": 1}})
    with pytest.raises(ConfigError, match=r"mesh.processes has unknown fields \['pid'\]"):
        MeshSpec.from_dict({"processes": {"pid": 1}})


def test_the_same_error_comes_from_python_and_from_a_dict():
    from_python = from_dict = None
    try:
        MeshSpec(axes={"data": 3}).resolve(8)
    except ConfigError as error:
        from_python = str(error)
    try:
        MeshSpec.from_dict({"axes": {"data": 3}}).resolve(8)
    except ConfigError as error:
        from_dict = str(error)
    assert from_python == from_dict is not None


def test_the_simulated_device_count_cannot_change_once_jax_runs():
    configure_backend(MeshSpec(cpu_devices=jax.local_device_count()))  # the same count: fine
    with pytest.raises(ConfigError, match="already started with 8 CPU devices"):
        configure_backend(MeshSpec(cpu_devices=3))


def test_processes_wait_a_minute_for_their_peers_by_default_and_the_config_can_say_less():
    assert ProcessSpec().init_timeout_s == 60
    spec = MeshSpec.from_dict({"processes": {"num_processes": 2, "init_timeout_s": 5}})
    assert spec.processes.init_timeout_s == 5
