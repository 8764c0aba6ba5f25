"""The FastAPI app behind ``ledgformer serve``: measured latency if the database has it, else predicted.

``POST /predict`` takes an ONNX upload (multipart: ``file`` plus ``platform`` or ``card``) or an IR
JSON body (``{"graph": {...}, "platform": "..."}`` or ``"card": {...}``) and answers
``{latency_ms, source, predictor, platform}``. Bodies over the size limit get 413; uploads that are
not ONNX, IR that does not parse, unknown platforms and bad cards get a 4xx with a one-line reason.
CPU work (ONNX import, prediction, database) runs in the thread pool, off the event loop.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import onnx
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledgformer import __version__
from ledgformer.db import LatencyDB, Predictor, answer
from ledgformer.db.store import card_json
from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph
from ledgformer.graph.onnx_import import load_onnx
from ledgformer.hardware import HardwareCard, list_cards, load_card

FALLBACK_LABEL = "fallback: FLOPs fit on the platform's measurements, else the card's roofline bound"


class PredictJSON(BaseModel):
    """IR JSON request: the graph as ``ArchGraph.to_dict()``, and a platform name or an inline card."""

    graph: dict[str, Any] = Field(description="ArchGraph IR as JSON (ledgformer inspect --json)")
    platform: str | None = Field(None, description="platform in the database or hardware card name")
    card: dict[str, Any] | None = Field(None, description="inline hardware card fields (instead of platform)")


class PredictResponse(BaseModel):
    latency_ms: float
    source: Literal["measured", "predicted"]
    predictor: str | None = Field(None, description="name and version of the prediction source")
    platform: str
    graph_hash: str
    note: str = ""
    n_repeats: int | None = None
    iqr_ms: float | None = None


class _TooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than the limit of {limit / 1e6:g} MB")


class BodyLimit:
    """ASGI middleware: 413 for bodies over ``max_bytes`` (declared length or bytes actually sent)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            body = json.dumps({"detail": _TooLarge(self.max_bytes).detail}).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _TooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


_OPENAPI_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": PredictJSON.model_json_schema()},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "ONNX model"},
        "platform": {"type": "string", "description": "platform in the database or hardware card name"},
        "card": {"type": "string", "description": "inline hardware card, a JSON object (or platform)"},
        "batch_size": {"type": "integer", "description": "replace the model's batch dimension"}}}},
}}}


def create_app(db_url: str | None = None, *, predictor: Predictor | None = None, max_upload_mb: float = 200.0,
               record: bool = False) -> FastAPI:
    """The service on the database at ``db_url``; ``predictor`` None = the labelled FLOPs fallback.

    ``record`` stores predictions for named platforms in the database (off by default: a public
    service should not grow the database with every upload).
    """
    db = LatencyDB(db_url)
    limit = int(max_upload_mb * 1e6)
    app = FastAPI(title="ledgformer latency service", version=__version__,
                  description="Latency of a neural network on a platform: measured (median of the stored "
                              "repeats) when the database has it, else predicted. See POST /predict.")
    app.add_middleware(BodyLimit, max_bytes=limit)
    app.state.db = db

    @app.get("/health")
    def health() -> dict[str, Any]:
        try:
            revision = db.revision
            db.platforms()
        except Exception as err:  # the database went away: say so instead of a bare 500
            raise HTTPException(503, f"database {db.display_url} unavailable: {err}") from err
        return {"status": "ok", "version": __version__, "database": db.display_url,
                "schema_revision": revision, "predictor": predictor.label if predictor else FALLBACK_LABEL,
                "max_upload_mb": max_upload_mb}

    @app.get("/platforms")
    def platforms() -> dict[str, Any]:
        """Platforms in the database (with measurement counts) and the hardware card names."""
        return {"database": [p.__dict__ for p in db.platforms()], "cards": list_cards()}

    @app.post("/predict", response_model=PredictResponse, openapi_extra=_OPENAPI_BODY,
              responses={400: {"description": "not an ONNX model / malformed request"},
                         404: {"description": "unknown platform"},
                         413: {"description": "request body too large"},
                         415: {"description": "neither JSON nor multipart"},
                         422: {"description": "bad IR JSON, bad card, or a graph that cannot be estimated"}})
    async def predict(request: Request) -> PredictResponse:
        ctype = request.headers.get("content-type", "").lower()
        if ctype.startswith("multipart/form-data"):
            graph, name, card_dict = await _from_multipart(request)
        elif ctype.startswith("application/json"):
            graph, name, card_dict = await _from_json(request)
        else:
            raise HTTPException(415, "send application/json (IR graph) or multipart/form-data (ONNX file)")
        return await run_in_threadpool(_predict, db, predictor, record, graph, name, card_dict)

    return app


async def _from_json(request: Request) -> tuple[ArchGraph, str | None, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as err:
        raise HTTPException(400, f"request body is not valid JSON: {err}") from err
    if not isinstance(body, dict) or not isinstance(body.get("graph"), dict):
        raise HTTPException(422, 'JSON body must be an object with "graph" (IR JSON object) and '
                                 '"platform" (name) or "card" (object)')
    return await run_in_threadpool(_parse_ir, body["graph"]), body.get("platform"), body.get("card")


async def _from_multipart(request: Request) -> tuple[ArchGraph, str | None, Any]:
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, 'multipart request needs the ONNX model in a file field named "file"')
    card_text = form.get("card")
    card: Any = None
    if card_text is not None:
        try:
            card = json.loads(str(card_text))
        except ValueError as err:
            raise HTTPException(422, f'form field "card" is not JSON: {err}') from err
    batch_text = form.get("batch_size")
    if batch_text is not None and not str(batch_text).isdigit():
        raise HTTPException(422, f'form field "batch_size" must be a positive integer, got {batch_text!r}')
    data = await upload.read()
    filename = Path(upload.filename or "upload.onnx").name
    batch = int(str(batch_text)) if batch_text else None
    graph = await run_in_threadpool(_parse_onnx, data, filename, batch)
    platform = form.get("platform")
    return graph, None if platform is None else str(platform), card


def _parse_ir(data: dict[str, Any]) -> ArchGraph:
    try:
        return ArchGraph.from_dict(data)
    except KeyError as err:
        raise HTTPException(422, f"bad IR JSON graph: missing field {err}") from err
    except (LedgformerError, TypeError, ValueError) as err:
        raise HTTPException(422, f"bad IR JSON graph: {err}") from err


def _parse_onnx(data: bytes, filename: str, batch_size: int | None) -> ArchGraph:
    try:
        model = onnx.load_model_from_string(data)
    except Exception as err:  # protobuf's DecodeError and friends
        raise HTTPException(400, f"upload {filename!r} is not an ONNX model ({type(err).__name__})") from err
    if not model.graph.node:
        raise HTTPException(400, f"upload {filename!r} is not an ONNX model (no graph nodes)")
    try:
        return load_onnx(model, name=filename, batch_size=batch_size)
    except LedgformerError as err:
        raise HTTPException(422, f"upload {filename!r}: {err}") from err
    except Exception as err:  # shape inference or checker failures caused by the upload itself
        reason = f"{type(err).__name__}: {err}"
        raise HTTPException(422, f"upload {filename!r} could not be converted: {reason}") from err


def _resolve(db: LatencyDB, name: Any, card_dict: Any) -> tuple[str, HardwareCard, bool]:
    """(platform name, card, whether stored measurements of that name apply)."""
    if (name is None) == (card_dict is None):
        raise HTTPException(422, 'give exactly one of "platform" (a name) or "card" (an inline card)')
    if card_dict is not None:
        if not isinstance(card_dict, dict):
            raise HTTPException(422, '"card" must be a JSON object of hardware card fields')
        try:
            card = load_card(card_dict)
        except LedgformerError as err:
            raise HTTPException(422, f"bad card: {err}") from err
        stored = db.platform_card(card.name)
        return card.name, card, stored is not None and card_json(stored) == card_json(card)
    if not isinstance(name, str) or not name.strip():
        raise HTTPException(422, '"platform" must be a non-empty name')
    stored = db.platform_card(name)
    if stored is not None:
        return name, stored, True
    if name.lower().endswith((".yaml", ".yml")) or name.startswith(("/", ".", "~")):
        raise HTTPException(400, f"platform {name!r}: give a platform or card name, not a file path")
    try:
        return name, load_card(name), True
    except LedgformerError as err:
        raise HTTPException(404, f"unknown platform {name!r}: not in the database and not a hardware card "
                                 f"name (GET /platforms lists both): {err}") from err


def _predict(db: LatencyDB, predictor: Predictor | None, record: bool, graph: ArchGraph, name: Any,
             card_dict: Any) -> PredictResponse:
    platform, card, named = _resolve(db, name, card_dict)
    try:
        result = answer(db, graph, platform, card, predictor, use_measurements=named,
                        record=record and card_dict is None)
    except LedgformerError as err:
        raise HTTPException(422, str(err)) from err
    return PredictResponse(**{k: v for k, v in result.to_dict().items() if k in PredictResponse.model_fields})


__all__ = ["BodyLimit", "PredictJSON", "PredictResponse", "create_app"]
