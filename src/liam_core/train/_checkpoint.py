"""Checkpoints with orbax: the numbers of a :class:`TrainState`, the newest ``keep`` of them.

A checkpoint is a step folder written by orbax's ``CheckpointManager``: the arrays in
tensorstore's OCDBT format (``state/``) and a JSON document (``meta/``) with the counters,
the name, shape and dtype of every array, and the sha256 digest of all of them. Nothing is
pickled. Orbax writes a step into a temporary folder and renames it when it is complete, so a
run killed while saving leaves no half checkpoint (the temporary folder is removed the next
time the folder is opened).

Once orbax has committed a step, a manifest (``liam-manifest.json``, written atomically)
records the size and sha256 of every file in it; a checkpoint counts only once its manifest
exists. Restoring checks a checkpoint before using it: every file must match the manifest
(so a damaged file is found before any reader opens it), the arrays must have the shapes and
dtypes the model and optimizer expect, and together they must reproduce the digest saved
with them. A corrupt or partial newest checkpoint is reported (a :class:`CheckpointError` in
the log and in the result) and moved aside to ``<folder>-corrupt/``, and the previous one is
used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_int
from .._digest import digest
from .._errors import CheckpointError, ConfigError
from .._evidence import write_atomically
from ._state import TrainState, leaf_names

LOGGER = logging.getLogger("liam_core.train")
FORMAT = "liam-core/train-checkpoint/1"
MANIFEST = "liam-manifest.json"
# What a damaged checkpoint raises from orbax, tensorstore or json: missing items
# (KeyError), undecodable JSON or data (ValueError), missing or unreadable files (OSError).
_READ_ERRORS = (OSError, ValueError, LookupError, TypeError, RuntimeError)


@dataclasses.dataclass(frozen=True)
class Restored:
    """What :meth:`Checkpoints.restore_latest` found.

    Attributes:
        state: the restored state, or ``None`` when the folder holds no checkpoint.
        step: its step (``None`` without a checkpoint).
        skipped: the newer checkpoints that could not be used, newest first, as errors.
    """

    state: TrainState | None
    step: int | None
    skipped: tuple[CheckpointError, ...] = ()


def _shapes(tree: Mapping[str, Any]) -> dict[str, list[list[Any]]]:
    return {
        group: [
            [list(np.shape(a)), np.asarray(a).dtype.str] for _, a in sorted(tree[group].items())
        ]
        for group in ("model", "opt_state")
    }


def _file_digests(step_dir: Path) -> dict[str, list[Any]]:
    """``{relative path: [size, sha256]}`` of every file of a step folder but the manifest."""
    files = {}
    for path in sorted(step_dir.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            data = path.read_bytes()
            files[path.relative_to(step_dir).as_posix()] = [
                len(data),
                hashlib.sha256(data).hexdigest(),
            ]
    return files


class Checkpoints:
    """The checkpoints of one run in ``directory``: save, list, restore with fallback.

    Args:
        directory: the run's checkpoint folder (created if missing).
        keep: how many of the newest checkpoints to keep, >= 1.

    Example:
        >>> import tempfile, jax, numpy as np, optax
        >>> from liam_core.models import Autoencoder
        >>> from liam_core.train import Checkpoints, TrainState
        >>> model = Autoencoder(3, width=4, key=jax.random.key(0))
        >>> state = TrainState(model, optax.sgd(0.1).init(model), step=7, position=7,
        ...                    rng=np.zeros(2, np.uint32))
        >>> with Checkpoints(tempfile.mkdtemp(), keep=2) as checkpoints:
        ...     _ = checkpoints.save(state)
        ...     restored = checkpoints.restore_latest(state)
        >>> restored.step, restored.state.digest() == state.digest()
        (7, True)
    """

    def __init__(self, directory: str | os.PathLike[str], *, keep: int = 3) -> None:
        import orbax.checkpoint as ocp

        self.keep = check_int(keep, "train.keep_checkpoints")
        self.directory = Path(directory).absolute()
        self._ocp = ocp
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep,
                create=True,
                enable_async_checkpointing=False,
                cleanup_tmp_directories=True,
            ),
        )

    def __enter__(self) -> Checkpoints:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Wait for pending writes and release orbax's resources."""
        self._manager.close()

    @property
    def steps(self) -> list[int]:
        """The steps of the committed checkpoints, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, state: TrainState, *, metadata: Mapping[str, Any] | None = None) -> Path:
        """Write ``state`` as the checkpoint of step ``state.step``; drop the oldest past ``keep``.

        Args:
            state: the state to save.
            metadata: JSON-ready facts to keep beside it (the model's settings, ...).

        Returns:
            The step folder.
        """
        ocp = self._ocp
        tree = state.arrays()
        meta = {
            "format": FORMAT,
            "step": state.step,
            "position": state.position,
            "digest": digest(tree),
            "arrays": _shapes(tree),
            "names": leaf_names(state),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **(dict(metadata) if metadata else {}),
        }
        if state.step in self._manager.all_steps():
            raise CheckpointError(
                f"{self.directory} already holds a checkpoint of step {state.step}"
            )
        self._manager.save(
            state.step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)
            ),
        )
        self._manager.wait_until_finished()
        step_dir = self.directory / str(state.step)
        manifest = {"format": FORMAT, "step": state.step, "files": _file_digests(step_dir)}
        write_atomically(step_dir / MANIFEST, json.dumps(manifest, indent=1).encode())
        return step_dir

    def verify(self, step: int) -> None:
        """Check every file of checkpoint ``step`` against its manifest.

        Raises:
            CheckpointError: the manifest is missing (the save did not finish) or unreadable,
                or a file is missing, has another size or other bytes.
        """
        step_dir = self.directory / str(step)
        try:
            manifest = json.loads((step_dir / MANIFEST).read_text())
            expected = manifest["files"]
        except FileNotFoundError:
            raise self._error(
                step, f"it has no {MANIFEST}: its save did not finish", None
            ) from None
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise self._error(step, f"its {MANIFEST} cannot be read", error) from error
        found = _file_digests(step_dir)
        for name, (size, sha256) in sorted(expected.items()):
            if name not in found:
                raise self._error(step, f"file {name} is missing", None)
            if found[name][0] != size:
                raise self._error(
                    step, f"file {name} has {found[name][0]} bytes, {size} were written", None
                )
            if found[name][1] != sha256:
                raise self._error(step, f"file {name} does not hold the bytes written", None)

    def metadata(self, step: int) -> dict[str, Any]:
        """The JSON metadata of checkpoint ``step`` (raises :class:`CheckpointError`)."""
        ocp = self._ocp
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
            )
            meta = restored.meta
        except _READ_ERRORS as error:
            raise self._error(step, "its metadata cannot be read", error) from error
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise self._error(step, f"its metadata is not a {FORMAT} document", None)
        return meta

    def restore(
        self,
        template: TrainState,
        step: int,
        *,
        check: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> TrainState:
        """Restore checkpoint ``step`` into the structure of ``template``.

        Args:
            template: a state of the model and optimizer the arrays are restored into.
            step: the checkpoint's step.
            check: called with the step and the checkpoint's metadata once the files are
                verified, before any array is read; it raises to refuse the checkpoint
                (the run's fingerprint is checked this way).

        Raises:
            CheckpointError: the checkpoint is corrupt, partial or unreadable.
            ConfigError: it is intact but holds another model or optimizer.
        """
        ocp = self._ocp
        self.verify(step)
        meta = self.metadata(step)
        if check is not None:
            check(step, meta)
        expected = template.arrays()
        if meta.get("arrays") != _shapes(expected):
            raise ConfigError(
                f"the checkpoint of step {step} in {self.directory} was written by another "
                f"model or optimizer: its arrays are {_describe(meta.get('arrays'))}, this run "
                f"expects {_describe(_shapes(expected))}. Train in a new output folder or "
                "restore the settings of that run"
            )
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(expected))
            )
            arrays = restored.state
        except _READ_ERRORS as error:
            raise self._error(step, "its arrays cannot be read", error) from error
        if digest(arrays) != meta.get("digest"):
            raise self._error(step, "its arrays do not match the digest written with them", None)
        return template.with_arrays(arrays)

    def restore_latest(
        self,
        template: TrainState,
        *,
        check: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> Restored:
        """Restore the newest usable checkpoint, falling back past corrupt ones.

        ``check`` is passed to :meth:`restore`; an error it raises ends the search (an intact
        checkpoint of another run is refused, not skipped).

        Each checkpoint that cannot be used is logged (logger ``liam_core.train``) and
        returned in :attr:`Restored.skipped`; once an older one has been restored, the
        unusable ones are moved to ``<directory>-corrupt/`` so the run can save those steps
        again.

        Raises:
            CheckpointError: checkpoints exist but none of them can be used (nothing is moved).
            ConfigError: the newest intact checkpoint holds another model or optimizer.
        """
        skipped: list[CheckpointError] = []
        for step in sorted(self.steps, reverse=True):
            try:
                state = self.restore(template, step, check=check)
            except CheckpointError as error:
                LOGGER.warning("%s; trying the previous checkpoint", error)
                skipped.append(error)
                continue
            for error in skipped:
                if error.step is not None:
                    self._quarantine(error.step)
            return Restored(state=state, step=step, skipped=tuple(skipped))
        if skipped:
            details = "; ".join(str(error) for error in skipped)
            raise CheckpointError(
                f"no usable checkpoint in {self.directory}: {details}. Set train.resume=never "
                "to train from scratch (the folder is set aside, not deleted)"
            )
        return Restored(state=None, step=None)

    def _error(self, step: int, what: str, cause: BaseException | None) -> CheckpointError:
        reason = f": {type(cause).__name__}: {str(cause).splitlines()[0][:300]}" if cause else ""
        return CheckpointError(
            f"checkpoint of step {step} in {self.directory} is corrupt or partial ({what}{reason})",
            step=step,
        )

    def _quarantine(self, step: int) -> None:
        source = self.directory / str(step)
        target_dir = self.directory.parent / f"{self.directory.name}-corrupt"
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / str(step)
        n = 1
        while target.exists():
            target, n = target_dir / f"{step}.{n}", n + 1
        os.replace(source, target)
        LOGGER.warning("moved the unusable checkpoint of step %d to %s", step, target)
        self._manager.reload()


def _describe(shapes: Any) -> str:
    """``model [[8, 3], [3]], opt_state [...]``: the shapes of each group of arrays."""
    if not isinstance(shapes, dict):
        return repr(shapes)
    return ", ".join(
        f"{group} {json.dumps([item[0] for item in items])}" for group, items in shapes.items()
    )
