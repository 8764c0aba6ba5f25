"""Seeded generators of model families (ResNet, VGG, MobileNet ..., NAS-Bench-201) for latency data.

``generate(family, count, seed)`` -> ``FamilyModel``s (config, input shape, MACs, module factory,
``to_onnx()``, ``graph()``); ``list_families()`` names the families.
"""

from ledgformer.families.generators import FAMILIES, FamilyModel, count_macs, generate, list_families

__all__ = ["FAMILIES", "FamilyModel", "count_macs", "generate", "list_families"]
