"""The fixed vocabulary of normalised operator types.

Every source (ONNX, PyTorch, NAS search-space builders) maps its operators onto these names so
that the text templates, the numeric features and the model see one vocabulary. Anything we do
not recognise becomes ``unknown`` and is counted in ``ArchGraph.unknown_ops()``: it is never
dropped silently.
"""

from __future__ import annotations

#: normalised op type -> one-line description (also the documentation of the vocabulary)
OP_VOCAB: dict[str, str] = {
    # graph boundary
    "input": "a graph input tensor",
    "output": "a graph output (used by cell graphs)",
    # compute-heavy
    "conv": "N-d convolution (groups, dilation; depthwise when groups == in channels)",
    "conv_transpose": "transposed convolution",
    "gemm": "fully connected layer (Gemm, or MatMul with a weight matrix)",
    "matmul": "matrix product of two activations (batched)",
    # normalisation
    "batchnorm": "batch normalisation (inference form)",
    "layernorm": "layer normalisation (fused op or the decomposed ReduceMean pattern)",
    "groupnorm": "group / instance normalisation",
    "lrn": "local response normalisation",
    # activations
    "relu": "ReLU",
    "relu6": "Clip(0, 6), ReLU6",
    "clip": "Clip with other bounds",
    "leaky_relu": "LeakyReLU / PReLU",
    "elu": "ELU / SELU / CELU",
    "sigmoid": "sigmoid",
    "hardsigmoid": "hard sigmoid",
    "hardswish": "hard swish (fused op or x * hardsigmoid(x))",
    "swish": "swish / SiLU (x * sigmoid(x))",
    "tanh": "tanh",
    "gelu": "GELU (fused op or the Erf pattern)",
    "erf": "error function",
    "softmax": "softmax / log-softmax",
    "softplus": "softplus / mish parts",
    # element-wise arithmetic
    "add": "element-wise addition",
    "sub": "element-wise subtraction",
    "mul": "element-wise multiplication",
    "div": "element-wise division",
    "pow": "element-wise power",
    "sqrt": "element-wise square root",
    "exp": "element-wise exponential",
    "elementwise": "other element-wise math (Neg, Abs, Reciprocal, Log, Min, Max, Where ...)",
    # pooling and resampling
    "maxpool": "max pooling",
    "avgpool": "average pooling",
    "global_avgpool": "global average pooling",
    "global_maxpool": "global max pooling",
    "resize": "Resize / Upsample",
    # reductions
    "reduce_mean": "ReduceMean",
    "reduce": "other reductions (Sum, Max, Min, L2 ...)",
    # data movement
    "concat": "concatenation",
    "split": "split into several tensors",
    "slice": "slice",
    "gather": "gather / indexing",
    "transpose": "transpose / permutation",
    "reshape": "reshape / view",
    "flatten": "flatten",
    "squeeze": "squeeze / unsqueeze",
    "pad": "padding",
    "expand": "broadcast / tile",
    "cast": "dtype cast",
    # cell-graph specials (NAS-Bench cells)
    "identity": "identity / skip connection (cell graphs; ONNX Identity is folded away)",
    "zero": "the 'none' operation of NAS-Bench-201 (output zero)",
    "unknown": "an operator outside this vocabulary (counted and reported)",
}

OP_TYPES: tuple[str, ...] = tuple(OP_VOCAB)
OP_INDEX: dict[str, int] = {op: i for i, op in enumerate(OP_TYPES)}


def op_index(op: str) -> int:
    """Index of ``op`` in the vocabulary (``unknown`` for anything outside it)."""
    return OP_INDEX.get(op, OP_INDEX["unknown"])
