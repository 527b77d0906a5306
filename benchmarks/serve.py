"""Serving latency and throughput: the in-process Predictor and the inference server, side by side.

Run (about two minutes on 2 cores; quote the medians, the machine is noisy):

    .venv/bin/python benchmarks/serve.py            # full: writes benchmarks/results/serve.json
    .venv/bin/python benchmarks/serve.py --quick    # tiny counts, a smoke test (writes nothing
                                                    # unless --out is given)
    .venv/bin/python benchmarks/serve.py --no-mlserver   # without the MLServer contender

(The first run also builds MLServer's venv, a few minutes; later runs reuse it.)

Two models, exported as bundles the way a training run exports them (``export_bundle``):

* ``mlp_64x256x256x8``: ``make_model("mlp_classifier", in_features=64, n_classes=8, width=256,
  depth=2)`` through ``ShiftClassification.servable`` (identity standardization: mean 0,
  scale 1; ``servable`` takes any ``n_classes``, only training insists on 3);
* ``autoencoder_8x32x3``: ``make_model("autoencoder", in_features=8, width=32, latent=3)``
  through ``AnomalyDetection.servable`` (threshold 2).

Measured, one contender at a time (no server runs while another is measured):

1. In process, batch 1, in interleaved rounds: ``Predictor.predict(x)`` (checks the rows),
   ``Predictor.run(rows)`` (rows already checked), and a plain ``jax.jit`` of the same
   computation closing over the model (``jax.vmap(model.predict_proba)`` + argmax, or
   ``jax.vmap(model.anomaly_score)`` + threshold) followed by ``np.asarray`` of each output.
2. Over HTTP on 127.0.0.1, keep-alive, concurrency 1, the MLP: ``python -m liam_core serve``
   (a subprocess serving a temporary repository where the bundle is published as ``ops``),
   ``POST /v2/models/ops/infer`` with a JSON body and with Triton's binary tensors
   (``Inference-Header-Content-Length``), from a raw-socket client (one request written with
   one ``sendall``, the response read up to its ``Content-Length``); for reference the same
   JSON request from ``http.client.HTTPConnection`` and ``GET /v2/health/live`` (HTTP alone,
   no model). Server and client CPU time per request come from ``/proc``.
3. Throughput at concurrency 64: 64 keep-alive connections from an asyncio client (uvloop,
   raw ``asyncio.open_connection`` streams, no retries: a 503 is counted and the connection
   goes on), a fixed number of requests; predictions per second, the status counts, and the
   server's ``/metrics`` batch-size histogram (the change over the run) for
   ``serve.max_queue_delay_us`` 0, 200 and 1000. (uvloop rounds a timer to whole
   milliseconds, ``round(delay * 1000)``, and runs a 0 ms timer as ``call_soon``: 200 us
   waits one loop iteration, not 200 us; 1000 us waits about 1 ms.)
4. The same client against a naive Starlette app (``await request.json()``, numpy, a
   ``jax.jit``-ted model, ``JSONResponse``) run by uvicorn with its defaults, and against a
   floor: a uvloop protocol answering every request with a fixed response (no model, no
   framework): what this client and the loopback allow on this machine.
5. The server's per-request Python steps in this process (``parse_infer`` JSON and binary,
   ``Predictor.rows``, ``Predictor.run``, ``encode_response``, the Prometheus observations):
   and ``InferenceServer`` driven as an ASGI app (no HTTP, batching task included): where the
   time of a concurrency-1 request goes besides HTTP.
6. MLServer (an existing Open Inference Protocol server) serving the same bundle as a custom
   model: an ``mlserver.MLModel`` subclass whose ``load`` is ``Predictor.load(uri)`` and whose
   ``predict`` decodes ``x`` with ``NumpyCodec``, calls ``Predictor.run`` and encodes each
   output with ``NumpyCodec.encode_output``; ``mlserver start`` with ``parallel_workers=0``
   (inference in its main process) and ``debug`` false. The same clients and requests as
   (2) and (3); its first response is checked against liam-core's. MLServer lives in its own
   venv (installing it into the project's would downgrade fastapi, starlette and protobuf):
   built once with ``python3.11 -m venv`` and ``pip install mlserver jax==<this jax>
   <a copy of this repository's sources>`` under ``~/.cache/liam-core/bench-mlserver-venv``
   (``--mlserver-venv``), liam-core reinstalled there when its sources change; if that fails
   the report says why (``mlserver: {"skipped": ...}``); ``--no-mlserver`` skips it.

Every figure is a median (p50) with the p99 over all samples, in microseconds; the JSON
report also holds means, minimums, the spread of the per-round medians, and the targets
(in process p50 <= 25 us, p99 <= 60 us; HTTP p50 <= 150 us, p99 <= 1 ms; >= 20,000
predictions/s at concurrency 64). Every subprocess is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import collections
import contextlib
import gc
import http.client
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from _machine import cpu_name

from liam_core.models import make_model
from liam_core.serve import ModelRepository, Predictor, export_bundle
from liam_core.train import AnomalyDetection, ShiftClassification, TaskSpec

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "serve.json"

TARGETS = {
    "in_process": {"p50_us": 25.0, "p99_us": 60.0},
    "http_concurrency_1": {"p50_us": 150.0, "p99_us": 1000.0},
    "throughput_concurrency_64": {"predictions_per_s": 20_000.0},
}

MODELS: dict[str, dict[str, Any]] = {
    "mlp_64x256x256x8": {
        "name": "mlp_classifier", "in_features": 64, "n_classes": 8, "width": 256, "depth": 2,
    },
    "autoencoder_8x32x3": {"name": "autoencoder", "in_features": 8, "width": 32, "latent": 3},
}  # fmt: skip
HTTP_MODEL = "mlp_64x256x256x8"

FULL = {"inproc_calls": 5000, "rounds": 10, "http_requests": 5000, "load_requests": 40_000,
        "concurrency": 64, "delays_us": (0, 200, 1000)}  # fmt: skip
QUICK = {"inproc_calls": 400, "rounds": 2, "http_requests": 200, "load_requests": 2000,
         "concurrency": 64, "delays_us": (0, 200, 1000)}  # fmt: skip

START_TIMEOUT_S = 120.0

# --------------------------------------------------------------------------- subprocesses

_PROCESSES: list[subprocess.Popen] = []


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL it if it is still there after 5 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    if process in _PROCESSES:
        _PROCESSES.remove(process)


def _stop_all() -> None:
    for process in list(_PROCESSES):
        _stop(process)


atexit.register(_stop_all)


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds the try/finally blocks, then atexit


def _child_env() -> dict[str, str]:
    """This environment without device, cluster or liam-core settings (as the tests do)."""
    inherited_not = ("XLA_FLAGS", "SLURM_", "OMPI_", "JAX_COORDINATOR", "LIAM_")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(inherited_not) or key == "LIAM_CACHE_DIR"
    }
    env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Service:
    """A server subprocess on a free port, its output in a log file, stopped on exit."""

    def __init__(self, label: str, args: list[str], port: int, folder: Path, *,
                 ready_path: str = "/v2/health/ready", env: dict[str, str] | None = None,
                 cwd: Path = ROOT) -> None:  # fmt: skip
        self.label, self.port, self.ready_path = label, port, ready_path
        self.log = folder / f"{label}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                env=_child_env() if env is None else env, start_new_session=True,
            )  # fmt: skip
        _PROCESSES.append(self.process)
        started = time.monotonic()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self.get(self.ready_path)[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.label} not ready in time:\n{self.log.read_text()[-3000:]}")

    def get(self, path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        _stop(self.process)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def liam_server(repository: Path, folder: Path, delay_us: int) -> Service:
    port = _free_port()
    args = [
        sys.executable, "-m", "liam_core", "serve", f"serve.repository={repository}",
        f"serve.port={port}", f"serve.max_queue_delay_us={delay_us}", "serve.poll_s=0",
        "serve.drain_s=1", f"hydra.run.dir={folder / f'run-delay{delay_us}'}",
    ]  # fmt: skip
    return Service(f"liam_core_delay{delay_us}", args, port, folder)


NAIVE_APP = '''\
"""What a user writes: Starlette, one POST route, request.json(), numpy, a jax.jit model."""
import jax
import jax.numpy as jnp
import numpy as np
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from liam_core.models import make_model

model = make_model("mlp_classifier", in_features=64, n_classes=8, width=256, depth=2, seed=0)


@jax.jit
def forward(x):
    probabilities = jax.vmap(model.predict_proba)(x)
    return probabilities, jnp.argmax(probabilities, axis=1)


forward(np.zeros((1, 64), np.float32))  # compile at start


async def infer(request):
    body = await request.json()
    tensor = body["inputs"][0]
    x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    probabilities, shift = forward(x)
    return JSONResponse({
        "model_name": "ops",
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": list(probabilities.shape),
             "data": np.asarray(probabilities).ravel().tolist()},
            {"name": "shift", "datatype": "INT32", "shape": [x.shape[0]],
             "data": np.asarray(shift).tolist()},
        ],
    })


async def ready(request):
    return JSONResponse({"ready": True})


app = Starlette(routes=[
    Route("/v2/models/ops/infer", infer, methods=["POST"]),
    Route("/v2/health/ready", ready),
])
'''

FLOOR_APP = '''\
"""The floor: a uvloop protocol answering each request with one fixed response."""
import asyncio
import sys

import uvloop

RESPONSE = (b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: 2\\r\\n"
            b"\\r\\n{}")


class Floor(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        buffer = self.buffer + data
        while True:
            end = buffer.find(b"\\r\\n\\r\\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            at = head.find(b"\\r\\ncontent-length:")  # a header line, not a suffix of one
            length = 0
            if at >= 0:
                stop = head.find(b"\\r\\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length :]
            self.transport.write(RESPONSE)
        self.buffer = buffer


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Floor, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()


uvloop.run(main())
'''


def naive_server(folder: Path) -> Service:
    (folder / "naive_app.py").write_text(NAIVE_APP)
    port = _free_port()
    args = [
        sys.executable, "-m", "uvicorn", "naive_app:app", "--app-dir", str(folder),
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return Service("naive_starlette", args, port, folder)


def floor_server(folder: Path) -> Service:
    (folder / "floor_app.py").write_text(FLOOR_APP)
    port = _free_port()
    service = Service.__new__(Service)  # no /v2/health/ready: wait for the port instead
    service.label, service.port, service.log = "floor", port, folder / "floor.log"
    with service.log.open("w") as out:
        service.process = subprocess.Popen(
            [sys.executable, str(folder / "floor_app.py"), str(port)], stdout=out,
            stderr=subprocess.STDOUT, env=_child_env(), start_new_session=True,
        )  # fmt: skip
    _PROCESSES.append(service.process)
    started = time.monotonic()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if service.process.poll() is not None or time.monotonic() - started > 30:
                service.stop()
                raise RuntimeError(f"floor server: {service.log.read_text()[-2000:]}") from None
            time.sleep(0.05)
    service.start_seconds = time.monotonic() - started
    return service


# --------------------------------------------------------------------------- MLServer

MLSERVER_VENV = Path.home() / ".cache" / "liam-core" / "bench-mlserver-venv"
MLSERVER_PIP_TIMEOUT_S = 1800.0
MLSERVER_SOURCES = ("pyproject.toml", "README.md", "src", "conf")  # what the wheel is built from

MLSERVER_RUNTIME = '''\
"""An MLServer custom runtime serving a liam-core bundle (written by benchmarks/serve.py)."""
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse

from liam_core.serve import Predictor


class LiamBundle(MLModel):
    """``Predictor.load(parameters.uri)``; ``predict`` runs the input tensor ``x``."""

    async def load(self) -> bool:
        self.predictor = Predictor.load(self.settings.parameters.uri, max_batch_size=64,
                                        explain=False)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        tensor = next((t for t in payload.inputs if t.name == "x"), None)
        if tensor is None:
            raise InferenceError("the request has no input tensor `x`")
        x = NumpyCodec.decode_input(tensor)
        outputs = self.predictor.run(self.predictor.rows(x))
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[NumpyCodec.encode_output(name, np.asarray(value))
                     for name, value in outputs.items()],
        )
'''


class MLServerUnavailable(Exception):
    """The MLServer venv could not be built (the message says why)."""


def _sources_digest() -> str:
    """A hash of what liam-core's wheel is built from (to know when the venv's copy is stale)."""
    import hashlib

    digest = hashlib.sha256()
    for name in MLSERVER_SOURCES:
        top = ROOT / name
        files = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in files:
            relative = path.relative_to(ROOT)
            if (not path.is_file() or "__pycache__" in relative.parts
                    or any(part.endswith(".egg-info") for part in relative.parts)
                    or relative.parts[:2] == ("conf", "local")):  # fmt: skip
                continue
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _copy_sources(target: Path) -> Path:
    """The files liam-core's wheel is built from, copied (pip builds in the source tree: this
    keeps its build/ and egg-info out of the repository)."""
    target.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in MLSERVER_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target / name, ignore=ignore)
        elif (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target / name)
    shutil.rmtree(target / "conf" / "local", ignore_errors=True)
    return target


def _pip_step(args: list[str], log: Path, what: str) -> None:
    print(f"mlserver venv: {what}: {' '.join(args)}  (output in {log})", flush=True)
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(args)}\n")
        out.flush()
        try:
            code = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, cwd="/",
                                  timeout=MLSERVER_PIP_TIMEOUT_S).returncode  # fmt: skip
        except subprocess.TimeoutExpired:
            raise MLServerUnavailable(
                f"{what}: timed out after {MLSERVER_PIP_TIMEOUT_S:.0f} s"
            ) from None
        except OSError as error:
            raise MLServerUnavailable(f"{what}: {error}") from None
    if code:
        lines = [line.strip() for line in log.read_text().splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")]
        last = (errors or lines or ["(no output)"])[-1]
        raise MLServerUnavailable(f"{what} failed (exit {code}): {last}")


_VENV_PROBE = """\
import importlib.metadata as m, importlib.util as u, json
print(json.dumps({
    "packages": {n: m.version(n) for n in
                 ("mlserver", "fastapi", "starlette", "uvicorn", "jax", "numpy", "liam-core")},
    "httptools_installed": u.find_spec("httptools") is not None,
    "uvloop_installed": u.find_spec("uvloop") is not None,
}))
"""


def mlserver_venv(venv: Path, folder: Path) -> dict[str, Any]:
    """A virtual environment holding mlserver and liam-core (built once, then cached; liam-core
    reinstalled when its sources changed), with jax pinned to this process's version (the
    bundle is a ``jax.export`` serialization): what it holds and what was done."""
    venv = venv.expanduser().absolute()
    python, mlserver = venv / "bin" / "python", venv / "bin" / "mlserver"
    marker, log = venv / "liam-bench.json", venv.parent / f"{venv.name}.pip.log"
    pins = [f"jax=={jax.__version__}", f"jaxlib=={importlib.metadata.version('jaxlib')}"]
    digest = _sources_digest()
    done = []
    try:
        state = json.loads(marker.read_text())
    except (OSError, ValueError):
        state = {}
    complete = mlserver.exists() and state.get("pins") == pins
    if complete and state.get("liam_core_sources") == digest:
        print(f"mlserver venv: reusing {venv} (delete it or pass --mlserver-venv to rebuild)",
              flush=True)  # fmt: skip
    else:
        try:
            venv.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("")
        except OSError as error:
            raise MLServerUnavailable(f"cannot build the venv {venv}: {error}") from None
        if not python.exists():
            base = shutil.which("python3.11") or sys.executable
            _pip_step([base, "-m", "venv", str(venv)], log, "create the venv")
            done.append("created the venv")
        sources = str(_copy_sources(folder / "liam-core-sources"))
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
        if complete:  # only liam-core changed
            _pip_step([*pip, "--no-deps", "--force-reinstall", sources], log,
                      "reinstall liam-core (its sources changed)")  # fmt: skip
            done.append("reinstalled liam-core")
        else:
            _pip_step([*pip, "mlserver", *pins, sources], log, "install mlserver and liam-core")
            done.append("installed mlserver and liam-core")
        marker.write_text(json.dumps({"pins": pins, "liam_core_sources": digest}) + "\n")
    probe = subprocess.run([str(python), "-c", _VENV_PROBE], capture_output=True, text=True,
                           timeout=120, env=_mlserver_env(venv), cwd="/")  # fmt: skip
    if probe.returncode:
        last = (probe.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise MLServerUnavailable(f"the venv's python cannot report its packages: {last}")
    return {"venv": str(venv), "actions": done or ["reused"], **json.loads(probe.stdout),
            "mlserver": str(mlserver)}  # fmt: skip


def _mlserver_env(venv: Path) -> dict[str, str]:
    """The children's environment without this venv's or MLServer's settings, the venv first
    on PATH."""
    env = {
        key: value
        for key, value in _child_env().items()
        if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not key.startswith("MLSERVER")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def mlserver_server(venv: dict[str, Any], bundle: Path, folder: Path) -> Service:
    """``mlserver start`` on a folder with the custom runtime, ``model-settings.json`` (model
    ``ops``) and ``settings.json`` (free ports, ``parallel_workers=0``: inference in the main
    process, ``debug`` false: no access log)."""
    root = folder / "mlserver"
    model = root / "ops"
    model.mkdir(parents=True)
    (model / "liam_runtime.py").write_text(MLSERVER_RUNTIME)
    model_settings = {
        "name": "ops", "implementation": "liam_runtime.LiamBundle",
        "parameters": {"uri": str(Path(bundle).absolute())},
    }  # fmt: skip
    (model / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    port = _free_port()
    settings = {
        "debug": False, "host": "127.0.0.1", "http_port": port, "grpc_port": _free_port(),
        "metrics_port": _free_port(), "parallel_workers": 0, "load_models_at_startup": True,
        "model_repository_root": str(root),
    }  # fmt: skip
    (root / "settings.json").write_text(json.dumps(settings, indent=2))
    service = Service(
        "mlserver", [venv["mlserver"], "start", str(root)], port, folder,
        ready_path="/v2/models/ops/ready", env=_mlserver_env(Path(venv["venv"])), cwd=root,
    )  # fmt: skip
    service.settings, service.model_settings = settings, model_settings
    return service


def same_outputs(ours: bytes, theirs: bytes) -> dict[str, Any]:
    """Do two JSON infer responses hold the same outputs (names, values; datatypes and shapes
    reported)?"""
    a = {o["name"]: o for o in json.loads(ours)["outputs"]}
    b = {o["name"]: o for o in json.loads(theirs)["outputs"]}
    out: dict[str, Any] = {"same_names": sorted(a) == sorted(b)}
    for name in sorted(set(a) & set(b)):
        x = np.asarray(a[name]["data"], np.float64).ravel()
        y = np.asarray(b[name]["data"], np.float64).ravel()
        out[name] = {
            "datatype": [a[name]["datatype"], b[name]["datatype"]],
            "shape": [a[name]["shape"], b[name]["shape"]],
            "max_abs_difference": float(np.abs(x - y).max()) if x.shape == y.shape else None,
        }
    out["same_values"] = bool(out["same_names"] and all(
        v["max_abs_difference"] is not None and v["max_abs_difference"] <= 1e-6
        for v in out.values() if isinstance(v, dict)
    ))  # fmt: skip
    return out


# --------------------------------------------------------------------------- statistics


def summary(samples_ns: list[int], round_medians_ns: list[float] | None = None) -> dict:
    """p50 (the median), p99, mean and min in microseconds, and the per-round median spread."""
    array = np.asarray(samples_ns, dtype=np.float64) / 1e3
    p50, p99 = np.percentile(array, [50, 99])
    out = {
        "p50_us": round(float(p50), 2),
        "p99_us": round(float(p99), 2),
        "mean_us": round(float(array.mean()), 2),
        "min_us": round(float(array.min()), 2),
        "samples": int(array.size),
    }
    if round_medians_ns:
        out["round_p50_us_range"] = [
            round(min(round_medians_ns) / 1e3, 2), round(max(round_medians_ns) / 1e3, 2)
        ]  # fmt: skip
    return out


def meets(stats: dict, target: dict) -> dict[str, bool]:
    return {key: bool(stats[key] <= value) for key, value in target.items()}


def interleaved(
    contenders: dict[str, Callable[[], Any]], calls: int, rounds: int, warmup: int = 200
) -> dict[str, dict]:
    """Time each contender's call ``calls`` times in ``rounds`` interleaved rounds."""
    for call in contenders.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[int]] = {name: [] for name in contenders}
    medians: dict[str, list[float]] = {name: [] for name in contenders}
    per_round = max(1, calls // rounds)
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for name, call in contenders.items():
            gc.collect()
            block = []
            for _ in range(per_round):
                start = clock()
                call()
                block.append(clock() - start)
            samples[name] += block
            medians[name].append(statistics.median(block))
    return {name: summary(samples[name], medians[name]) for name in contenders}


# --------------------------------------------------------------------------- models


def build(name: str, folder: Path) -> dict[str, Any]:
    """The model, its bundle folder, the plain-jit baseline and a batch-1 input."""
    settings = dict(MODELS[name])
    kind = settings.pop("name")
    model = make_model(kind, seed=0, **settings)
    n = settings["in_features"]
    features = [f"f{i}" for i in range(n)]
    if kind == "mlp_classifier":
        mean, scale = np.zeros(n, np.float32), np.ones(n, np.float32)
        servable = ShiftClassification(TaskSpec()).servable(
            model, {"mean": mean, "scale": scale}, features
        )

        def baseline(x: jax.Array) -> dict[str, jax.Array]:
            probabilities = jax.vmap(model.predict_proba)((x - mean) / scale)
            return {
                "probabilities": probabilities,
                "shift": jnp.argmax(probabilities, axis=1).astype(jnp.int32),
            }

    else:
        threshold = np.float32(2.0)
        servable = AnomalyDetection(TaskSpec()).servable(model, {"threshold": threshold}, features)

        def baseline(x: jax.Array) -> dict[str, jax.Array]:
            score = jax.vmap(model.anomaly_score)(x)
            return {"score": score, "anomaly": score > threshold}

    bundle = export_bundle(servable, folder / name, edge=False)
    x = np.random.default_rng(0).standard_normal((1, n)).astype(np.float32)
    return {"bundle": bundle, "jit": jax.jit(baseline), "x": x, "settings": MODELS[name]}


def in_process(name: str, built: dict[str, Any], calls: int, rounds: int) -> dict[str, Any]:
    predictor = Predictor.load(built["bundle"], max_batch_size=64, explain=False)
    jitted, x = built["jit"], built["x"]
    rows = predictor.rows(x)

    def plain() -> dict[str, np.ndarray]:
        return {key: np.asarray(value) for key, value in jitted(x).items()}

    ours, theirs = predictor.predict(x), plain()
    same = all(np.allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6) for key in ours)
    compilations = predictor.compilations
    stats = interleaved(
        {
            "predictor_predict": lambda: predictor.predict(x),
            "predictor_run": lambda: predictor.run(rows),
            "jax_jit": plain,
        },
        calls,
        rounds,
    )
    jit = stats["jax_jit"]
    return {
        "model": built["settings"],
        "batch_rows": 1,
        "calls": calls,
        "rounds": rounds,
        "contenders": stats,
        "over_jax_jit": {
            name: {
                "p50": round(entry["p50_us"] / jit["p50_us"], 3),
                "p99": round(entry["p99_us"] / jit["p99_us"], 3),
            }
            for name, entry in stats.items()
            if name != "jax_jit"
        },
        "meets_target": {
            name: meets(entry, TARGETS["in_process"]) for name, entry in stats.items()
        },
        "same_outputs_as_jit": bool(same),
        "no_compilation_while_timed": predictor.compilations == compilations,
        "jax_jit": "jax.jit of the same forward closing over the model, then np.asarray per output",
    }


def server_steps(built: dict[str, Any], calls: int, rounds: int) -> dict[str, Any]:
    """The server's per-request Python work on one batch-1 request, timed in this process:
    what an infer request costs besides HTTP and the model call."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from liam_core.serve._protocol import encode_response, parse_infer

    predictor = Predictor.load(built["bundle"], max_batch_size=64, explain=False)
    x = built["x"]
    n = x.shape[1]
    body = json_body(x)
    binary, header_length = binary_body(x)
    request_json = parse_infer(body, None, n)
    request_binary = parse_infer(binary, str(header_length), n)
    rows = predictor.rows(request_json.rows)
    outputs = predictor.run(rows)
    registry = CollectorRegistry()
    counter = Counter("requests", "", ["model", "version", "status"], registry=registry)
    histogram = Histogram("latency", "", ["model"], registry=registry)

    def metrics() -> None:  # what the server records per request (and per batch)
        counter.labels("ops", "1", "200").inc()
        histogram.labels("ops").observe(1e-4)
        histogram.labels("ops").observe(1.0)

    stats = interleaved(
        {
            "parse_infer_json": lambda: parse_infer(body, None, n),
            "parse_infer_binary": lambda: parse_infer(binary, str(header_length), n),
            "predictor_rows": lambda: predictor.rows(request_json.rows),
            "predictor_run": lambda: predictor.run(rows),
            "encode_response_json": lambda: encode_response("ops", 1, outputs, request_json),
            "encode_response_binary": lambda: encode_response("ops", 1, outputs, request_binary),
            "prometheus_3_observations": metrics,
        },
        calls,
        rounds,
    )
    stats.update(_run_async(_asgi_app(built, calls, rounds)))
    return {"model": built["settings"], "batch_rows": 1, "steps": stats}


async def _asgi_app(built: dict[str, Any], calls: int, rounds: int) -> dict[str, Any]:
    """``InferenceServer`` called as an ASGI app in this process (uvloop), no HTTP: one
    infer request from the ASGI scope to the response messages, batching task included."""
    from liam_core.serve import InferenceServer, ServeSpec

    folder = Path(tempfile.mkdtemp(prefix="liam-serve-asgi-"))
    try:
        ModelRepository(folder).publish(built["bundle"], "ops")
        app = InferenceServer(ServeSpec(repository=str(folder), poll_s=0))
        await app.startup()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (app.models.get("ops") and app.models["ops"].ready):
            if time.monotonic() > deadline:
                raise RuntimeError("the in-process InferenceServer did not load `ops`")
            await asyncio.sleep(0.05)
        x = built["x"]
        binary, header_length = binary_body(x)
        bodies = {
            "asgi_app_infer_json": (json_body(x), []),
            "asgi_app_infer_binary": (
                binary,
                [(b"inference-header-content-length", str(header_length).encode())],
            ),
        }
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        calls_of = {}
        for name, (body, extra) in bodies.items():
            scope = {
                "type": "http", "method": "POST", "path": INFER_PATH,
                "headers": [(b"content-length", str(len(body)).encode()), *extra],
            }  # fmt: skip

            async def receive(body: bytes = body) -> dict:
                return {"type": "http.request", "body": body, "more_body": False}

            calls_of[name] = (scope, receive)
        samples: dict[str, list[int]] = {name: [] for name in bodies}
        medians: dict[str, list[float]] = {name: [] for name in bodies}
        clock = time.perf_counter_ns
        for scope, receive in calls_of.values():
            for _ in range(200):
                sent.clear()
                await app(scope, receive, send)
            if sent[0]["status"] != 200:
                raise RuntimeError(f"the in-process InferenceServer answered {sent}")
        for _ in range(rounds):
            for name, (scope, receive) in calls_of.items():
                gc.collect()
                block = []
                for _ in range(max(1, calls // rounds)):
                    sent.clear()
                    start = clock()
                    await app(scope, receive, send)
                    block.append(clock() - start)
                samples[name] += block
                medians[name].append(statistics.median(block))
        await app.shutdown()
        return {name: summary(samples[name], medians[name]) for name in bodies}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- HTTP clients

INFER_PATH = "/v2/models/ops/infer"


def http_request(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def json_body(x: np.ndarray) -> bytes:
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "data": x.ravel().tolist(),
                }
            ]
        }
    ).encode()


def binary_body(x: np.ndarray) -> tuple[bytes, int]:
    blob = np.ascontiguousarray(x, dtype="<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return header + blob, len(header)


def requests_for(x: np.ndarray) -> dict[str, bytes]:
    """The raw HTTP/1.1 requests: infer with JSON, infer with binary tensors, health."""
    body, header_length = binary_body(x)
    return {
        "json": http_request(
            "POST", INFER_PATH, json_body(x), {"Content-Type": "application/json"}
        ),
        "binary": http_request(
            "POST",
            INFER_PATH,
            body,
            {
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(header_length),
            },
        ),
        "health_live": http_request("GET", "/v2/health/live"),
    }


def _content_length(head: bytes) -> int:
    lowered = head.lower()
    at = lowered.find(b"\r\ncontent-length:")  # not Inference-Header-Content-Length
    if at < 0:
        raise RuntimeError(f"a response without Content-Length: {head[:300]!r}")
    stop = lowered.find(b"\r\n", at + 2)
    return int(lowered[at + 17 : stop if stop >= 0 else len(lowered)])


class RawClient:
    """One keep-alive connection: a request is one sendall, the response read to its length."""

    name = "raw socket (TCP_NODELAY; one sendall per request, read to Content-Length)"

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, payload: bytes) -> tuple[int, bytes, bytes]:
        self.sock.sendall(payload)
        buffer, recv = self.buffer, self.sock.recv
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            chunk = recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            buffer += chunk
        head = buffer[:end]
        total = end + 4 + _content_length(head)
        while len(buffer) < total:
            chunk = recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            buffer += chunk
        self.buffer = buffer[total:]
        return int(head[9:12]), head, buffer[end + 4 : total]

    def close(self) -> None:
        self.sock.close()


class StdlibClient:
    """``http.client.HTTPConnection`` reused across requests (for reference)."""

    name = "http.client.HTTPConnection (reused)"

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.body = b""

    def request(self, body: bytes) -> tuple[int, bytes, bytes]:
        self.connection.request(
            "POST", INFER_PATH, body=body, headers={"Content-Type": "application/json"}
        )
        response = self.connection.getresponse()
        return response.status, b"", response.read()

    def close(self) -> None:
        self.connection.close()


def check_response(label: str, kind: str, status: int, head: bytes, body: bytes,
                   expected: np.ndarray) -> None:  # fmt: skip
    """The probabilities of the response are the predictor's (or raise)."""
    if status != 200:
        raise RuntimeError(f"{label} {kind}: status {status}: {body[:500]!r}")
    if kind == "health_live":
        return
    if kind == "binary":
        match = re.search(rb"(?i)inference-header-content-length:\s*(\d+)", head)
        if match is None:
            raise RuntimeError(f"{label}: a binary response without its header length")
        length = int(match.group(1))
        response = json.loads(body[:length])
        offset, got = length, None
        for output in response["outputs"]:
            size = output["parameters"]["binary_data_size"]
            if output["name"] == "probabilities":
                got = np.frombuffer(body[offset : offset + size], "<f4")
            offset += size
    else:
        response = json.loads(body)
        got = next(o["data"] for o in response["outputs"] if o["name"] == "probabilities")
    if not np.allclose(np.asarray(got, np.float32).ravel(), expected.ravel(), atol=1e-5):
        raise RuntimeError(f"{label} {kind}: probabilities {got} != {expected.ravel()}")


def latency_c1(
    service: Service, clients: dict[str, tuple[Any, bytes]], requests: int, rounds: int,
    expected: np.ndarray | None,
) -> dict[str, dict]:  # fmt: skip
    """Concurrency 1, keep-alive: each (client, request) in interleaved rounds, with the
    server's and this process's CPU time per request (``expected``: the probabilities the
    first response must hold; ``None``: only its status is checked)."""
    for kind, (client, payload) in clients.items():
        status, head, body = client.request(payload)
        if expected is None:
            if status != 200:
                raise RuntimeError(f"{service.label} {kind}: status {status}: {body[:300]!r}")
        else:
            check_response(service.label, kind.split("+")[0], status, head, body, expected)
        for _ in range(min(500, requests)):
            client.request(payload)
    samples: dict[str, list[int]] = {kind: [] for kind in clients}
    medians: dict[str, list[float]] = {kind: [] for kind in clients}
    server_cpu = dict.fromkeys(clients, 0.0)
    client_cpu = dict.fromkeys(clients, 0)
    statuses: dict[str, collections.Counter] = {kind: collections.Counter() for kind in clients}
    per_round = max(1, requests // rounds)
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for kind, (client, payload) in clients.items():
            gc.collect()
            block = []
            cpu0, own0 = service.cpu_seconds(), time.process_time_ns()
            for _ in range(per_round):
                start = clock()
                status = client.request(payload)[0]
                block.append(clock() - start)
                statuses[kind][status] += 1
            client_cpu[kind] += time.process_time_ns() - own0
            server_cpu[kind] += service.cpu_seconds() - cpu0
            samples[kind] += block
            medians[kind].append(statistics.median(block))
    out = {}
    for kind, (client, _) in clients.items():
        n = len(samples[kind])
        entry = summary(samples[kind], medians[kind])
        entry["client"] = client.name
        entry["statuses"] = {str(k): v for k, v in sorted(statuses[kind].items())}
        entry["server_cpu_us_per_request"] = round(server_cpu[kind] / n * 1e6, 1)
        entry["client_cpu_us_per_request"] = round(client_cpu[kind] / n / 1e3, 1)
        if not kind.startswith("health"):
            entry["meets_target"] = meets(entry, TARGETS["http_concurrency_1"])
        out[kind] = entry
    return out


ASYNC_CLIENT = (
    "asyncio + uvloop, raw asyncio.open_connection streams (TCP_NODELAY), one request in "
    "flight per keep-alive connection, response read to Content-Length, no retries"
)


async def _load(port: int, payload: bytes, total: int, concurrency: int, warmup: int) -> dict:
    connections = []
    for _ in range(concurrency):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connections.append((reader, writer))
    statuses: collections.Counter = collections.Counter()
    latencies: list[int] = []
    left = [warmup]
    clock = time.perf_counter_ns

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     record: bool) -> None:  # fmt: skip
        while left[0] > 0:
            left[0] -= 1
            start = clock()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(_content_length(head))
            if record:
                latencies.append(clock() - start)
                statuses[int(head[9:12])] += 1

    try:
        await asyncio.gather(*(worker(r, w, False) for r, w in connections))
        left[0] = total
        cpu0 = time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(worker(r, w, True) for r, w in connections))
        elapsed = time.perf_counter() - start
        client_cpu = time.process_time() - cpu0
    finally:
        for _, writer in connections:
            writer.close()
    return {"elapsed": elapsed, "statuses": statuses, "latencies": latencies,
            "client_cpu_s": client_cpu}  # fmt: skip


def _run_async(coroutine: Any) -> Any:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)")


def scrape(service: Service) -> dict[tuple[str, frozenset], float]:
    status, body = service.get("/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    out = {}
    for line in body.decode().splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            name, labels, value = match.groups()
            pairs = frozenset(re.findall(r'(\w+)="([^"]*)"', labels or ""))
            out[(name, pairs)] = float(value)
    return out


def metrics_change(before: dict, after: dict) -> dict[str, Any]:
    """The batch-size histogram, latency histogram and requests by status over a run."""

    def delta(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    batches = delta("liam_batch_size_count", model="ops")
    rows = delta("liam_batch_size_sum", model="ops")
    buckets = {}
    previous = 0.0
    for (name, labels), _ in sorted(after.items(), key=lambda item: item[0][0]):
        if name == "liam_batch_size_bucket" and dict(labels).get("model") == "ops":
            buckets[dict(labels)["le"]] = delta(name, **dict(labels))
    histogram = {}
    for le in sorted(buckets, key=lambda b: float(b)):  # cumulative -> per bucket
        histogram[f"<={le}"] = int(buckets[le] - previous)
        previous = buckets[le]
    requests = {
        dict(labels)["status"]: int(delta(name, **dict(labels)))
        for (name, labels) in after
        if name == "liam_requests_total" and dict(labels).get("model") == "ops"
    }
    answered = delta("liam_request_latency_seconds_count", model="ops")
    latency = delta("liam_request_latency_seconds_sum", model="ops")
    return {
        "batches": int(batches),
        "mean_batch_size": round(rows / batches, 2) if batches else None,
        "batch_size_histogram": {k: v for k, v in histogram.items() if v},
        "server_requests_by_status": {k: v for k, v in requests.items() if v},
        "server_mean_latency_us": round(latency / answered * 1e6, 1) if answered else None,
    }


def throughput(service: Service, payload: bytes, total: int, concurrency: int,
               metrics: bool) -> dict[str, Any]:  # fmt: skip
    before = scrape(service) if metrics else None
    cpu0 = service.cpu_seconds()
    run = _run_async(_load(service.port, payload, total, concurrency, warmup=concurrency * 10))
    server_cpu = service.cpu_seconds() - cpu0
    ok = run["statuses"].get(200, 0)
    stats = summary(run["latencies"])
    out = {
        "client": ASYNC_CLIENT,
        "concurrency": concurrency,
        "requests": total,
        "rows_per_request": 1,
        "seconds": round(run["elapsed"], 3),
        "predictions_per_s": round(ok / run["elapsed"], 1),
        "requests_per_s": round(total / run["elapsed"], 1),
        "statuses": {str(k): v for k, v in sorted(run["statuses"].items())},
        "latency": {key: stats[key] for key in ("p50_us", "p99_us", "mean_us")},
        "server_cpu_s": round(server_cpu, 2),
        "client_cpu_s": round(run["client_cpu_s"], 2),
        "server_cpu_us_per_request": round(server_cpu / total * 1e6, 1),
        "client_cpu_us_per_request": round(run["client_cpu_s"] / total * 1e6, 1),
    }
    out["meets_target"] = bool(
        out["predictions_per_s"] >= TARGETS["throughput_concurrency_64"]["predictions_per_s"]
    )
    if metrics:
        out["server_metrics"] = metrics_change(before, scrape(service))
        out["server_metrics"]["includes_warmup_requests"] = concurrency * 10
    return out


# --------------------------------------------------------------------------- the run


def machine() -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": version("jaxlib"),
        "devices": [str(device) for device in jax.devices()],
        "packages": {
            name: version(name)
            for name in (
                "numpy",
                "equinox",
                "uvicorn",
                "uvloop",
                "httptools",
                "starlette",
                "orjson",
                "prometheus-client",
            )
        },
        "load_average_at_start": os.getloadavg(),
    }


@contextlib.contextmanager
def _folder(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="liam-serve-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def run(settings: dict[str, Any], keep: bool, mlserver: Path | None = MLSERVER_VENV
        ) -> dict[str, Any]:  # fmt: skip
    """The whole benchmark (``mlserver``: the MLServer venv, ``None``: not run)."""
    report: dict[str, Any] = {
        "benchmark": "serve",
        "settings": {key: list(v) if isinstance(v, tuple) else v for key, v in settings.items()},
        "machine": machine(),
        "targets": TARGETS,
        "in_process": {},
        "http_concurrency_1": {},
        "throughput_concurrency_64": {},
    }
    calls, rounds = settings["inproc_calls"], settings["rounds"]
    with _folder(keep) as folder:
        built = {name: build(name, folder / "bundles") for name in MODELS}
        for name in MODELS:
            report["in_process"][name] = in_process(name, built[name], calls, rounds)
            print(name, json.dumps(report["in_process"][name]["contenders"]), flush=True)
        report["server_steps_in_process"] = server_steps(built[HTTP_MODEL], calls, rounds)
        print("server steps", json.dumps(report["server_steps_in_process"]), flush=True)

        # Over HTTP: the MLP, published as `ops`.
        repository = folder / "repository"
        ModelRepository(repository).publish(built[HTTP_MODEL]["bundle"], "ops")
        x = built[HTTP_MODEL]["x"]
        expected = Predictor.load(built[HTTP_MODEL]["bundle"], max_batch_size=1, explain=False)
        expected = expected.predict(x)["probabilities"]
        payloads = requests_for(x)
        n, load_n, conc = (
            settings["http_requests"],
            settings["load_requests"],
            settings["concurrency"],
        )
        report["http_model"] = HTTP_MODEL
        report["http_bodies_bytes"] = {
            "json": len(json_body(x)), "binary": len(binary_body(x)[0])
        }  # fmt: skip

        for delay in settings["delays_us"]:
            label = f"liam_core_delay{delay}"
            with liam_server(repository, folder, delay) as service:
                clients: dict[str, tuple[Any, bytes]] = {}
                try:
                    kinds = ["json"] if delay else ["json", "binary", "health_live"]
                    for kind in kinds:
                        clients[kind] = (RawClient(service.port), payloads[kind])
                    if not delay:
                        clients["json+http.client"] = (StdlibClient(service.port),
                                                       json_body(x))  # fmt: skip
                    before = scrape(service)
                    latency = latency_c1(service, clients, n, rounds, expected)
                    server_side = metrics_change(before, scrape(service))
                    if not delay:  # the reference response for MLServer's
                        reference = clients["json"][0].request(payloads["json"])[2]
                finally:
                    for client, _ in clients.values():
                        client.close()
                report["http_concurrency_1"][label] = {
                    "server": f"python -m liam_core serve (uvicorn, uvloop, httptools; "
                    f"max_batch_size=64, max_queue_delay_us={delay}, poll_s=0)",
                    "start_seconds": round(service.start_seconds, 2),
                    **latency,
                    "server_metrics_all_infer_requests": server_side,
                }
                print(label, "c=1", json.dumps(latency), flush=True)
                result = {"json": throughput(service, payloads["json"], load_n, conc, True)}
                if not delay:
                    result["binary"] = throughput(service, payloads["binary"], load_n, conc, True)
                report["throughput_concurrency_64"][label] = result
                print(label, "c=64", json.dumps(result), flush=True)

        with naive_server(folder) as service:
            client = RawClient(service.port)
            try:
                latency = latency_c1(service, {"json": (client, payloads["json"])}, n, rounds,
                                     expected)  # fmt: skip
            finally:
                client.close()
            report["http_concurrency_1"]["naive_starlette"] = {
                "server": f"a Starlette app (request.json, numpy, jax.jit, JSONResponse) under "
                f"`uvicorn` defaults (uvicorn {importlib.metadata.version('uvicorn')}: loop and "
                "http auto, so uvloop and httptools here)",
                "start_seconds": round(service.start_seconds, 2),
                **latency,
            }
            print("naive_starlette c=1", json.dumps(latency), flush=True)
            result = {"json": throughput(service, payloads["json"], load_n, conc, False)}
            report["throughput_concurrency_64"]["naive_starlette"] = result
            print("naive_starlette c=64", json.dumps(result), flush=True)

        with floor_server(folder) as service:
            client = RawClient(service.port)
            try:
                status, _, _ = client.request(payloads["json"])
                if status != 200:
                    raise RuntimeError(f"floor server answered {status}")
                latency = latency_c1(service, {"json": (client, payloads["json"])}, n, rounds,
                                     None)  # fmt: skip
            finally:
                client.close()
            report["http_concurrency_1"]["floor_fixed_response"] = {
                "server": "a uvloop asyncio.Protocol answering a fixed 2-byte JSON response "
                "(no HTTP framework, no model): the floor of this client and the loopback",
                **latency,
            }
            result = {"json": throughput(service, payloads["json"], load_n, conc, False)}
            report["throughput_concurrency_64"]["floor_fixed_response"] = result
            print("floor c=1", json.dumps(latency), "c=64", json.dumps(result), flush=True)

        if mlserver is None:
            report["mlserver"] = {"skipped": "--no-mlserver"}
        else:
            try:
                report["mlserver"] = mlserver_contender(
                    report, mlserver, folder, built[HTTP_MODEL]["bundle"], payloads,
                    expected, reference, settings,
                )  # fmt: skip
            except (MLServerUnavailable, RuntimeError, OSError) as error:
                reason = str(error).strip()
                report["mlserver"] = {"skipped": reason[-2000:]}
                print(f"mlserver skipped: {reason[-2000:]}", flush=True)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    return report


def mlserver_contender(report: dict[str, Any], venv_path: Path, folder: Path, bundle: Path,
                       payloads: dict[str, bytes], expected: np.ndarray,
                       reference: bytes, settings: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """MLServer serving the same bundle through a custom runtime, measured with the same
    clients and requests; its rows go into ``report``'s HTTP tables, the rest is returned."""
    venv = mlserver_venv(venv_path, folder)
    version = venv["packages"]["mlserver"]
    print(f"mlserver {version}: starting", flush=True)
    n, rounds = settings["http_requests"], settings["rounds"]
    with mlserver_server(venv, bundle, folder) as service:
        probe = RawClient(service.port)
        try:
            status, head, body = probe.request(payloads["json"])
            check_response("mlserver", "json", status, head, body, expected)
            same = same_outputs(reference, body)
            status, head, body = probe.request(payloads["binary"])
        finally:
            probe.close()
        binary: dict[str, Any] = {"status": status}
        try:
            check_response("mlserver", "binary", status, head, body, expected)
            binary["accepted"] = True
        except (RuntimeError, ValueError, KeyError, TypeError) as error:
            time.sleep(0.2)  # its traceback, if any, reaches the log
            raised = re.findall(r"(?m)^(\w+(?:Error|Exception)\b.*)$", service.log.read_text())
            if raised:
                binary["server_log_error"] = raised[-1][:400]
            binary.update(accepted=False, response=body[:400].decode("utf-8", "replace"),
                          check=str(error)[:400])  # fmt: skip
        kinds = ["json", "binary", "health_live"] if binary["accepted"] else ["json", "health_live"]
        clients = {}
        try:
            for kind in kinds:
                clients[kind] = (RawClient(service.port), payloads[kind])
            latency = latency_c1(service, clients, n, rounds, expected)
        finally:
            for client, _ in clients.values():
                client.close()
        uvicorn_http = "httptools" if venv["httptools_installed"] else "h11"
        uvicorn_loop = "uvloop" if venv["uvloop_installed"] else "asyncio"
        report["http_concurrency_1"]["mlserver"] = {
            "server": f"mlserver {version} start (an MLModel custom runtime calling "
            f"Predictor.run; parallel_workers=0: inference in the main process; uvicorn "
            f"{venv['packages']['uvicorn']}, {uvicorn_loop}, {uvicorn_http}; fastapi "
            f"{venv['packages']['fastapi']})",
            "start_seconds": round(service.start_seconds, 2),
            **latency,
        }
        print("mlserver c=1", json.dumps(latency), flush=True)
        result = {"json": throughput(service, payloads["json"], settings["load_requests"],
                                     settings["concurrency"], False)}  # fmt: skip
        if binary["accepted"]:
            result["binary"] = throughput(service, payloads["binary"], settings["load_requests"],
                                          settings["concurrency"], False)  # fmt: skip
        report["throughput_concurrency_64"]["mlserver"] = result
        print("mlserver c=64", json.dumps(result), flush=True)
        service_settings = service.settings
        model_settings = service.model_settings
    return {
        "version": version,
        "venv": {
            key: venv[key]
            for key in ("venv", "actions", "packages", "httptools_installed", "uvloop_installed")
        },
        "runtime": "an mlserver.MLModel subclass: load() = Predictor.load(parameters.uri, "
        "max_batch_size=64, explain=False); predict() = NumpyCodec.decode_input(x), "
        "Predictor.run(Predictor.rows(x)), NumpyCodec.encode_output per output",
        "inference_in": "inference in the main process (parallel_workers=0), on its event loop; "
        "no adaptive batching (the model's max_batch_size unset)",
        "notes": "MLServer's defaults otherwise: its gRPC server runs too (on a free port, it "
        "cannot be turned off), its metrics server on another port with the Prometheus "
        "middleware on the REST app, GZip middleware on (no Accept-Encoding is sent, so no "
        "response is compressed); uvicorn's HTTP parser is "
        + (
            "httptools"
            if venv["httptools_installed"]
            else "h11 (`pip install mlserver` does not install httptools)"
        ),
        "settings_json": service_settings,
        "model_settings_json": model_settings,
        "binary_tensors": binary,
        "same_outputs_as_liam_core_serve": same,
        "start_seconds": round(service.start_seconds, 2),
    }


def table(report: dict[str, Any]) -> str:
    lines = ["In process, batch 1 (us)", "",
             "| model | contender | p50 | p99 | / jit p50 | target p50<=25, p99<=60 |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for model, result in report["in_process"].items():
        for name, entry in result["contenders"].items():
            ratio = result["over_jax_jit"].get(name, {}).get("p50", 1.0)
            ok = result["meets_target"][name]
            lines.append(
                f"| {model} | {name} | {entry['p50_us']:.1f} | {entry['p99_us']:.1f} | "
                f"{ratio:.2f}x | {'yes' if all(ok.values()) else 'no'} |"
            )
    steps = report["server_steps_in_process"]["steps"]
    lines += [
        "",
        "The server's per-request steps, in process (us p50): "
        + ", ".join(f"{name} {entry['p50_us']:.1f}" for name, entry in steps.items()),
    ]
    lines += ["", f"HTTP, concurrency 1, {report['http_model']} batch 1 (us)", "",
              "| server | request | p50 | p99 | server CPU/req | client CPU/req |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for server, result in report["http_concurrency_1"].items():
        for kind, entry in result.items():
            if isinstance(entry, dict) and "p50_us" in entry:
                lines.append(
                    f"| {server} | {kind} | {entry['p50_us']:.0f} | {entry['p99_us']:.0f} | "
                    f"{entry['server_cpu_us_per_request']:.0f} | "
                    f"{entry['client_cpu_us_per_request']:.0f} |"
                )
    lines += ["", "Throughput, concurrency 64, batch-1 requests", "",
              "| server | request | predictions/s | p50 us | p99 us | statuses | mean batch | "
              "server CPU/req us |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for server, result in report["throughput_concurrency_64"].items():
        for kind, entry in result.items():
            batch = entry.get("server_metrics", {}).get("mean_batch_size")
            lines.append(
                f"| {server} | {kind} | {entry['predictions_per_s']:,.0f} | "
                f"{entry['latency']['p50_us']:.0f} | {entry['latency']['p99_us']:.0f} | "
                f"{entry['statuses']} | {'-' if batch is None else batch} | "
                f"{entry['server_cpu_us_per_request']:.0f} |"
            )
    mls = report["mlserver"]
    if "skipped" in mls:
        lines += ["", f"mlserver: skipped: {mls['skipped']}"]
    else:
        binary = mls["binary_tensors"]
        lines += ["", f"mlserver {mls['version']} ({mls['inference_in']}): same outputs as "
                  f"liam-core serve: {mls['same_outputs_as_liam_core_serve']['same_values']}; "
                  "Triton binary tensors: " + ("accepted" if binary["accepted"] else
                  f"refused (status {binary['status']}: {binary['response'][:160]}; "
                  f"{binary.get('server_log_error', '')})")]  # fmt: skip
    if "skipped" not in mls:
        lines.append(mls["notes"])
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark; write the JSON report and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke test")
    parser.add_argument("--out", default=None,
                        help=f"the JSON report (default {DEFAULT_OUT.relative_to(ROOT)}; "
                        "--quick writes none unless given)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    parser.add_argument("--mlserver-venv", default=str(MLSERVER_VENV),
                        help="the virtual environment with mlserver and liam-core, built there "
                        "once if missing (default %(default)s)")  # fmt: skip
    parser.add_argument("--no-mlserver", action="store_true",
                        help="do not build or run the MLServer contender")  # fmt: skip
    options = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    settings = dict(QUICK if options.quick else FULL)
    out = options.out or (None if options.quick else str(DEFAULT_OUT))
    try:
        venv = None if options.no_mlserver else Path(options.mlserver_venv)
        report = run(settings, options.keep, venv)
    finally:
        _stop_all()
    report["quick"] = options.quick
    text = json.dumps(report, indent=2)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as handle:
            handle.write(text + "\n")
    else:
        print(text)
    print()
    print(table(report))
    if out:
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
