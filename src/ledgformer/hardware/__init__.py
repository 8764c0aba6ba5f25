"""Hardware cards: what a latency is measured on, as text for the language model and as features.

See ``registry`` for the card naming scheme (``card_name``) and how users add their own cards.
"""

from ledgformer.hardware.card import (
    FEATURE_NAMES,
    TEXT_VERSION,
    CardError,
    HardwareCard,
    validate_card,
)
from ledgformer.hardware.registry import card_fingerprints, card_name, list_cards, list_devices, load_card

__all__ = [
    "FEATURE_NAMES",
    "TEXT_VERSION",
    "CardError",
    "HardwareCard",
    "card_fingerprints",
    "card_name",
    "list_cards",
    "list_devices",
    "load_card",
    "validate_card",
]
