"""The inference server: every model of a repository over the Open Inference Protocol (v2).

A thin ASGI application run by uvicorn (httptools, uvloop), no web framework: each request is
parsed (orjson, or Triton's binary tensors), checked, and queued for its model. A drain of the
queue is scheduled on the event loop after the callbacks already due, so the requests read in
the same turn of the loop join one batch (up to ``max_batch_size`` rows; with
``max_queue_delay_us`` the drain waits that long for more, and uvloop rounds timers to whole
milliseconds); the batch runs the model's :class:`~liam_core.serve.Predictor`, whose
executables were compiled at load for every batch bucket, so nothing is traced or compiled
while serving. Requests that arrive while a batch runs form the next one. A full queue
answers ``503`` with ``Retry-After``.

Versions: each model serves its latest version (or the one pinned in ``serve.versions``). The
repository is polled every ``poll_s`` seconds (and on ``POST /v2/repository/models/{name}/load``);
a new version is loaded and compiled beside the serving one, then swapped in between two
batches, so no request fails during the swap. A version that does not load (a corrupt bundle)
is logged in one line; the model keeps serving its current version, or is not ready.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hmac
import importlib.metadata
import importlib.util
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

try:  # the serve extra; run_server says what to install
    import orjson
except ImportError:  # pragma: no cover
    orjson = None

from .._checks import check_int, check_number, quote
from .._errors import ConfigError, ConfigTypeError, LiamError
from ._predictor import Predictor
from ._protocol import (
    HEADER_LENGTH,
    RequestError,
    encode_response,
    parse_infer,
    tensor_metadata,
)
from ._repository import ModelRepository, check_model_name

log = logging.getLogger("liam_core.serve")

_MODEL_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?$")
_LOAD_PATH = re.compile(r"^/v2/repository/models/([^/]+)/(load|unload)$")
_LATENCY_BUCKETS = (5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0)
EXPLAIN_OUTPUT = "attributions"


@dataclasses.dataclass(frozen=True)
class ServeSpec:
    """The server's settings (``serve.*`` of ``conf/serve.yaml``).

    Args:
        repository: the model repository's folder (``REPO/<name>/<version>/``).
        host: the address to bind; ``127.0.0.1`` (this machine only) unless told otherwise.
        port: the TCP port.
        models: the models to serve (``None``: every model of the repository).
        versions: pinned versions, ``{name: version}``; the others serve their latest.
        max_batch_size: the most rows a batch holds (and the largest compiled bucket).
        max_queue_delay_us: how long a batch waits for more requests once one is queued
            (0: never waits; requests that arrive while a batch runs form the next one).
        max_queue_size: requests waiting per model at most; beyond it, ``503``.
        max_body_bytes: the largest request body; beyond it, ``413``.
        poll_s: seconds between looks at the repository for new versions (0: never).
        token: a bearer token every request but the health checks must carry (``None``:
            no authentication).
        drain_s: on SIGTERM, seconds to finish the requests in flight.
    """

    repository: str
    host: str = "127.0.0.1"
    port: int = 8000
    models: tuple[str, ...] | None = None
    versions: Mapping[str, int] = dataclasses.field(default_factory=dict)
    max_batch_size: int = 64
    max_queue_delay_us: int = 0
    max_queue_size: int = 256
    max_body_bytes: int = 16 << 20
    poll_s: float = 5.0
    token: str | None = None
    drain_s: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.repository, str) or not self.repository:
            raise ConfigTypeError(
                f"`serve.repository` must be a folder, got {quote(self.repository)}"
            )
        if not isinstance(self.host, str) or not self.host:
            raise ConfigTypeError(f"`serve.host` must be an address, got {quote(self.host)}")
        check_int(self.port, "serve.port", minimum=0, maximum=65535)
        if self.models is not None:
            if isinstance(self.models, str) or not isinstance(self.models, list | tuple):
                raise ConfigTypeError(
                    f"`serve.models` must be a list or null, got {quote(self.models)}"
                )
            object.__setattr__(self, "models", tuple(self.models))
            for name in self.models:
                check_model_name(name)
        if not isinstance(self.versions, Mapping):
            raise ConfigTypeError(
                f"`serve.versions` must be a mapping name: version, got {quote(self.versions)}"
            )
        for name, version in self.versions.items():
            check_model_name(name)
            check_int(version, f"serve.versions.{name}")
        object.__setattr__(self, "versions", dict(self.versions))
        check_int(self.max_batch_size, "serve.max_batch_size", maximum=1 << 16)
        check_int(self.max_queue_delay_us, "serve.max_queue_delay_us", minimum=0, maximum=10**7)
        check_int(self.max_queue_size, "serve.max_queue_size", maximum=1 << 20)
        check_int(self.max_body_bytes, "serve.max_body_bytes", minimum=1024, maximum=1 << 32)
        check_number(self.poll_s, "serve.poll_s", minimum=0)
        check_number(self.drain_s, "serve.drain_s", minimum=0)
        if self.token is not None and (not isinstance(self.token, str) or len(self.token) < 8):
            raise ConfigError("`serve.token` must be a string of at least 8 characters or null")


@dataclasses.dataclass(eq=False)
class _Pending:
    rows: np.ndarray
    explain: bool
    future: asyncio.Future


@dataclasses.dataclass(eq=False)
class _Model:
    """One served model: its predictor (swapped when a new version loads), its queue."""

    name: str
    predictor: Predictor | None = None
    version: int | None = None
    reason: str = "loading"
    failed: int | None = None  # the newest version that did not load (not retried)
    queue: collections.deque = dataclasses.field(default_factory=collections.deque)
    queued_rows: int = 0
    scheduled: bool = False  # a drain of the queue is scheduled on the event loop
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    @property
    def ready(self) -> bool:
        return self.predictor is not None


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "liam_requests", "Infer requests by model, version and HTTP status",
            ["model", "version", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "liam_request_latency_seconds", "Infer request latency, parse to response",
            ["model"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "liam_batch_size", "Rows per executed batch", ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=self.registry,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "liam_queue_depth", "Requests waiting per model", ["model"], registry=self.registry
        )
        self._children: dict[tuple, Any] = {}
        self.rejections = Counter(
            "liam_rejections", "Requests refused before running: queue full, body too large, "
            "unauthorized, model not ready", ["model", "reason"], registry=self.registry,
        )  # fmt: skip

    def child(self, metric: str, *labels: str) -> Any:
        """``getattr(self, metric).labels(*labels)``, looked up once (it is on every request)."""
        key = (metric, *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = getattr(self, metric).labels(*labels)
        return found


class InferenceServer:
    """The ASGI application (``uvicorn`` runs it; see :func:`run_server`).

    Routes: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2``, ``/v2/models/{name}``,
    ``/v2/models/{name}/versions/{v}``, ``.../ready``, ``POST .../infer``,
    ``POST /v2/repository/index``, ``POST /v2/repository/models/{name}/load``,
    ``GET /metrics`` (Prometheus).
    """

    def __init__(self, spec: ServeSpec) -> None:
        self.spec = spec
        self.repository = ModelRepository(spec.repository)
        self.models: dict[str, _Model] = {}
        self.metrics = _Metrics()
        self._tasks: list[asyncio.Task] = []
        self._loaded = asyncio.Event()
        self._token = None if spec.token is None else f"Bearer {spec.token}".encode()
        try:
            self._version = importlib.metadata.version("liam-core")
        except importlib.metadata.PackageNotFoundError:
            self._version = "unknown"

    # -- life --------------------------------------------------------------------------------

    async def startup(self) -> None:
        self._tasks.append(asyncio.create_task(self._load_all(first=True)))
        if self.spec.poll_s > 0:
            self._tasks.append(asyncio.create_task(self._poll()))

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _names(self) -> list[str]:
        return list(self.spec.models) if self.spec.models is not None else self.repository.models()

    async def _load_all(self, first: bool = False) -> None:
        try:
            for name in self._names():
                await self.load(name)
        finally:
            if first:
                self._loaded.set()

    async def _poll(self) -> None:
        await self._loaded.wait()
        while True:
            await asyncio.sleep(self.spec.poll_s)
            try:
                await self._load_all()
            except Exception:  # never let the poller die
                log.exception("polling the repository %s failed", self.spec.repository)

    async def load(self, name: str) -> _Model:
        """Load ``name``'s wanted version if it is not the one serving (swap it in)."""
        model = self.models.get(name)
        if model is None:
            model = self.models[name] = _Model(name)
        async with model.lock:
            wanted = self.spec.versions.get(name) or self.repository.latest(name)
            if wanted is None:
                if model.predictor is None:
                    model.reason = f"no version of {name!r} in {self.spec.repository}"
                return model
            if wanted in (model.version, model.failed):
                return model
            path = self.repository.root / name / str(wanted)
            try:
                predictor = await asyncio.get_running_loop().run_in_executor(
                    None,
                    lambda: Predictor.load(path, max_batch_size=self.spec.max_batch_size),
                )
            except Exception as error:  # a bundle that does not load never stops the server
                model.failed = wanted
                kept = f"; still serving version {model.version}" if model.ready else ""
                if not model.ready:
                    model.reason = f"version {wanted} does not load: {error}"
                log.error("model %s version %s does not load: %s%s", name, wanted, error, kept)
                return model
            model.predictor, model.version, model.reason = predictor, wanted, ""
            log.info("serving model %s version %s", name, wanted)
        return model

    # -- batching ----------------------------------------------------------------------------

    def _enqueue(self, model: _Model, pending: _Pending) -> None:
        model.queue.append(pending)
        model.queued_rows += pending.rows.shape[0]
        if not model.scheduled:
            model.scheduled = True
            loop = asyncio.get_running_loop()
            delay = self.spec.max_queue_delay_us / 1e6
            if delay and model.queued_rows < self.spec.max_batch_size:
                loop.call_later(delay, self._drain, model)
            else:
                # After the callbacks already due: the requests read in this turn of the
                # loop join the batch (natural batching), and a lone request waits for
                # nothing but one turn.
                loop.call_soon(self._drain, model)

    def _drain(self, model: _Model) -> None:
        """Run one batch from ``model``'s queue; schedule the next while requests wait."""
        model.scheduled = False
        limit = self.spec.max_batch_size
        batch, rows = [], 0
        while model.queue and (not batch or rows + model.queue[0].rows.shape[0] <= limit):
            pending = model.queue.popleft()
            batch.append(pending)
            rows += pending.rows.shape[0]
        model.queued_rows -= rows
        self.metrics.child("queue_depth", model.name).set(len(model.queue))
        if batch:
            self._run(model, batch, rows)
        if model.queue and not model.scheduled:
            model.scheduled = True
            asyncio.get_running_loop().call_soon(self._drain, model)

    def _run(self, model: _Model, batch: list[_Pending], n_rows: int) -> None:
        predictor, version = model.predictor, model.version
        stale = [p for p in batch if p.rows.shape[1] != predictor.n_features]
        if stale:  # checked against a version swapped out since, with other features
            for pending in stale:
                pending.future.set_exception(RequestError(
                    f"model {model.name!r} changed to version {version} (other features) while "
                    "the request waited; send it again", 503,
                ))  # fmt: skip
            batch = [p for p in batch if p not in stale]
            n_rows = sum(p.rows.shape[0] for p in batch)
            if not batch:
                return
        try:
            rows = batch[0].rows if len(batch) == 1 else np.concatenate([p.rows for p in batch])
            outputs = predictor.run(rows)
            explained = [p for p in batch if p.explain]
            if explained:
                attributions = predictor.run(
                    np.concatenate([p.rows for p in explained]), "explain"
                )[EXPLAIN_OUTPUT]
        except Exception as error:  # a failing batch fails its requests, not the server
            log.exception(
                "model %s version %s: a batch of %d rows failed", model.name, version, n_rows
            )
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        self.metrics.child("batch_size", model.name).observe(n_rows)
        start = explained_start = 0
        for pending in batch:
            n = pending.rows.shape[0]
            part = {name: value[start : start + n] for name, value in outputs.items()}
            if pending.explain:
                part[EXPLAIN_OUTPUT] = attributions[explained_start : explained_start + n]
                explained_start += n
            start += n
            if not pending.future.done():
                pending.future.set_result((version, part))

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, body, headers = await self._route(scope, receive)
        except RequestError as error:
            status, body, headers = error.status, _error(str(error)), []
        except Exception as error:
            log.exception("internal error on %s %s", scope["method"], scope["path"])
            status, body, headers = 500, _error(f"internal error: {type(error).__name__}"), []
        if not any(key == b"content-type" for key, _ in headers):
            headers = [(b"content-type", b"application/json"), *headers]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: dict, receive: Any) -> tuple[int, bytes, list]:
        method, path = scope["method"], scope["path"]
        headers = dict(scope["headers"])
        if path.startswith("/v2/health/"):
            if method != "GET":
                raise RequestError(f"{path} takes GET, got {method}", 405)
            if path == "/v2/health/live":
                return 200, b'{"live":true}', []
            if path == "/v2/health/ready":
                ready = (
                    self._loaded.is_set()
                    and bool(self.models)
                    and all(m.ready for m in self.models.values())
                )
                return (200 if ready else 503), orjson.dumps({"ready": ready}), []
            raise RequestError(f"no route {path}", 404)
        if self._token is not None and not hmac.compare_digest(
            headers.get(b"authorization", b""), self._token
        ):
            self.metrics.rejections.labels("", "unauthorized").inc()
            raise RequestError(
                "unauthorized: send the header Authorization: Bearer <serve.token>", 401
            )
        if path == "/metrics":
            from prometheus_client import generate_latest

            return (
                200,
                generate_latest(self.metrics.registry),
                [(b"content-type", b"text/plain; version=0.0.4")],
            )
        if path == "/v2":
            return 200, orjson.dumps({
                "name": "liam-core", "version": self._version,
                "extensions": ["binary_tensor_data", "model_repository"],
            }), []  # fmt: skip
        found = _MODEL_PATH.match(path)
        if found:
            name, version, action = found.groups()
            model = self._model(name, version)
            if action == "/infer":
                if method != "POST":
                    raise RequestError(f"{path} takes POST, got {method}", 405)
                return await self._infer(model, scope, headers, receive)
            if method != "GET":
                raise RequestError(f"{path} takes GET, got {method}", 405)
            if action == "/ready":
                return (
                    (200 if model.ready else 503),
                    orjson.dumps({"name": name, "ready": model.ready}),
                    [],
                )
            return 200, self._metadata(model), []
        if path == "/v2/repository/index" and method == "POST":
            await self._read_body(scope, headers, receive, "")
            index = []
            for name in self._names():
                model = self.models.get(name)
                state = "READY" if model and model.ready else "UNAVAILABLE"
                entry = {"name": name, "state": state}
                if model is not None:
                    entry["version"] = "" if model.version is None else str(model.version)
                    if not model.ready:
                        entry["reason"] = model.reason
                index.append(entry)
            return 200, orjson.dumps(index), []
        found = _LOAD_PATH.match(path)
        if found and method == "POST":
            await self._read_body(scope, headers, receive, "")
            name, action = found.groups()
            if action == "unload":
                raise RequestError(
                    "unload is not supported: every model of the repository is served", 400
                )
            if name not in self._names():
                raise RequestError(
                    f"no model {name!r} in the repository {self.spec.repository}", 404
                )
            model = await self.load(name)
            if not model.ready:
                raise RequestError(f"model {name!r} is not ready: {model.reason}", 400)
            return 200, b"{}", []
        raise RequestError(f"no route {method} {path}", 404)

    def _model(self, name: str, version: str | None) -> _Model:
        model = self.models.get(name)
        if model is None:
            raise RequestError(f"unknown model {name!r}; serving {sorted(self.models)}", 404)
        if version not in (None, "") and model.ready and version != str(model.version):
            raise RequestError(
                f"model {name!r} version {version!r} is not loaded; it serves version "
                f"{model.version}", 404,
            )  # fmt: skip
        return model

    def _metadata(self, model: _Model) -> bytes:
        if not model.ready:
            raise RequestError(f"model {model.name!r} is not ready: {model.reason}", 503)
        manifest = model.predictor.bundle.manifest
        outputs = tensor_metadata(manifest["outputs"])
        if model.predictor.can_explain:
            outputs += tensor_metadata(
                [{"name": name, **entry}
                 for name, entry in manifest["functions"]["explain"]["outputs"].items()]
            )  # fmt: skip
        return orjson.dumps({
            "name": model.name,
            "versions": [str(model.version)],
            "platform": "jax_export",
            "inputs": tensor_metadata(manifest["inputs"]),
            "outputs": outputs,
            "parameters": {"feature_names": manifest["feature_names"], "task": manifest["task"]},
        })  # fmt: skip

    async def _read_body(self, scope: dict, headers: dict, receive: Any, model: str) -> bytes:
        limit = self.spec.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self.metrics.rejections.labels(model, "body_too_large").inc()
            raise RequestError(
                f"the request body is {int(declared)} bytes; the limit is {limit}", 413
            )
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError("the client disconnected", 400)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                self.metrics.rejections.labels(model, "body_too_large").inc()
                raise RequestError(f"the request body exceeds the limit of {limit} bytes", 413)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _infer(self, model: _Model, scope: dict, headers: dict, receive: Any) -> tuple:
        started = time.perf_counter()
        body = await self._read_body(scope, headers, receive, model.name)
        status, version = 200, model.version
        try:
            if not model.ready:
                self.metrics.rejections.labels(model.name, "not_ready").inc()
                raise RequestError(f"model {model.name!r} is not ready: {model.reason}", 503)
            predictor = model.predictor
            header = headers.get(HEADER_LENGTH.encode())
            request = parse_infer(body, None if header is None else header.decode("latin-1"),
                                  predictor.n_features)  # fmt: skip
            names = request.outputs
            explain = names is not None and EXPLAIN_OUTPUT in names
            if names is not None:
                known = set(predictor.output_names) | (
                    {EXPLAIN_OUTPUT} if predictor.can_explain else set()
                )
                unknown = [name for name in names if name not in known]
                if unknown:
                    raise RequestError(
                        f"outputs: unknown output {quote(unknown[0])}; the model has {sorted(known)}"
                    )
            try:
                rows = predictor.rows(request.rows)
            except LiamError as error:
                raise RequestError(f"inputs[0]: {error}") from None
            if len(model.queue) >= self.spec.max_queue_size:
                self.metrics.rejections.labels(model.name, "queue_full").inc()
                raise RequestError(
                    f"model {model.name!r}: {len(model.queue)} requests are waiting (the "
                    "limit, serve.max_queue_size); retry shortly", 503,
                )  # fmt: skip
            future = asyncio.get_running_loop().create_future()
            self._enqueue(model, _Pending(rows, explain, future))
            version, outputs = await future
            if names is not None:
                outputs = {name: outputs[name] for name in names}
            body, header_length = encode_response(model.name, version, outputs, request)
        except RequestError as error:
            status = error.status
            self.metrics.requests.labels(model.name, str(version or ""), str(status)).inc()
            if status == 503:
                return status, _error(str(error)), [(b"retry-after", b"1")]
            raise
        self.metrics.child("requests", model.name, str(version), "200").inc()
        self.metrics.child("latency", model.name).observe(time.perf_counter() - started)
        extra = []
        if header_length is not None:
            extra = [(HEADER_LENGTH.encode(), str(header_length).encode())]
            extra.append((b"content-type", b"application/octet-stream"))
        return 200, body, extra


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


def run_server(spec: ServeSpec) -> None:
    """Serve ``spec.repository`` until SIGINT or SIGTERM (which drain in-flight requests)."""
    missing = [
        name
        for name in ("uvicorn", "httptools", "uvloop", "orjson", "prometheus_client")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ConfigError(
            f"the server needs the optional packages {missing}: pip install 'liam-core[serve]'"
        )
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            # uvicorn raises a captured signal again once it has drained; a drained SIGTERM or
            # SIGINT is this server's normal end (exit status 0), so it is not raised again.
            captured = getattr(self, "_captured_signals", None)
            if captured and captured[-1] == sig:
                captured.pop()

    app = InferenceServer(spec)
    config = uvicorn.Config(
        app,
        host=spec.host,
        port=spec.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,  # the job's logging (conf/hydra/job_logging) stays in charge
        timeout_graceful_shutdown=spec.drain_s,
    )
    server = _Server(config)
    log.info("serving %s on http://%s:%s", spec.repository, spec.host, spec.port)
    print(f"serving {spec.repository} on http://{spec.host}:{spec.port}", flush=True)
    server.run()
