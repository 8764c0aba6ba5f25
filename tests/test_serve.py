"""The HTTP service: a real uvicorn server on 127.0.0.1 (free port, in a thread), spoken to with httpx."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from ledgformer.cli.main import main
from ledgformer.db import LatencyDB, median_iqr
from ledgformer.graph.builder import GraphBuilder
from ledgformer.graph.ir import ArchGraph
from ledgformer.graph.onnx_import import load_onnx
from ledgformer.serve import create_app
from test_db import tiny_onnx, use_tiny_shipped

CARD = "help/1080ti_32"
LIMIT_MB = 1.0


class _M:
    def __init__(self, times: list[float]) -> None:
        self.times_ms = times
        self.median_ms, self.iqr_ms = median_iqr(times)


def graph(width: int) -> ArchGraph:
    b = GraphBuilder(name=f"net{width}", source="test")
    x = b.input((1, 3, 16, 16))
    b.act(b.conv(x, width, 3))
    return b.build()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('serve') / 'latency.db'}"
    with LatencyDB(url) as db:
        db.add_platform("gpu", CARD)
        db.add_measurement(graph(8), "gpu", _M([2.0, 2.2, 2.4]))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(url, max_upload_mb=LIMIT_MB), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def client(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=30) as c:
        yield c


def test_health_platforms_docs(client: httpx.Client) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["schema_revision"] and "fallback" in health["predictor"]
    platforms = client.get("/platforms").json()
    assert [(p["name"], p["measurements"]) for p in platforms["database"]] == [("gpu", 1)]
    assert CARD in platforms["cards"]
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "multipart/form-data" in spec["paths"]["/predict"]["post"]["requestBody"]["content"]


def test_predict_ir_json_measured_and_predicted(client: httpx.Client) -> None:
    r = client.post("/predict", json={"graph": graph(8).to_dict(), "platform": "gpu"})
    assert r.status_code == 200, r.text
    body = r.json()
    got = (body["source"], body["latency_ms"], body["platform"], body["n_repeats"])
    assert got == ("measured", 2.2, "gpu", 3)
    g = graph(16)
    r = client.post("/predict", json={"graph": g.to_dict(), "platform": "gpu"})
    body = r.json()
    assert body["source"] == "predicted" and body["predictor"].startswith("flops-proportional-fit n=1")
    # hand check: 2.2 ms for graph(8)'s FLOPs, scaled to graph(16)'s
    assert body["latency_ms"] == pytest.approx(2.2 * g.flops / graph(8).flops)
    assert body["graph_hash"] == g.content_hash()


def test_predict_inline_card_and_registry_card(client: httpx.Client) -> None:
    card = {"name": "toy", "kind": "gpu", "vendor": "x", "chip": "y", "peak_tflops_fp32": 1.0}
    body = client.post("/predict", json={"graph": graph(8).to_dict(), "card": card}).json()
    assert body["platform"] == "toy" and body["predictor"].startswith("roofline-bound")
    assert body["latency_ms"] == pytest.approx(graph(8).flops / 1e12 * 1e3)
    body = client.post("/predict", json={"graph": graph(8).to_dict(), "platform": "help/titanx_1"}).json()
    assert body["source"] == "predicted" and body["platform"] == "help/titanx_1"
    # a registry card without peak figures or measurements: no honest estimate, so a clear 422
    r = client.post("/predict", json={"graph": graph(8).to_dict(), "platform": "help/pixel3"})
    assert r.status_code == 422 and "no prediction for platform 'help/pixel3'" in r.json()["detail"]


def test_predict_onnx_upload(client: httpx.Client, tmp_path: Path) -> None:
    data = tiny_onnx()
    r = client.post("/predict", files={"file": ("tiny.onnx", data, "application/octet-stream")},
                    data={"platform": "gpu"})
    assert r.status_code == 200, r.text
    body = r.json()
    (tmp_path / "tiny.onnx").write_bytes(data)
    assert body["graph_hash"] == load_onnx(tmp_path / "tiny.onnx").content_hash()
    assert body["source"] == "predicted"
    r = client.post("/predict", files={"file": ("tiny.onnx", data)},
                    data={"card": json.dumps({"name": "toy2", "kind": "cpu", "vendor": "x", "chip": "y",
                                              "memory_bandwidth_gbs": 10.0})})
    assert r.status_code == 200 and r.json()["platform"] == "toy2"


@pytest.mark.parametrize(("kwargs", "status", "words"), [
    ({"files": {"file": ("x.onnx", b"definitely not a protobuf \xff\xfe")}, "data": {"platform": "gpu"}},
     400, "is not an ONNX model"),
    ({"files": {"file": ("x.onnx", b"")}, "data": {"platform": "gpu"}}, 400, "no graph nodes"),
    ({"files": {"other": ("x.onnx", b"abc")}, "data": {"platform": "gpu"}}, 422, 'field named "file"'),
    ({"json": {"graph": {"ir_version": 1, "nodes": [{"op": "bogus"}], "edges": []}, "platform": "gpu"}},
     422, "not in the vocabulary"),
    ({"json": {"graph": {"ir_version": 1, "edges": []}, "platform": "gpu"}}, 422, "missing field 'nodes'"),
    ({"json": {"graph": [], "platform": "gpu"}}, 422, '"graph"'),
    ({"json": {"platform": "gpu"}}, 422, '"graph"'),
    ({"json": {"graph": "G", "platform": "no-such-platform"}}, 404, "unknown platform 'no-such-platform'"),
    ({"json": {"graph": "G", "platform": "/etc/passwd"}}, 400, "not a file path"),
    ({"json": {"graph": "G", "card": {"name": "q", "kind": "quantum", "vendor": "x", "chip": "y"}}},
     422, "bad card"),
    ({"json": {"graph": "G", "card": "help/pixel3"}}, 422, "JSON object"),
    ({"json": {"graph": "G", "platform": "gpu", "card": {"name": "q"}}}, 422, "exactly one"),
    ({"json": {"graph": "G"}}, 422, "exactly one"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "application/json"),
])
def test_bad_requests_get_clear_4xx(client: httpx.Client, kwargs: dict, status: int, words: str) -> None:
    if kwargs.get("json", {}).get("graph") == "G":
        kwargs = {**kwargs, "json": {**kwargs["json"], "graph": graph(8).to_dict()}}
    r = client.post("/predict", **kwargs)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_request_size_limit_413(client: httpx.Client) -> None:
    big = b"\0" * int(LIMIT_MB * 1e6 + 10)
    r = client.post("/predict", files={"file": ("big.onnx", big)}, data={"platform": "gpu"})
    assert r.status_code == 413 and "limit of 1 MB" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the bytes actually received are counted
        for _ in range(3):
            yield b"x" * 400_000

    r = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get("/health").status_code == 200  # the server is still fine


def test_cli_serve_default_is_the_shipped_predictor_loaded_once(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`ledgformer serve` (in-process, uvicorn.run captured): without --predictor the shipped latency
    predictor answers, loaded once at start-up however many requests come; --predictor flops is the
    labelled fallback. /health and every answer name the predictor and its checkpoint hash."""
    from starlette.testclient import TestClient

    from ledgformer.api import Predictor as Trained

    versions = use_tiny_shipped(tmp_path / "shipped", monkeypatch)
    url = f"sqlite:///{tmp_path / 'latency.db'}"
    with LatencyDB(url) as db:
        db.add_platform("gpu", CARD)
        db.add_measurement(graph(8), "gpu", _M([2.0, 2.2, 2.4]))
    loads, apps = [], []
    real_load = Trained.load.__func__
    counting = classmethod(lambda cls, *a, **k: loads.append(a) or real_load(cls, *a, **k))
    monkeypatch.setattr(Trained, "load", counting)
    monkeypatch.setattr(uvicorn, "run", lambda app, **_kw: apps.append(app))

    assert main(["serve", "--db", url]) == 0
    label = f"ledgformer:latency-all {versions['latency-all']}"
    with TestClient(apps[-1]) as client:
        assert client.get("/health").json()["predictor"] == label
        for width in (16, 24, 16):
            body = client.post("/predict", json={"graph": graph(width).to_dict(), "platform": "gpu"}).json()
            assert (body["source"], body["predictor"]) == ("predicted", label) and body["latency_ms"] > 0
        # a card without peak figures, which the FLOPs fallback cannot estimate: the model can
        body = client.post("/predict", json={"graph": graph(8).to_dict(), "platform": "help/pixel3"}).json()
        assert body["predictor"] == label
        measured = client.post("/predict", json={"graph": graph(8).to_dict(), "platform": "gpu"}).json()
        assert measured["source"] == "measured"
    assert loads == [("latency-all",)]
    apps[-1].state.db.close()

    assert main(["serve", "--db", url, "--predictor", "flops"]) == 0
    with TestClient(apps[-1]) as client:
        assert "fallback" in client.get("/health").json()["predictor"]
        body = client.post("/predict", json={"graph": graph(16).to_dict(), "platform": "gpu"}).json()
        assert body["predictor"].startswith("flops-proportional-fit n=1")
    assert len(loads) == 1
    apps[-1].state.db.close()
