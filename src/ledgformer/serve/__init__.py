"""HTTP query service: latency of an uploaded model on a platform (``ledgformer serve``)."""

from ledgformer.serve.app import create_app

__all__ = ["create_app"]
