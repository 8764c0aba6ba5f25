"""Real latency measurement on this machine, and the hardware card of the platform it ran on.

``measure(model, runtime=..., threads=...)`` -> ``Measurement`` (median, IQR, all run times, the
detected card); ``detect_card(runtime, threads, precision, batch)`` -> this machine's card.
"""

from ledgformer.measure.detect import RUNTIME_PRECISION, RUNTIMES, detect_card, platform_name
from ledgformer.measure.runner import Measurement, MeasurementUnstable, measure, summarise

__all__ = [
    "RUNTIMES",
    "RUNTIME_PRECISION",
    "Measurement",
    "MeasurementUnstable",
    "detect_card",
    "measure",
    "platform_name",
    "summarise",
]
