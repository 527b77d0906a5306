"""The inference server, from the outside: ``liam-core serve`` in a subprocess, queried with
``tritonclient`` (a client nobody here wrote, default options), ``http.client`` and a raw
asyncio client; malformed requests, load, a full queue, new and corrupt versions, signals."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from _helpers import ROOT, clean_env, free_port, kill
from tritonclient.utils import InferenceServerException

from liam_core.models import make_model
from liam_core.serve import ModelRepository, Predictor, export_bundle
from liam_core.train import AnomalyDetection, TaskSpec

FEATURES = ["cpu", "latency_ms", "errors"]
START_TIMEOUT_S = 120


def _bundle(folder: Path, seed: int, threshold: float = 3.0) -> Path:
    model = make_model("autoencoder", in_features=3, width=8, latent=2, seed=seed)
    model = model.with_normalization(np.array([50.0, 100.0, 1.0]), np.array([10.0, 30.0, 1.0]))
    servable = AnomalyDetection(TaskSpec(attribution_steps=8)).servable(
        model, {"threshold": np.float32(threshold)}, FEATURES
    )
    return export_bundle(servable, folder, edge=False)


class Server:
    """``python -m liam_core serve`` on a free port; stdout/stderr kept in files."""

    def __init__(
        self, repository: Path, folder: Path, *overrides: str, wait_for: str = "/v2/health/ready"
    ) -> None:
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "server.txt"
        args = [
            sys.executable, "-m", "liam_core", "serve", f"serve.repository={repository}",
            f"serve.port={self.port}", f"hydra.run.dir={folder / 'run'}", *overrides,
        ]  # fmt: skip
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=clean_env()
            )
        self.wait_ready(wait_for)

    def wait_ready(self, path: str = "/v2/health/ready") -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if self.get(path)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready in time: {self.log.read_text()[-3000:]}")

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        finally:
            connection.close()

    def get(self, path: str):
        status, body, _ = self.request("GET", path)
        return status, body

    def infer(self, rows, *, model: str = "ops", headers=None, **extra):
        body = json.dumps({"inputs": [{"name": "x", "shape": list(np.shape(rows)),
                                       "datatype": "FP32", "data": np.asarray(rows).tolist()}],
                           **extra}).encode()  # fmt: skip
        status, data, _ = self.request("POST", f"/v2/models/{model}/infer", body, headers)
        return status, json.loads(data)

    def metrics(self) -> str:
        return self.get("/metrics")[1].decode()

    def stop(self) -> None:
        kill([self.process])


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    staging = tmp_path_factory.mktemp("bundles")
    repo = ModelRepository(root / "models")
    repo.publish(_bundle(staging / "one", seed=1), "ops")
    return repo


@pytest.fixture(scope="module")
def server(repository, tmp_path_factory):
    running = Server(
        repository.root, tmp_path_factory.mktemp("server"), "serve.poll_s=0.3",
        "serve.max_queue_size=1024", "serve.max_body_bytes=65536",
    )  # fmt: skip
    yield running
    running.stop()


def rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.array([50.0, 100.0, 1.0]) + rng.normal(size=(n, 3)) * [10, 30, 1]).astype(np.float32)


def expected(repository: ModelRepository, x: np.ndarray, version: int = 1) -> dict:
    return Predictor.load(repository.path("ops", version)).predict(x, explain=True)


# --------------------------------------------------------------------------- the protocol


def test_tritonclient_with_default_options_reads_health_metadata_and_predictions(
    server, repository
):
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("ops")
    metadata = client.get_model_metadata("ops")
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    assert [o["name"] for o in metadata["outputs"]] == ["anomaly", "score", "attributions"]
    assert metadata["parameters"]["feature_names"] == FEATURES
    x = rows(5)
    x[2] = [99.0, 900.0, 40.0]
    tensor = triton.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)  # binary by default
    result = client.infer("ops", [tensor])  # every output, binary by default
    reference = expected(repository, x)
    np.testing.assert_allclose(result.as_numpy("score"), reference["score"], rtol=1e-6)
    assert result.as_numpy("anomaly").tolist() == reference["anomaly"].tolist()
    assert reference["anomaly"][2]
    wanted = [triton.InferRequestedOutput("attributions", binary_data=False),
              triton.InferRequestedOutput("score")]  # fmt: skip
    explained = client.infer("ops", [tensor], outputs=wanted)
    np.testing.assert_allclose(explained.as_numpy("attributions"), reference["attributions"],
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    assert explained.as_numpy("anomaly") is None
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.infer("nope", [tensor])
    server_metadata = client.get_server_metadata()
    assert server_metadata["name"] == "liam-core"
    assert "binary_tensor_data" in server_metadata["extensions"]


def test_plain_json_requests_get_json_tensors(server, repository):
    x = rows(3, seed=1)
    status, body = server.infer(x, id="r-1")
    assert status == 200, body
    assert body["model_name"] == "ops" and body["model_version"] == "1" and body["id"] == "r-1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["score"]["datatype"] == "FP32" and outputs["score"]["shape"] == [3]
    assert outputs["anomaly"]["datatype"] == "BOOL"
    np.testing.assert_allclose(
        outputs["score"]["data"], expected(repository, x)["score"], rtol=1e-6
    )


BINARY_HEADER = json.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32",
                                       "parameters": {"binary_data_size": 12}}]}).encode()  # fmt: skip
MALFORMED = [
    (b"{not json", {}, 400, "must be JSON"),
    (b"[]", {}, 400, "the request must be a JSON object"),
    (b'{"inputs": []}', {}, 400, "`inputs` must be a non-empty list"),
    (b'{"inputs": [{"name": "y", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}', {}, 400,
     r"inputs\[0\]\.name must be 'x'"),
    (b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}', {}, 400,
     r"inputs\[0\]\.shape must be \[batch, 3\]"),
    (b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]}]}', {}, 400,
     r"inputs\[0\]\.datatype must be a numeric datatype"),
    (b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3]}]}', {}, 400,
     r"inputs\[0\]\.data holds 3 numbers, shape \[2, 3\] needs 6"),
    (b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, "a", 3]}]}', {}, 400,
     r"inputs\[0\]\.data must hold FP32 numbers"),
    (b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 1e39, 3]}]}', {}, 400,
     r"inputs\[0\]: `x` row 0, feature `latency_ms`: 1e\+39 does not fit float32"),
    (b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}], '
     b'"outputs": [{"name": "loss"}]}', {}, 400, r"outputs: unknown output 'loss'"),
    (BINARY_HEADER + b"\x00\x00\x80?", {"Inference-Header-Content-Length": str(len(BINARY_HEADER))},
     400, r"inputs\[0\]: the body holds 4 bytes of binary data for it, expected 12"),
    (b'{"inputs": 1}', {"Inference-Header-Content-Length": "x"}, 400,
     "Inference-Header-Content-Length header must be an integer"),
]  # fmt: skip


@pytest.mark.parametrize("body, headers, status, message", MALFORMED)
def test_a_malformed_request_is_a_4xx_naming_the_field(server, body, headers, status, message):
    got, data, _ = server.request("POST", "/v2/models/ops/infer", body, headers)
    assert got == status, data
    assert re.search(message, json.loads(data)["error"]), data


def test_routes_methods_and_body_limits_answer_with_their_statuses(server):
    assert server.request("GET", "/v2/models/ops/infer")[0] == 405
    assert server.request("GET", "/v2/models/nope")[0] == 404
    assert server.request("GET", "/v2/models/ops/versions/9")[0] == 404
    assert server.request("GET", "/v2/nothing")[0] == 404
    status, data, _ = server.request("POST", "/v2/models/ops/infer", b"x" * 70_000)
    assert status == 413 and "limit is 65536" in json.loads(data)["error"]
    assert server.get("/v2/models/ops/versions/1/ready")[0] == 200


def _mutations(seed: int):
    """Bodies broken in every way a client can break them (JSON and binary)."""
    rng = random.Random(seed)
    good = {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1.0] * 6}]}
    values = [
        None,
        -1,
        0,
        2**70,
        1.5,
        "x",
        "",
        [],
        {},
        [[1]],
        True,
        "FP32",
        [2, 3],
        [0, 3],
        [-1, 3],
    ]
    for _ in range(1000):
        request = json.loads(json.dumps(good))
        tensor = request["inputs"][0]
        kind = rng.randrange(6)
        if kind == 0:
            tensor[rng.choice(["name", "shape", "datatype", "data", "parameters"])] = rng.choice(
                values
            )
        elif kind == 1:
            del tensor[rng.choice(["name", "shape", "datatype", "data"])]
        elif kind == 2:
            request[rng.choice(["inputs", "outputs", "parameters", "id"])] = rng.choice(values)
        elif kind == 3:  # binary data that does not add up
            size = rng.choice([0, 4, 23, 24, 25, 48])
            tensor.pop("data")
            tensor["parameters"] = {"binary_data_size": 24}
            header = json.dumps(request).encode()
            yield (
                header + os.urandom(size),
                {"Inference-Header-Content-Length": str(len(header))},
                size == 24,
            )
            continue
        elif kind == 4:  # truncated text
            text = json.dumps(request).encode()
            yield text[: rng.randrange(len(text))], {}, False
            continue
        else:
            tensor["data"] = [rng.choice([1.0, "nan", None, [1.0], 1e39]) for _ in range(6)]
        yield json.dumps(request).encode(), {}, False


def test_a_thousand_malformed_requests_are_all_4xx_and_the_server_stays_healthy(server):
    statuses = {}
    for body, headers, _ in _mutations(7):
        status, data, _ = server.request("POST", "/v2/models/ops/infer", body, headers)
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            continue
        assert 400 <= status < 500, (status, body[:300], data)
        assert json.loads(data)["error"], data
    assert sum(statuses.values()) == 1000 and statuses.get(500, 0) == 0
    assert server.get("/v2/health/ready")[0] == 200
    assert server.infer(rows(1))[0] == 200


# --------------------------------------------------------------------------- load

REQUEST = (
    "POST /v2/models/ops/infer HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    "Content-Length: {length}\r\n\r\n{body}"
)


async def _client(port: int, bodies: list[bytes], statuses: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for body in bodies:
            writer.write(REQUEST.format(length=len(body), body=body.decode()).encode())
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            statuses.append(int(status_line.split()[1]))
    finally:
        writer.close()


def load(port: int, n: int, concurrency: int) -> list[int]:
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32",
                                   "data": [55.0, 90.0, 1.0]}]}).encode()  # fmt: skip
    statuses: list[int] = []
    per_client = [n // concurrency + (i < n % concurrency) for i in range(concurrency)]

    async def main():
        await asyncio.gather(*(_client(port, [body] * k, statuses) for k in per_client))

    asyncio.run(main())
    return statuses


def _counts(metrics: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for found in re.finditer(r'^liam_requests_total\{model="ops",status="(\d+)",version="[^"]*"\} (\S+)$',
                             metrics, re.MULTILINE):  # fmt: skip
        counts[found[1]] = counts.get(found[1], 0) + float(found[2])
    return counts


def test_ten_thousand_requests_at_concurrency_64_are_each_answered_and_counted(
    repository, tmp_path
):
    tight = Server(repository.root, tmp_path, "serve.max_queue_size=4", "serve.max_batch_size=8",
                   "serve.poll_s=0")  # fmt: skip
    try:
        before = _counts(tight.metrics())
        statuses = load(tight.port, 10_000, 64)
        assert len(statuses) == 10_000
        assert set(statuses) <= {200, 503}, sorted(set(statuses))
        after = _counts(tight.metrics())
        for status in ("200", "503"):
            assert after.get(status, 0) - before.get(status, 0) == statuses.count(int(status))
        assert statuses.count(503) > 0  # the bounded queue did refuse some
        assert 'liam_rejections_total{model="ops",reason="queue_full"}' in tight.metrics()
        busy = tight.request("POST", "/v2/models/ops/infer", b"{}")
        assert busy[0] == 400  # healthy after the load
    finally:
        tight.stop()


def test_a_version_published_under_load_is_served_without_a_failed_request(
    server, repository, tmp_path
):
    statuses: list[int] = []
    versions: list[str] = []

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        body = json.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32",
                                       "data": [55.0, 90.0, 1.0]}]})  # fmt: skip
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline and versions[-1:] != ["2"]:
                writer.write(REQUEST.format(length=len(body), body=body).encode())
                await writer.drain()
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) != b"\r\n":
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                reply = json.loads(await reader.readexactly(length))
                statuses.append(status)
                versions.append(reply.get("model_version"))
                if len(versions) == 50:
                    repository.publish(_bundle(tmp_path / "two", seed=2), "ops")
        finally:
            writer.close()

    asyncio.run(client())
    assert versions[-1] == "2", "the new version was not picked up"
    assert set(statuses) == {200} and versions[0] == "1"
    assert server.get("/v2/models/ops/versions/2/ready")[0] == 200


def test_a_corrupt_version_is_logged_once_and_the_served_one_keeps_serving(
    server, repository, tmp_path
):
    serving = json.loads(server.get("/v2/models/ops")[1])["versions"][0]
    broken = repository.root / "ops" / str(int(serving) + 1)
    shutil.copytree(repository.path("ops"), broken)
    (broken / "weights.npz").write_bytes(b"not the weights")
    log = server.folder / "run" / "serve.log"

    def refusals() -> list[str]:
        return [line for line in log.read_text().splitlines()
                if f"version {broken.name} does not load" in line]  # fmt: skip

    deadline = time.monotonic() + 60
    while not refusals():
        assert time.monotonic() < deadline, "the corrupt version was never tried"
        time.sleep(0.1)
    time.sleep(1.0)  # a few more polls: it is not tried (nor logged) again
    assert server.infer(rows(1))[0] == 200
    assert json.loads(server.get("/v2/models/ops")[1])["versions"] == [serving]
    lines = refusals()
    assert len(lines) == 1 and "weights.npz" in lines[0], lines
    status, data, _ = server.request("POST", "/v2/repository/models/ops/load", b"")
    assert status == 200, data
    shutil.rmtree(broken)


# --------------------------------------------------------------------------- life


def test_a_token_guards_all_but_health_and_a_corrupt_model_is_not_ready_alone(repository, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(repository.path("ops", 1), root / "ops" / "1")
    shutil.copytree(repository.path("ops", 1), root / "broken" / "1")
    (root / "broken" / "1" / "forward.jaxexport").write_bytes(b"truncated")
    guarded = Server(root, tmp_path / "server", "serve.token=s3cret-token", "serve.poll_s=0",
                     wait_for="/v2/health/live")  # fmt: skip
    token = {"Authorization": "Bearer s3cret-token"}
    try:
        assert guarded.get("/v2/health/live")[0] == 200
        assert guarded.infer(rows(1))[0] == 401
        assert guarded.get("/metrics")[0] == 401
        deadline = time.monotonic() + 60
        while guarded.request("GET", "/v2/models/ops/ready", headers=token)[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert guarded.infer(rows(1), headers=token)[0] == 200
        status, body, _ = guarded.request("GET", "/v2/models/broken/ready", headers=token)
        assert status == 503
        assert guarded.get("/v2/health/ready")[0] == 503  # not every model is ready
        status, body = guarded.infer(rows(1), model="broken", headers=token)
        assert status == 503 and "forward.jaxexport: its sha256 differs" in body["error"]
        status, body, _ = guarded.request("POST", "/v2/repository/index", b"", token)
        assert json.loads(body) == [
            {"name": "broken", "state": "UNAVAILABLE", "version": "",
             "reason": json.loads(body)[0]["reason"]},
            {"name": "ops", "state": "READY", "version": "1"},
        ]  # fmt: skip
        log = (tmp_path / "server" / "run" / "serve.log").read_text()
        assert log.count("model broken version 1 does not load") == 1
    finally:
        guarded.stop()


def _tree_hashes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_sigterm_drains_and_exits_0_and_a_sigkilled_server_comes_back(repository, tmp_path):
    before = _tree_hashes(repository.root)
    first = Server(repository.root, tmp_path / "a", "serve.poll_s=0")
    version = json.loads(first.get("/v2/models/ops")[1])["versions"]
    loader = subprocess.Popen(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); "
         f"from test_serve_server import load; load({first.port}, 100000, 16)"],
        env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)
    os.kill(first.process.pid, signal.SIGKILL)  # under load
    first.process.wait(timeout=30)
    kill([loader])
    assert _tree_hashes(repository.root) == before  # the server never writes the repository
    second = Server(repository.root, tmp_path / "b", "serve.poll_s=0")
    assert json.loads(second.get("/v2/models/ops")[1])["versions"] == version
    assert second.infer(rows(2))[0] == 200
    # A request in flight at SIGTERM: its headers and half its body are sent before the signal,
    # the rest after; it must be answered (drained), then the server exits 0.
    body = json.dumps({"inputs": [{"name": "x", "shape": [20_000, 3], "datatype": "FP32",
                                   "data": rows(20_000).tolist()}],
                       "outputs": [{"name": "attributions"}]}).encode()  # fmt: skip
    head = f"POST /v2/models/ops/infer HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", second.port), timeout=120) as client:
        client.sendall(head.encode() + body[: len(body) // 2])
        time.sleep(1.0)  # the server has read the headers: the request is in flight
        os.kill(second.process.pid, signal.SIGTERM)
        time.sleep(0.3)
        client.sendall(body[len(body) // 2 :])
        reply = client.makefile("rb")
        status = int(reply.readline().split()[1])
        length = 0
        while (line := reply.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        answer = json.loads(reply.read(length))
    assert status == 200, answer
    assert len(answer["outputs"][0]["data"]) == 20_000 * 3
    assert second.process.wait(timeout=60) == 0
    assert "Traceback" not in second.log.read_text()
