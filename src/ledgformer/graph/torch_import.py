"""PyTorch modules -> ArchGraph, through an in-memory ONNX export.

The module is exported with the TorchScript exporter (``dynamo=False``: fast, no extra
dependencies) in eval mode with ``TrainingMode.PRESERVE`` so BatchNorm is *not* folded into the
convolutions (the IR shows the model as authored, see ``onnx_import``). Dim 0 is exported as
dynamic so reshape targets stay computed from the batch size rather than baked in.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence

import onnx
import torch

from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph
from ledgformer.graph.onnx_import import load_onnx

#: opset of the export: native LayerNormalization (17); GELU/SiLU stay decomposed and are fused back
EXPORT_OPSET = 17


@contextlib.contextmanager
def _quiet_native_output() -> Iterator[None]:
    """Discard what native code writes to fds 1 and 2 meanwhile: on a failed export the
    TorchScript exporter prints the whole Torch IR graph (thousands of lines for a real model)
    whatever its log setting (torch's ``setup_onnx_logging`` tests the function
    ``_jit_is_onnx_log_enabled``, not its result); our one-line error says what failed instead."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no usable stdout / stderr: nothing to protect
        yield
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


def export_onnx(
    module: torch.nn.Module, input_shape: Sequence[int], opset: int = EXPORT_OPSET
) -> onnx.ModelProto:
    """Export ``module`` (eval mode, BN kept) on a zero input of ``input_shape`` to a ModelProto."""
    was_training = module.training
    module.eval()
    buf = io.BytesIO()
    dummy = torch.zeros(tuple(int(d) for d in input_shape))
    dynamic = {"input": {0: "batch"}, "output": {0: "batch"}}
    try:
        with warnings.catch_warnings(), torch.no_grad(), _quiet_native_output():
            warnings.simplefilter("ignore")
            for dyn in (dynamic, None):  # a few models only export with a static batch
                try:
                    torch.onnx.export(
                        module, (dummy,), buf, dynamo=False, opset_version=opset,
                        training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"],
                        output_names=["output"], dynamic_axes=dyn, do_constant_folding=True)
                    break
                except Exception:
                    if dyn is None:
                        raise
                    buf = io.BytesIO()
    except Exception as err:
        raise LedgformerError(
            f"{type(module).__name__}: torch.onnx.export failed on input shape {tuple(input_shape)} "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "check the input shape or export the model to ONNX yourself") from err
    finally:
        module.train(was_training)
    return onnx.load_from_string(buf.getvalue())


def from_torch(module: torch.nn.Module, input_shape: Sequence[int], *, name: str | None = None) -> ArchGraph:
    """The ArchGraph of ``module`` applied to a tensor of ``input_shape`` (batch included)."""
    model = export_onnx(module, input_shape)
    label = name or type(module).__name__
    graph = load_onnx(model, input_shape=input_shape, name=label)
    graph.meta["source"] = "torch"
    return graph


__all__ = ["EXPORT_OPSET", "export_onnx", "from_torch"]
