"""The public API: what ``import liam_core`` gives and what it leaves alone."""

from __future__ import annotations

import json
from importlib import metadata

from _helpers import run_python

import liam_core

IMPORT_AND_WATCH = """
import json
import jax.monitoring

registered = []
for name in dir(jax.monitoring):
    if name.startswith("register_"):
        original = getattr(jax.monitoring, name)
        def watch(*args, _name=name, _original=original, **kwargs):
            registered.append(_name)
            return _original(*args, **kwargs)
        setattr(jax.monitoring, name, watch)

import liam_core
before = list(registered)
from liam_core.testing import CompileCounter
with CompileCounter():
    pass
print(json.dumps({"on_import": before, "on_first_counter": registered[len(before):]}))
"""


def test_importing_liam_core_installs_no_listener_until_compiles_are_counted(tmp_path):
    result = run_python("-c", [IMPORT_AND_WATCH], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {
        "on_import": [],
        "on_first_counter": ["register_event_duration_secs_listener"],
    }


def test_the_version_comes_from_the_package_metadata():
    assert liam_core.__version__ == metadata.version("liam-core")


def test_the_compile_counter_lives_in_the_testing_module_only():
    assert not hasattr(liam_core, "CompileCounter")
    from liam_core.testing import CompileCounter

    assert CompileCounter().count == 0


def test_every_error_is_a_liam_error_and_a_builtin():
    errors = [
        value
        for name, value in vars(liam_core).items()
        if isinstance(value, type) and issubclass(value, Exception) and name.endswith("Error")
    ]
    assert liam_core.CheckpointError in errors and liam_core.ConfigTypeError in errors
    for error in set(errors) - {liam_core.LiamError}:
        assert issubclass(error, liam_core.LiamError)
        builtins = [b for b in error.__mro__ if b.__module__ == "builtins" and b is not Exception]
        assert set(builtins) - {BaseException, object}, error  # ValueError, TypeError, ...
    assert issubclass(liam_core.ConfigTypeError, liam_core.ConfigError)
    assert issubclass(liam_core.ConfigTypeError, TypeError)
