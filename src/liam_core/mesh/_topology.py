"""``MeshSpec``: a device-mesh topology as typed, validated data (the form of ``conf/mesh/*.yaml``).

A spec names its axes and their sizes (``-1`` = the remaining devices, at most once), the
ALDA executor, the chunk size, the platform, how many CPU devices to simulate, and the
process settings. :meth:`MeshSpec.resolve` checks it against the devices that exist and
gives the concrete axis sizes; every error names the field (``mesh.axes.model``, ...),
whether the spec came from Hydra or from Python.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax

from .._errors import ConfigError

EXECUTORS = ("pmap", "shard_map")
PLATFORMS = ("cpu", "gpu", "tpu")


@dataclasses.dataclass(frozen=True)
class ProcessSpec:
    """Multi-process settings; ``num_processes=1`` means a single process (no runtime started).

    ``None`` fields are taken from the environment as JAX detects it (SLURM and others).
    """

    coordinator_address: str | None = None
    num_processes: int | None = 1
    process_id: int | None = 0
    heartbeat_timeout_s: int = 10

    def __post_init__(self) -> None:
        if self.num_processes is not None:
            _check_int(self.num_processes, "mesh.processes.num_processes", low=1)
        if self.process_id is not None:
            _check_int(self.process_id, "mesh.processes.process_id", low=0)
            if self.num_processes is not None and self.process_id >= self.num_processes:
                raise ConfigError(
                    f"mesh.processes.process_id={self.process_id} must be below "
                    f"mesh.processes.num_processes={self.num_processes}"
                )
        _check_int(self.heartbeat_timeout_s, "mesh.processes.heartbeat_timeout_s", low=1)

    @property
    def is_multiprocess(self) -> bool:
        """Whether this spec asks for JAX's multi-controller runtime."""
        return self.num_processes != 1


@dataclasses.dataclass(frozen=True)
class MeshSpec:
    """A device mesh for ALDA: named axes, executor, chunk size, platform, processes.

    Args:
        axes: ``{axis name: size}`` in mesh order; one size may be ``-1`` (the rest).
        executor: ``"pmap"`` (1-D meshes only) or ``"shard_map"``.
        chunk_size: rows per ALDA chunk (fixes the bits; see ``liam_core.alda``).
        data_axis: the axis rows are spread over; others hold replicas.
        platform: ``"cpu"``, ``"gpu"``, ``"tpu"`` or ``None`` for JAX's default.
        cpu_devices: how many CPU devices to simulate; applied before JAX starts its backend.
        processes: a :class:`ProcessSpec`.
        name: the config's name, for reports.

    Example:
        >>> from liam_core.mesh import MeshSpec
        >>> MeshSpec(axes={"data": 4, "model": -1}, executor="shard_map").resolve(8)
        {'data': 4, 'model': 2}
        >>> MeshSpec(axes={"data": 4, "model": 2}, executor="pmap").resolve(8)
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigError: mesh.executor='pmap' runs 1-D meshes only, but mesh.axes has 2 axes {'data': 4, 'model': 2}; use executor='shard_map'
    """

    axes: Mapping[str, int] = dataclasses.field(default_factory=lambda: {"data": -1})
    executor: str = "pmap"
    chunk_size: int = 256
    data_axis: str = "data"
    platform: str | None = None
    cpu_devices: int | None = None
    processes: ProcessSpec = dataclasses.field(default_factory=ProcessSpec)
    name: str = "custom"

    def __post_init__(self) -> None:
        if not isinstance(self.axes, Mapping) or not self.axes:
            raise ConfigError(f"mesh.axes must map axis names to sizes, got {self.axes!r}")
        axes = {}
        for axis, size in self.axes.items():
            if not isinstance(axis, str) or not axis.isidentifier():
                raise ConfigError(f"mesh.axes: axis names must be identifiers, got {axis!r}")
            if isinstance(size, bool) or not isinstance(size, int) or (size < 1 and size != -1):
                raise ConfigError(
                    f"mesh.axes.{axis} must be a positive int or -1 (the remaining devices), "
                    f"got {size!r}"
                )
            axes[axis] = size
        if list(axes.values()).count(-1) > 1:
            raise ConfigError(f"mesh.axes may use -1 at most once, got {axes}")
        object.__setattr__(self, "axes", axes)
        if self.executor not in EXECUTORS:
            raise ConfigError(f"mesh.executor must be one of {EXECUTORS}, got {self.executor!r}")
        if self.executor == "pmap" and len(axes) > 1:
            raise ConfigError(
                f"mesh.executor='pmap' runs 1-D meshes only, but mesh.axes has {len(axes)} "
                f"axes {axes}; use executor='shard_map'"
            )
        _check_int(self.chunk_size, "mesh.chunk_size", low=1)
        if self.data_axis not in axes:
            raise ConfigError(
                f"mesh.data_axis={self.data_axis!r} is not one of mesh.axes {list(axes)}"
            )
        if self.platform is not None and self.platform not in PLATFORMS:
            raise ConfigError(
                f"mesh.platform must be one of {PLATFORMS} or null, got {self.platform!r}"
            )
        if self.cpu_devices is not None:
            _check_int(self.cpu_devices, "mesh.cpu_devices", low=1)
            if self.platform not in (None, "cpu"):
                raise ConfigError(
                    f"mesh.cpu_devices simulates CPU devices, but mesh.platform={self.platform!r}"
                )
        if not isinstance(self.processes, ProcessSpec):
            raise ConfigError(
                f"mesh.processes must be a ProcessSpec, got {type(self.processes).__name__}"
            )

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> MeshSpec:
        """Build a spec from plain data (a resolved Hydra config), naming unknown fields."""
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - fields)
        if unknown:
            raise ConfigError(f"mesh has unknown fields {unknown}; allowed: {sorted(fields)}")
        settings = dict(settings)
        processes = settings.pop("processes", None) or {}
        if not isinstance(processes, ProcessSpec):
            allowed = {field.name for field in dataclasses.fields(ProcessSpec)}
            unknown = sorted(set(processes) - allowed)
            if unknown:
                raise ConfigError(
                    f"mesh.processes has unknown fields {unknown}; allowed: {sorted(allowed)}"
                )
            processes = ProcessSpec(**processes)
        return cls(**settings, processes=processes)

    def resolve(self, n_devices: int) -> dict[str, int]:
        """Concrete axis sizes for ``n_devices`` devices, or a ``ConfigError`` naming the field.

        The mesh must use every device: a product smaller than the device count would
        silently leave devices idle (as ``jax.make_mesh`` does), so it is refused too.
        """
        known = math.prod(size for size in self.axes.values() if size != -1)
        if -1 in self.axes.values():
            if n_devices % known:
                raise ConfigError(
                    f"mesh.axes {self.axes}: the fixed sizes multiply to {known}, which does not "
                    f"divide the {n_devices} devices"
                )
            rest = n_devices // known
            return {axis: rest if size == -1 else size for axis, size in self.axes.items()}
        if known > n_devices:
            raise ConfigError(
                f"mesh.axes {self.axes} needs {known} devices but only {n_devices} are present"
            )
        if known != n_devices:
            raise ConfigError(
                f"mesh.axes {self.axes} uses {known} of the {n_devices} devices present and "
                "would leave the rest idle; make the sizes multiply to the device count "
                "(or use -1 for one axis)"
            )
        return dict(self.axes)

    def devices(self) -> list[jax.Device]:
        """The devices of this spec's platform, in id order (all processes)."""
        try:
            return sorted(jax.devices(self.platform), key=lambda device: device.id)
        except RuntimeError as error:
            raise ConfigError(
                f"mesh.platform={self.platform!r} is not available: {error}"
            ) from None

    def make_mesh(self) -> jax.sharding.Mesh:
        """The ``jax.sharding.Mesh`` of this spec over every device, in id (mesh) order."""
        devices = self.devices()
        shape = self.resolve(len(devices))
        return jax.make_mesh(
            tuple(shape.values()),
            tuple(shape),
            axis_types=(jax.sharding.AxisType.Explicit,) * len(shape),
            devices=devices,
        )


def configure_backend(spec: MeshSpec) -> None:
    """Pick ``spec.platform`` and simulate ``spec.cpu_devices`` CPU devices.

    Must run before JAX starts its backend; raises ``ConfigError`` if the backend already
    runs with another CPU device count.
    """
    if spec.platform is not None:
        try:
            jax.config.update("jax_platforms", spec.platform)
        except RuntimeError:
            pass  # the backend already runs: devices() then says whether the platform exists
    if spec.cpu_devices is None:
        return
    try:
        jax.config.update("jax_num_cpu_devices", spec.cpu_devices)
    except RuntimeError:
        present = jax.local_device_count("cpu")
        if present != spec.cpu_devices:
            raise ConfigError(
                f"mesh.cpu_devices={spec.cpu_devices} cannot be applied: JAX already started "
                f"with {present} CPU devices. Set it before the first JAX computation "
                "(each device count needs its own process)"
            ) from None


def _check_int(value: Any, field: str, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{field} must be an int >= {low}, got {value!r}")
