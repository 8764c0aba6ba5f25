"""Language embeddings of node texts and hardware cards, with an on-disk cache."""

from ledgformer.embed.cache import embed_texts
from ledgformer.embed.encoders import (
    DEFAULT_ENCODER,
    ENCODERS,
    Encoder,
    EncoderUnavailable,
    get_encoder,
)

__all__ = ["DEFAULT_ENCODER", "ENCODERS", "Encoder", "EncoderUnavailable", "embed_texts", "get_encoder"]
