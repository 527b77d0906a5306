"""MeshSpec: topologies as typed data, with one clear message naming the field at fault."""

from __future__ import annotations

import jax
import pytest

from liam_core import ConfigError
from liam_core.mesh import MeshSpec, ProcessSpec, configure_backend


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
    assert [d.id for d in mesh.devices.flat] == sorted(d.id for d in jax.devices())


@pytest.mark.parametrize(
    ("settings", "n_devices", "match"),
    [
        ({"axes": {"data": 3}}, 8, r"mesh.axes .* uses 3 of the 8 devices"),
        ({"axes": {"data": 16}}, 8, r"needs 16 devices but only 8"),
        ({"axes": {"data": -1, "model": 3}, "executor": "shard_map"}, 8, "does not divide"),
        ({"axes": {"data": -1, "model": -1}, "executor": "shard_map"}, 8, "-1 at most once"),
        ({"axes": {"data": 0}}, 8, r"mesh.axes.data must be a positive int or -1"),
        ({"axes": {"data": 4, "model": 2}, "executor": "pmap"}, 8, "pmap' runs 1-D meshes"),
        ({"executor": "vmap"}, 8, r"mesh.executor must be one of \('pmap', 'shard_map'\)"),
        ({"chunk_size": 0}, 8, r"mesh.chunk_size must be an int >= 1"),
        ({"chunk_size": "256"}, 8, r"mesh.chunk_size"),
        ({"data_axis": "batch"}, 8, r"mesh.data_axis='batch' is not one of"),
        ({"platform": "quantum"}, 8, r"mesh.platform must be one of"),
        ({"cpu_devices": 0}, 8, r"mesh.cpu_devices must be an int >= 1"),
        ({"platform": "gpu", "cpu_devices": 2}, 8, r"mesh.cpu_devices simulates CPU"),
        ({"axes": {}}, 8, r"mesh.axes must map axis names"),
    ],
)
def test_invalid_specs_name_the_field(settings, n_devices, match):
    with pytest.raises(ConfigError, match=match):
        MeshSpec(**settings).resolve(n_devices)


@pytest.mark.parametrize(
    ("processes", "match"),
    [
        ({"num_processes": 0}, "num_processes"),
        ({"num_processes": 2, "process_id": 2}, "process_id=2 must be below"),
        ({"heartbeat_timeout_s": 0}, "heartbeat_timeout_s"),
    ],
)
def test_invalid_process_settings_name_the_field(processes, match):
    with pytest.raises(ConfigError, match=match):
        ProcessSpec(**processes)


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
