"""Device meshes: the one place that turns devices and named axes into a validated ``Mesh``.

:func:`build_mesh` takes devices (``None``, an int ``k``, or a sequence) and ``{axis: size}``
(``-1`` = the remaining devices, at most once) and checks them against the devices that
exist: device lists and counts, axis names and sizes, a mesh that would leave devices idle.
:class:`MeshSpec` is the same as typed data (the form of ``conf/mesh/*.yaml``), with the
ALDA executor, the data axis, the platform, how many CPU devices to simulate and the
process settings; every error names the field (``mesh.axes.model``, ...), whether the spec
came from Hydra or from Python.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jax
import numpy as np
from jax.sharding import AxisType, Mesh

from .._checks import allowed_values, check_choice, check_int, quote
from .._errors import ConfigError, ConfigTypeError

Executor = Literal["pmap", "shard_map"]
"""How ALDA runs a mesh: ``pmap`` (1-D meshes only) or ``shard_map`` (any mesh)."""

Platform = Literal["cpu", "gpu", "tpu"]
"""A JAX backend a mesh can be built on."""

Devices = int | Sequence[jax.Device] | None
"""``None`` (every device), an int ``k`` (the first ``k``), or a sequence of devices."""


def _platform_devices(platform: Platform | None, name: str) -> list[jax.Device]:
    try:
        return sorted(jax.devices(platform), key=lambda device: device.id)
    except RuntimeError as error:
        raise ConfigError(
            f"`{name}` must be a platform JAX can use here, got {quote(platform)}: {error}"
        ) from None


def check_devices(
    devices: Any, *, platform: Platform | None = None, prefix: str = ""
) -> list[jax.Device]:
    """The devices ``devices`` names, in mesh order, or a ``ConfigError`` naming ``devices``.

    ``None`` is every device of ``platform`` (JAX's default when ``None``) in id order, an
    int ``k`` the first ``k`` of them; a sequence must hold distinct devices.
    """
    if devices is None or (
        isinstance(devices, int | np.integer) and not isinstance(devices, bool | np.bool_)
    ):
        available = _platform_devices(platform, f"{prefix}platform")
        if devices is None:
            return available
        k = check_int(
            devices,
            "devices",
            maximum=len(available),
            why=f" (the first k of the {len(available)} {available[0].platform} devices)",
        )
        return available[:k]
    if isinstance(devices, Sequence) and all(isinstance(d, jax.Device) for d in devices):
        if not devices or len({d.id for d in devices}) != len(devices):
            raise ConfigError(
                f"`devices` must be a non-empty sequence of distinct devices, "
                f"got {quote(list(devices))}"
            )
        return list(devices)
    raise ConfigTypeError(
        f"`devices` must be None, an int or a sequence of devices, "
        f"got {type(devices).__name__}: {quote(devices)}"
    )


def check_axes(axes: Any, name: str = "axes") -> dict[str, int]:
    """``axes`` as ``{axis name: size}``: identifiers, sizes >= 1 or one ``-1`` (the rest)."""
    if not isinstance(axes, Mapping) or not axes:
        raise ConfigTypeError(
            f"`{name}` must map axis names to sizes, got {type(axes).__name__}: {quote(axes)}"
        )
    checked = {}
    for axis, size in axes.items():
        if not isinstance(axis, str) or not axis.isidentifier():
            raise ConfigError(f"`{name}` must name its axes with identifiers, got {quote(axis)}")
        if (
            isinstance(size, bool | np.bool_)
            or not isinstance(size, int | np.integer)
            or size != -1
        ):
            size = check_int(size, f"{name}.{axis}", why=" or -1 (the remaining devices)")
        checked[axis] = int(size)
    if list(checked.values()).count(-1) > 1:
        raise ConfigError(f"`{name}` must use -1 at most once, got {checked}")
    return checked


def resolve_axes(axes: Mapping[str, int], n_devices: int, name: str = "axes") -> dict[str, int]:
    """Concrete sizes of checked ``axes`` over exactly ``n_devices`` devices.

    A product smaller than the device count would silently leave devices idle (as
    ``jax.make_mesh`` does), so it is refused too.
    """
    known = math.prod(size for size in axes.values() if size != -1)
    if -1 in axes.values():
        if n_devices % known:
            raise ConfigError(
                f"`{name}` must have fixed sizes whose product divides the {n_devices} "
                f"devices, got {dict(axes)} (product {known})"
            )
        rest = n_devices // known
        return {axis: rest if size == -1 else size for axis, size in axes.items()}
    if known != n_devices:
        idle = " and would leave the rest idle" if known < n_devices else ""
        raise ConfigError(
            f"`{name}` must use exactly the {n_devices} devices present (sizes multiplying "
            f"to {n_devices}, or -1 for one axis), got {dict(axes)}, which needs {known}{idle}"
        )
    return dict(axes)


def build_mesh(
    devices: Devices = None,
    axes: Mapping[str, int] | None = None,
    *,
    platform: Platform | None = None,
    prefix: str = "",
) -> Mesh:
    """A validated ``jax.sharding.Mesh`` of ``devices`` laid out in ``axes``, in device order.

    Args:
        devices: ``None`` (every device of ``platform``, in id order), an int ``k`` (the
            first ``k`` of them), or a sequence of distinct devices.
        axes: ``{axis name: size}`` in mesh order; one size may be ``-1`` (the remaining
            devices); the sizes must use every device. Default ``{"data": -1}``.
        platform: ``"cpu"``, ``"gpu"``, ``"tpu"`` or ``None`` (JAX's default), for
            ``None`` or an int ``devices``.
        prefix: put before the argument names in messages (``"mesh."`` for a :class:`MeshSpec`).

    Returns:
        A mesh with ``Explicit`` axes whose devices, read in row-major order, are
        ``devices`` in the given order.

    Example:
        >>> from liam_core.mesh import build_mesh
        >>> dict(build_mesh(4, {"data": -1, "model": 2}).shape)
        {'data': 2, 'model': 2}
        >>> build_mesh(None, {"data": 3})
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigError: `axes` must use exactly the 8 devices present (sizes multiplying to 8, or -1 for one axis), got {'data': 3}, which needs 3 and would leave the rest idle
    """
    axes = check_axes({"data": -1} if axes is None else axes, f"{prefix}axes")
    if platform is not None:
        check_choice(platform, f"{prefix}platform", Platform)
    device_list = check_devices(devices, platform=platform, prefix=prefix)
    shape = resolve_axes(axes, len(device_list), f"{prefix}axes")
    grid = np.empty(len(device_list), dtype=object)
    grid[:] = device_list
    return Mesh(
        grid.reshape(tuple(shape.values())),
        tuple(shape),
        axis_types=(AxisType.Explicit,) * len(shape),
    )


def check_executor(executor: Any, axes: Mapping[str, int], name: str = "executor") -> Executor:
    """``executor`` if it is an :data:`Executor` that can run a mesh of ``axes``.

    ``pmap`` does not nest, so it runs 1-D meshes only.
    """
    check_choice(executor, name, Executor)
    if executor == "pmap" and len(axes) != 1:
        raise ConfigError(
            f"`{name}` must be 'shard_map' for the {len(axes)}-D mesh {dict(axes)} (pmap runs "
            f"1-D meshes only), got 'pmap'"
        )
    return executor


def check_data_axes(
    data_axis: Any, axis_names: Sequence[str], name: str = "data_axis"
) -> tuple[str, ...]:
    """``data_axis`` (one mesh axis name, or a tuple of them) as a tuple of axis names.

    Rows are spread over these axes; the others hold replicas.
    """
    if isinstance(data_axis, str):
        names: tuple[Any, ...] = (data_axis,)
    elif isinstance(data_axis, tuple | list) and data_axis:
        names = tuple(data_axis)
    else:
        raise ConfigTypeError(
            f"`{name}` must be a mesh axis name or a non-empty tuple of them, "
            f"got {type(data_axis).__name__}: {quote(data_axis)}"
        )
    for axis in names:
        check_choice(axis, name, tuple(axis_names))
    if len(set(names)) != len(names):
        raise ConfigError(f"`{name}` must name each mesh axis once, got {quote(data_axis)}")
    return names


@dataclasses.dataclass(frozen=True)
class ProcessSpec:
    """Multi-process settings; ``num_processes=1`` means a single process (no runtime started).

    ``None`` fields are taken from the environment as JAX detects it (SLURM and others).

    Args:
        coordinator_address: ``host:port`` of process 0.
        num_processes: how many processes take part (1: this one only).
        process_id: this process's id, below ``num_processes``.
        heartbeat_timeout_s: seconds without a heartbeat before a peer counts as lost.
        init_timeout_s: seconds to wait at start-up for every process to join the
            coordinator; then start-up fails with a :class:`~liam_core.DistributedError`.

    Example:
        >>> from liam_core.mesh import ProcessSpec
        >>> ProcessSpec("127.0.0.1:12355", num_processes=2, process_id=1).init_timeout_s
        60
    """

    coordinator_address: str | None = None
    num_processes: int | None = 1
    process_id: int | None = 0
    heartbeat_timeout_s: int = 10
    init_timeout_s: int = 60

    def __post_init__(self) -> None:
        if self.coordinator_address is not None and (
            not isinstance(self.coordinator_address, str) or not self.coordinator_address
        ):
            raise ConfigTypeError(
                "`mesh.processes.coordinator_address` must be 'host:port' or null, got "
                f"{type(self.coordinator_address).__name__}: {quote(self.coordinator_address)}"
            )
        if self.num_processes is not None:
            check_int(self.num_processes, "mesh.processes.num_processes")
        if self.process_id is not None:
            upper = None if self.num_processes is None else self.num_processes - 1
            check_int(
                self.process_id,
                "mesh.processes.process_id",
                minimum=0,
                maximum=upper,
                why="" if upper is None else " (below mesh.processes.num_processes)",
            )
        check_int(self.heartbeat_timeout_s, "mesh.processes.heartbeat_timeout_s")
        check_int(self.init_timeout_s, "mesh.processes.init_timeout_s", why=" (seconds)")

    @property
    def is_multiprocess(self) -> bool:
        """Whether this spec asks for JAX's multi-controller runtime."""
        return self.num_processes != 1


@dataclasses.dataclass(frozen=True)
class MeshSpec:
    """A device mesh for ALDA: named axes, executor, data axis, platform, processes.

    The chunk size is not a mesh setting: it belongs to the scheduler
    (:class:`liam_core.alda.SchedulerSpec`), since it fixes the bits on every mesh.

    Args:
        axes: ``{axis name: size}`` in mesh order; one size may be ``-1`` (the rest).
        executor: ``"pmap"`` (1-D meshes only) or ``"shard_map"``.
        data_axis: the axis rows are spread over (or a tuple of axes, in mesh order);
            the others hold replicas.
        platform: ``"cpu"``, ``"gpu"``, ``"tpu"`` or ``None`` for JAX's default.
        cpu_devices: how many CPU devices to simulate; applied before JAX starts its backend.
        processes: a :class:`ProcessSpec`.
        name: the config's name, for reports.

    Example:
        >>> from liam_core.mesh import MeshSpec
        >>> MeshSpec(axes={"data": 4, "model": -1}, executor="shard_map").resolve(8)
        {'data': 4, 'model': 2}
        >>> MeshSpec(axes={"data": 4, "model": 2}, executor="pmap")
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigError: `mesh.executor` must be 'shard_map' for the 2-D mesh {'data': 4, 'model': 2} (pmap runs 1-D meshes only), got 'pmap'
    """

    axes: Mapping[str, int] = dataclasses.field(default_factory=lambda: {"data": -1})
    executor: Executor = "pmap"
    data_axis: str | tuple[str, ...] = "data"
    platform: Platform | None = None
    cpu_devices: int | None = None
    processes: ProcessSpec = dataclasses.field(default_factory=ProcessSpec)
    name: str = "custom"

    def __post_init__(self) -> None:
        axes = check_axes(self.axes, "mesh.axes")
        object.__setattr__(self, "axes", axes)
        check_executor(self.executor, axes, "mesh.executor")
        data_axes = check_data_axes(self.data_axis, tuple(axes), "mesh.data_axis")
        if not isinstance(self.data_axis, str):
            object.__setattr__(self, "data_axis", data_axes)
        check_choice(self.platform, "mesh.platform", (*allowed_values(Platform), None))
        if self.cpu_devices is not None:
            check_int(self.cpu_devices, "mesh.cpu_devices")
            if self.platform not in (None, "cpu"):
                raise ConfigError(
                    f"`mesh.cpu_devices` must be null unless mesh.platform is 'cpu' or null "
                    f"(it simulates CPU devices), got {self.cpu_devices} with "
                    f"mesh.platform={self.platform!r}"
                )
        if not isinstance(self.processes, ProcessSpec):
            raise ConfigTypeError(
                f"`mesh.processes` must be a ProcessSpec, got {type(self.processes).__name__}"
            )
        if not isinstance(self.name, str) or not self.name:
            raise ConfigTypeError(
                f"`mesh.name` must be a non-empty string, got {type(self.name).__name__}: "
                f"{quote(self.name)}"
            )

    @property
    def data_axes(self) -> tuple[str, ...]:
        """The data axis as a tuple of axis names, in mesh order."""
        return (self.data_axis,) if isinstance(self.data_axis, str) else tuple(self.data_axis)

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> MeshSpec:
        """Build a spec from plain data (a resolved Hydra config), naming unknown fields."""
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - fields)
        if unknown:
            # The format of liam_core.config for every group's unknown fields.
            raise ConfigError(f"mesh has unknown fields {unknown}; allowed: {sorted(fields)}")
        settings = dict(settings)
        processes = settings.pop("processes", None)
        processes = {} if processes is None else processes
        if not isinstance(processes, ProcessSpec):
            allowed = {field.name for field in dataclasses.fields(ProcessSpec)}
            if not isinstance(processes, Mapping):
                raise ConfigTypeError(
                    f"`mesh.processes` must be a mapping of {sorted(allowed)}, got "
                    f"{type(processes).__name__}: {quote(processes)}"
                )
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
        return resolve_axes(self.axes, n_devices, "mesh.axes")

    def devices(self) -> list[jax.Device]:
        """The devices of this spec's platform, in id order (all processes)."""
        return _platform_devices(self.platform, "mesh.platform")

    def make_mesh(self) -> Mesh:
        """The ``jax.sharding.Mesh`` of this spec over every device, in id (mesh) order.

        Example:
            >>> from liam_core.mesh import MeshSpec
            >>> mesh = MeshSpec(axes={"data": 4, "model": 2}, executor="shard_map").make_mesh()
            >>> dict(mesh.shape), mesh.devices[1, 0].id
            ({'data': 4, 'model': 2}, 2)
        """
        return build_mesh(None, self.axes, platform=self.platform, prefix="mesh.")


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
