"""`ledgformer serve`: the HTTP latency service (FastAPI + uvicorn), OpenAPI docs at /docs."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  ledgformer serve --host 127.0.0.1 --port 8000
  ledgformer serve --db postgresql+psycopg://me@dbhost/latency --max-upload-mb 50
  ledgformer serve --predictor flops          # FLOPs / roofline estimate instead of a learned model
  curl -F file=@model.onnx -F platform=help/1080ti_32 http://127.0.0.1:8000/predict
  curl -H 'content-type: application/json' -d @request.json http://127.0.0.1:8000/predict

request.json: {"graph": <ledgformer inspect --json output>, "platform": "help/pixel3"}
or {"graph": ..., "card": {<hardware card fields>}}. Answers say measured or predicted, and by which
predictor and version (GET /health names it too). Without --predictor, predictions come from the
shipped learned latency predictor latency-all, loaded once at start-up; --predictor flops gives the
labelled FLOPs x ms/GFLOP fit on the platform's measurements, or the card's roofline bound."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the HTTP latency service (POST /predict, docs at /docs)",
                       description=__doc__, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--db", default=None, help="database URL or SQLite file")
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="request size limit (default 200 MB)")
    p.add_argument("--predictor", default=None, metavar="NAME|PATH|MODULE:FUNC|flops",
                   help="prediction source: a shipped latency predictor (ledgformer models list), a "
                   "checkpoint, a predict_fn(graph, card) -> ms, or 'flops' for the FLOPs / roofline "
                   "estimate (default: the shipped latency-all)")
    p.add_argument("--record", action="store_true",
                   help="store predictions for named platforms in the database")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ledgformer.db.answer import load_predictor
    from ledgformer.serve import create_app

    predictor = load_predictor(args.predictor)  # once, here: a bad checkpoint fails before serving
    app = create_app(args.db, predictor=predictor, max_upload_mb=args.max_upload_mb, record=args.record)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
