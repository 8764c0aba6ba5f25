"""ONNX import: hand-checked costs, folding, patterns, batch override, hashes and user errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from ledgformer.graph.onnx_fold import einsum_dims, infer_shapes
from ledgformer.graph.onnx_import import OnnxImportError, load_onnx
from ledgformer.graph.torch_import import export_onnx, from_torch


def _model(nodes, inputs, outputs, inits=(), opset=13) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _w(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.random.default_rng(0).random(shape, dtype=np.float32), name)


def _only(graph, op: str):
    nodes = [n for n in graph.nodes if n.op == op]
    assert len(nodes) == 1, graph.op_counts()
    return nodes[0]


# ---- hand-checked costs ------------------------------------------------------------------------
def test_conv3x3_costs_by_hand():
    conv = helper.make_node("Conv", ["x", "W"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    m = _model([conv], [_vi("x", [1, 64, 56, 56])], [_vi("y", None)], [_w("W", 128, 64, 3, 3)])
    node = _only(load_onnx(m), "conv")
    assert node.macs == 231_211_008 == 128 * 56 * 56 * 64 * 9
    assert node.params == 73_728
    assert node.mem_bytes == 4 * (64 * 56 * 56 + 73_728 + 128 * 56 * 56)
    assert node.attrs["kernel"] == (3, 3) and node.attrs["in_channels"] == 64
    assert node.attrs["out_channels"] == 128 and node.attrs["bias"] is False
    assert node.output_shapes == [(1, 128, 56, 56)]


def test_same_conv_through_torch_matches():
    g = from_torch(torch.nn.Conv2d(64, 128, 3, padding=1, bias=False), (1, 64, 56, 56))
    node = _only(g, "conv")
    assert (node.macs, node.params) == (231_211_008, 73_728)
    assert g.meta["source"] == "torch"


def test_depthwise_conv_costs_by_hand():
    conv = helper.make_node("Conv", ["x", "W", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                            strides=[2, 2], group=32)
    m = _model([conv], [_vi("x", [1, 32, 112, 112])], [_vi("y", None)], [_w("W", 32, 1, 3, 3), _w("b", 32)])
    node = _only(load_onnx(m), "conv")
    assert node.output_shapes == [(1, 32, 56, 56)]
    assert node.macs == 32 * 56 * 56 * 9
    assert node.params == 32 * 9 + 32
    assert node.flops == 2 * node.macs + 32 * 56 * 56  # + one bias add per output
    assert node.mem_bytes == 4 * (32 * 112 * 112 + 320 + 32 * 56 * 56)
    assert node.attrs["groups"] == 32


def test_conv_auto_pad_same_upper_becomes_explicit_pads():
    conv = helper.make_node("Conv", ["x", "W"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                            auto_pad="SAME_UPPER")
    m = _model([conv], [_vi("x", [1, 8, 15, 15])], [_vi("y", None)], [_w("W", 8, 8, 3, 3)])
    node = _only(load_onnx(m), "conv")
    assert node.output_shapes == [(1, 8, 8, 8)] and node.attrs["pads"] == (1, 1, 1, 1)


def test_gemm_costs_by_hand():
    gemm = helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)
    m = _model([gemm], [_vi("x", [1, 512])], [_vi("y", None)], [_w("W", 1000, 512), _w("b", 1000)])
    node = _only(load_onnx(m), "gemm")
    assert (node.macs, node.params) == (512_000, 513_000)
    assert node.attrs["in_features"] == 512 and node.attrs["out_features"] == 1000
    assert node.mem_bytes == 4 * (512 + 513_000 + 1000)


def test_batched_matmul_costs_by_hand():
    mm = helper.make_node("MatMul", ["q", "k"], ["s"])
    m = _model([mm], [_vi("q", [2, 3, 197, 64]), _vi("k", [2, 3, 64, 197])], [_vi("s", None)])
    node = _only(load_onnx(m), "matmul")
    assert node.output_shapes == [(2, 3, 197, 197)]
    assert node.macs == 2 * 3 * 197 * 197 * 64
    assert node.params == 0
    assert node.mem_bytes == 4 * (2 * 2 * 3 * 197 * 64 + 2 * 3 * 197 * 197)


def test_einsum_costs_by_hand():
    # the summed index k is not the last dim of the first operand (a plain MatMul's K)
    es = helper.make_node("Einsum", ["a", "b"], ["y"], equation="bkl,bkt->blt")
    m = _model([es], [_vi("a", [2, 16, 5]), _vi("b", [2, 16, 7])], [_vi("y", None)])
    node = _only(load_onnx(m), "matmul")
    assert node.output_shapes == [(2, 5, 7)]
    assert node.macs == 2 * 5 * 7 * 16
    assert node.attrs == {"equation": "bkl,bkt->blt", "reduce": 16}


@pytest.mark.parametrize(("equation", "shapes", "out", "reduce"), [
    ("bhlk,bhtk->bhlt", [(1, 2, 5, 8), (1, 2, 7, 8)], (1, 2, 5, 7), 8),  # CvT attention
    ("...ij,...jk", [(3, 1, 4, 5), (2, 5, 6)], (3, 2, 4, 6), 5),  # implicit output, broadcast
    ("bij->b", [(2, 3, 4)], (2,), 12),
])
def test_einsum_shape_inference(equation, shapes, out, reduce):
    assert einsum_dims(equation, shapes) == (out, reduce)
    assert infer_shapes("Einsum", {"equation": equation}, shapes, [None] * len(shapes)) == [out]


def test_malformed_einsum_names_the_node():
    assert infer_shapes("Einsum", {"equation": "ij,jk->iz"}, [(2, 3), (3, 4)], [None, None]) is None
    es = helper.make_node("Einsum", ["a", "b"], ["y"], name="bad_einsum", equation="ij,jk->iz")
    m = _model([es], [_vi("a", [2, 3]), _vi("b", [3, 4])], [_vi("y", None)])
    with pytest.raises(OnnxImportError, match="bad_einsum"):
        load_onnx(m)


def test_resize_target_through_deduplicated_int_initializer():
    # exporters share equal initializers through Identity (BEiT's relative-position resize);
    # the integer copy must still fold into the Resize target instead of leaving its shape unknown
    head = numpy_helper.from_array(np.array([1, 1], np.int64), "head")
    side = numpy_helper.from_array(np.array([8, 8], np.int64), "side")
    nodes = [helper.make_node("Identity", ["head"], ["head2"]),
             helper.make_node("Concat", ["head2", "side"], ["sizes"], axis=0),
             helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear"),
             helper.make_node("Relu", ["y"], ["z"])]
    m = _model(nodes, [_vi("x", [1, 1, 4, 4])], [_vi("z", None)], [head, side])
    m.graph.ClearField("value_info")
    graph = load_onnx(m)
    assert _only(graph, "resize").output_shapes == [(1, 1, 8, 8)]
    assert _only(graph, "relu").output_shapes == [(1, 1, 8, 8)]
    assert "concat" not in graph.op_counts()


def test_big_weight_view_keeps_its_new_shape():
    # a weight over the fold size limit, transposed before use (DINOv2-base's position table):
    # the transposed shape must reach the gemm, whose in_features is the transposed dim
    t = helper.make_node("Transpose", ["W"], ["Wt"], perm=[1, 0])
    mm = helper.make_node("MatMul", ["x", "Wt"], ["y"])
    m = _model([t, mm], [_vi("x", [1, 1100])], [_vi("y", None)], [_w("W", 1000, 1100)])
    node = _only(load_onnx(m), "gemm")
    assert (node.attrs["in_features"], node.attrs["out_features"]) == (1100, 1000)
    assert node.output_shapes == [(1, 1000)] and node.macs == 1_100_000


def test_shape_inference_of_views_past_the_fold_limit():
    # Swin-384's first stage (1 x 96 x 96 x 128 > MAX_FOLD_ELEMENTS): slicing it still has a shape
    x = (1, 96, 96, 128)
    vals = [None, np.array([1]), np.array([96]), np.array([1])]
    assert infer_shapes("Slice", {}, [x, (1,), (1,), (1,)], vals) == [(1, 95, 96, 128)]
    assert infer_shapes("Unsqueeze", {"axes": [0]}, [x], [None]) == [(1, *x)]


def test_matmul_with_weight_and_bias_add_is_one_gemm():
    mm = helper.make_node("MatMul", ["x", "W"], ["h"])
    add = helper.make_node("Add", ["b", "h"], ["y"])
    m = _model([mm, add], [_vi("x", [1, 197, 192])], [_vi("y", None)], [_w("W", 192, 576), _w("b", 576)])
    g = load_onnx(m)
    node = _only(g, "gemm")
    assert g.op_counts() == {"input": 1, "gemm": 1}
    assert node.macs == 197 * 576 * 192 and node.params == 192 * 576 + 576
    assert node.attrs["bias"] is True and node.raw_op == "MatMul+Add"


# ---- folding, patterns, weights ------------------------------------------------------------------
class _Block(torch.nn.Module):
    """Exercises LayerNorm, GELU, SiLU, hard-swish, dropout, a view and a positional embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.pos = torch.nn.Parameter(torch.zeros(1, 16, 8))
        self.norm = torch.nn.LayerNorm(8)
        self.fc = torch.nn.Linear(8, 8)
        self.drop = torch.nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.hardswish(torch.nn.functional.silu(self.bn(self.conv(x))))
        x = x.view(x.size(0), 8, -1).transpose(1, 2) + self.pos
        return self.drop(torch.nn.functional.gelu(self.fc(self.norm(x))))


@pytest.mark.parametrize("opset", [13, 17])
def test_patterns_are_fused_and_plumbing_folded(opset):
    module = _Block()
    g = load_onnx(export_onnx(module, (1, 3, 4, 4), opset=opset), input_shape=(1, 3, 4, 4))
    counts = g.op_counts()
    assert g.unknown_ops() == {}
    for op in ("layernorm", "gelu", "swish", "hardswish", "batchnorm", "gemm"):
        assert counts.get(op) == 1, (op, counts)
    raw = {n.raw_op for n in g.nodes}
    assert not raw & {"Shape", "Gather", "Unsqueeze", "Concat", "Constant", "Dropout", "Identity", "Erf"}
    assert g.params == sum(p.numel() for p in module.parameters())
    bn = _only(g, "batchnorm")
    assert bn.attrs["weight_shapes"] == [(8,), (8,)] and bn.attrs["buffer_shapes"] == [(8,), (8,)]
    add = _only(g, "add")  # the positional embedding counts as the Add's weight
    assert add.attrs["weight_shapes"] == [(1, 16, 8)]


def test_relu6_from_clip_and_weight_in_constant_node():
    w = helper.make_node("Constant", [], ["W"], value=_w("Wc", 4, 3, 1, 1))
    conv = helper.make_node("Conv", ["x", "W"], ["c"])
    lo = helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(np.array(0, np.float32)))
    hi = helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(np.array(6, np.float32)))
    clip = helper.make_node("Clip", ["c", "lo", "hi"], ["y"])
    g = load_onnx(_model([w, conv, lo, hi, clip], [_vi("x", [1, 3, 8, 8])], [_vi("y", None)]))
    assert g.op_counts() == {"input": 1, "conv": 1, "relu6": 1}
    assert g.params == 12


def test_unknown_op_is_kept_and_counted():
    hm = helper.make_node("Hardmax", ["x"], ["h"], axis=-1)
    relu = helper.make_node("Relu", ["h"], ["y"])
    g = load_onnx(_model([hm, relu], [_vi("x", [2, 10])], [_vi("y", None)]))
    assert g.unknown_ops() == {"Hardmax": 1}
    assert len(g.edges) == 2  # input -> unknown -> relu: nothing dropped


def test_opset7_model_parses():
    nodes = [
        helper.make_node("Conv", ["x", "W", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Upsample", ["r"], ["u"], scales=[1.0, 1.0, 2.0, 2.0], mode="nearest"),
        helper.make_node("Flatten", ["u"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "W2", "b2"], ["y"], transB=1),
    ]
    inits = [_w("W", 4, 3, 3, 3), _w("b", 4), _w("W2", 10, 4 * 16 * 16), _w("b2", 10)]
    m = _model(nodes, [_vi("x", [1, 3, 8, 8])], [_vi("y", None)], inits, opset=7)
    m.ir_version = 3
    m.graph.input.extend([_vi(t.name, list(t.dims)) for t in inits])  # IR 3: weights are inputs too
    g = load_onnx(m)
    assert g.op_counts() == {"input": 1, "conv": 1, "relu": 1, "resize": 1, "flatten": 1, "gemm": 1}
    assert g.macs == 4 * 8 * 8 * 27 + 10 * 1024
    assert g.params == 4 * 27 + 4 + 10 * 1024 + 10
    assert g.meta["opset"] == 7 and _only(g, "resize").attrs["scale"] == (1.0, 1.0, 2.0, 2.0)


# ---- batch override, meta, progress, hashes -----------------------------------------------------
def _cnn(k: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, k, padding=k // 2), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5))


def test_batch_override_scales_macs_and_meta():
    model = export_onnx(_cnn(), (1, 3, 16, 16))
    seen: list[tuple[int, int]] = []
    g1 = load_onnx(model, input_shape=(1, 3, 16, 16), progress=lambda d, t: seen.append((d, t)))
    g8 = load_onnx(model, input_shape=(1, 3, 16, 16), batch_size=8)
    assert g8.macs == 8 * g1.macs and g8.params == g1.params
    assert g8.meta["batch_size"] == 8 and g8.meta["input_shape"] == (8, 3, 16, 16)
    assert g1.meta["source"] == "onnx" and g1.meta["opset"] == 17 and g1.meta["dtype"] == "float32"
    assert seen and seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_content_hash_same_export_renamed_nodes_and_kernel_change():
    a = load_onnx(export_onnx(_cnn(), (1, 3, 16, 16)), input_shape=(1, 3, 16, 16))
    b = load_onnx(export_onnx(_cnn(), (1, 3, 16, 16)), input_shape=(1, 3, 16, 16))
    assert a.content_hash() == b.content_hash()
    renamed = export_onnx(_cnn(), (1, 3, 16, 16))
    for i, node in enumerate(renamed.graph.node):
        node.name = f"renamed_{i}"
    assert load_onnx(renamed, input_shape=(1, 3, 16, 16)).content_hash() == a.content_hash()
    c = load_onnx(export_onnx(_cnn(k=5), (1, 3, 16, 16)), input_shape=(1, 3, 16, 16))
    assert c.content_hash() != a.content_hash()


# ---- user errors -------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(OnnxImportError, match=r"nope\.onnx: file not found"):
        load_onnx(tmp_path / "nope.onnx")


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is a text file, not a model\n" * 10)
    with pytest.raises(OnnxImportError, match=r"notes\.onnx"):
        load_onnx(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.onnx"
    path.write_bytes(export_onnx(_cnn(), (1, 3, 16, 16)).SerializeToString()[:700])
    with pytest.raises(OnnxImportError, match=r"cut\.onnx: not a readable ONNX file"):
        load_onnx(path)


def test_dynamic_dims_need_input_shape_and_rank_must_match(tmp_path):
    path = tmp_path / "dyn.onnx"
    onnx.save(export_onnx(_cnn(), (1, 3, 16, 16)), str(path))
    # a dynamic batch axis alone means batch 1
    assert load_onnx(path).meta["input_shape"] == (1, 3, 16, 16)
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    onnx.save(model, str(path))
    msg = r"dyn\.onnx: input 'input' has a dynamic dim 'height' at axis 2.*--input-shape"
    with pytest.raises(OnnxImportError, match=msg):
        load_onnx(path)
    assert load_onnx(path, input_shape=(1, 3, 16, 16)).meta["input_shape"] == (1, 3, 16, 16)
    with pytest.raises(OnnxImportError, match=r"dyn\.onnx: .*rank 4 .*rank 3"):
        load_onnx(path, input_shape=(3, 16, 16))
    assert load_onnx(path, input_shape=(1, 3, 16, 16), batch_size=2).meta["input_shape"] == (2, 3, 16, 16)


def test_op_without_computable_shape_names_the_node():
    reshape = helper.make_node("Reshape", ["x", "s"], ["y"], name="the_reshape")
    m = _model([reshape], [_vi("x", [2, 6]), helper.make_tensor_value_info("s", TensorProto.INT64, [2])],
               [_vi("y", None)])
    with pytest.raises(OnnxImportError, match=r"the_reshape.*Reshape"):
        load_onnx(m)


class _OpMix(torch.nn.Module):
    """ConvTranspose, dilation, GroupNorm/InstanceNorm, PReLU, Split, Slice, Pad, Resize, pools..."""

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.conv = nn.Conv2d(3, 8, 3, padding=2, dilation=2)
        self.up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
        self.gn, self.inorm = nn.GroupNorm(2, 4), nn.InstanceNorm2d(4, affine=True)
        self.prelu, self.pool = nn.PReLU(4), nn.MaxPool2d(3, 2, ceil_mode=True)
        self.gamma = nn.Parameter(torch.ones(4, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.nn.functional
        y = self.prelu(self.inorm(self.gn(self.up(f.leaky_relu(self.conv(x), 0.2)))))
        a, b = torch.split(y, [1, 3], dim=1)
        y = f.pad(torch.cat([b, a], 1)[:, :, 1:-1, ::2], (1, 1, 2, 2), mode="reflect")
        y = self.pool(f.interpolate(y, scale_factor=2, mode="bilinear")) * self.gamma
        y = torch.tanh(y - y.mean(dim=(2, 3), keepdim=True)).permute(0, 2, 3, 1).reshape(y.size(0), -1)
        return torch.softmax(y, -1) + torch.sigmoid(y).exp().sqrt()


@pytest.mark.parametrize("opset", [11, 17])
def test_op_mix_shapes_params_and_costs(opset):
    module = _OpMix()
    g = load_onnx(export_onnx(module, (2, 3, 16, 16), opset=opset), input_shape=(2, 3, 16, 16))
    assert g.unknown_ops() == {}
    assert g.params == sum(p.numel() for p in module.parameters())
    counts = g.op_counts()
    assert counts["groupnorm"] == 2 and counts["split"] == 1 and counts["slice"] == 2
    shapes = {n.op: n.output_shapes for n in g.nodes}
    assert shapes["conv_transpose"] == [(2, 4, 32, 32)] and shapes["pad"] == [(2, 4, 34, 18)]
    assert shapes["resize"] == [(2, 4, 68, 36)] and shapes["maxpool"] == [(2, 4, 34, 18)]
    assert _only(g, "conv_transpose").macs == 2 * 8 * 16 * 16 * 4 * 16  # input elems x Cout x k*k
    with torch.no_grad():
        assert g.nodes[-1].output_shapes == [tuple(module(torch.zeros(2, 3, 16, 16)).shape)]
