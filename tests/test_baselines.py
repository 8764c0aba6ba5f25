"""Baselines (ledgformer.model.baselines / classical): build by name, padding invariance, positivity,
gradients, closed-form fits with known answers, state round trips, a tiny GIN overfitting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ledgformer.errors import LedgformerError
from ledgformer.graph.builder import GraphBuilder
from ledgformer.graph.ir import ArchGraph
from ledgformer.hardware import FEATURE_NAMES
from ledgformer.model import HardwareBatch, TextTable, collate, create_model, graph_tensors, list_models
from ledgformer.model.classical import longest_path_depth, ridge_loo, static_feature_names, static_features
from ledgformer.model.features import GRAPH_FEATURES, GraphTensors
from ledgformer.spaces.nb201 import all_arch_strings, cell_graph

NEURAL = ("mlp", "gin", "graphsage", "static_transformer")
CLOSED = ("flops", "gbdt")
TEXT = torch.zeros(1, 4)


def _tensors(graph: ArchGraph) -> GraphTensors:
    return graph_tensors(graph, TextTable(), texts=lambda g: ["x"] * len(g))


def small_cnn(width: int, blocks: int, res: int = 16) -> ArchGraph:
    """input -> [conv, bn, relu] * blocks (+ a residual add) -> pool -> linear: sizes vary with args."""
    b = GraphBuilder(name=f"cnn{width}x{blocks}")
    x = b.input((1, 3, res, res))
    x = b.conv(x, width, 3)
    for k in range(blocks):
        y = b.act(b.batchnorm(b.conv(x, width, 3, name=f"c{k}")), "relu")
        x = b.eltwise([x, y], "add") if k % 2 else y
    x = b.flatten(b.global_pool(x))
    b.linear(x, 10)
    return b.build()


def cnn_family(n: int) -> list[ArchGraph]:
    return [small_cnn(8 * (1 + k % 4), 1 + k // 4) for k in range(n)]


def hw_rows(values: list[float]) -> HardwareBatch:
    """One card per example; each card differs in log_peak_tflops_fp32."""
    feat = torch.zeros(len(values), len(FEATURE_NAMES))
    feat[:, FEATURE_NAMES.index("log_peak_tflops_fp32")] = torch.tensor(values)
    feat[:, FEATURE_NAMES.index("kind=gpu")] = 1.0
    return HardwareBatch(torch.zeros(len(values), 4), feat)


def _build(name: str, task: str, **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, task=task, **kw).eval()


def test_registered_and_bad_config():
    assert set(NEURAL + CLOSED) <= set(list_models())
    with pytest.raises(LedgformerError, match="gin"):
        create_model("gin", no_such_key=1)
    with pytest.raises(LedgformerError, match="readout"):
        create_model("gin", readout="max")
    with pytest.raises(LedgformerError, match="task"):
        create_model("flops", task="energy")


@pytest.mark.parametrize("name", NEURAL)
@pytest.mark.parametrize("task", ["accuracy", "latency"])
def test_padding_invariance_and_positive_latency(name, task):
    small, big = small_cnn(8, 1), small_cnn(16, 5)
    gs = [_tensors(small), _tensors(big)]
    assert len(gs[0]) < len(gs[1])
    model = _build(name, task, **({"encoding": "counts"} if name == "mlp" else {}))
    hw = hw_rows([1.0, 2.0]) if task == "latency" else None
    together = model(collate(gs, TEXT), hw)
    alone = model(collate(gs[:1], TEXT), hw.index(torch.tensor([0])) if hw else None)
    assert together.shape == (2,)
    torch.testing.assert_close(alone[0], together[0], atol=1e-5, rtol=1e-5)
    if task == "latency":
        assert (model.predict(collate(gs, TEXT), hw) > 0).all()


def test_mlp_position_encoding_padding_and_limit():
    cells = [_tensors(cell_graph(a)) for a in all_arch_strings()[:3]]
    tiny = _tensors(small_cnn(8, 0))  # 5 nodes
    model = _build("mlp", "accuracy", encoding="position", max_nodes=8)
    both = model(collate([tiny, *cells], TEXT))
    torch.testing.assert_close(model(collate([tiny], TEXT))[0], both[0], atol=1e-5, rtol=1e-5)
    assert both[1:].unique().numel() == 3  # different cells, different encodings
    with pytest.raises(LedgformerError, match="max_nodes"):
        model(collate([_tensors(small_cnn(8, 3))], TEXT))


@pytest.mark.parametrize("name", NEURAL)
def test_gradients_flow(name):
    gs = [_tensors(g) for g in cnn_family(4)]
    model = _build(name, "latency").train()
    out = model(collate(gs, TEXT), hw_rows([0.5, 1.0, 1.5, 2.0]))
    (out - torch.arange(4.0)).pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert sum(float(p.grad.abs().sum()) for p in model.parameters()) > 0


def test_latency_models_need_hardware():
    batch = collate([_tensors(small_cnn(8, 1))], TEXT)
    for name in (*NEURAL, "flops"):
        model = create_model(name, task="latency")
        if name == "flops":
            model.fit(batch, hw_rows([1.0]), torch.zeros(1))
        with pytest.raises(LedgformerError, match="hardware"):
            model(batch, None)


def test_static_features_hand_checked():
    # input -> conv -> relu -> add <- conv2 <- input: depth 4 (input, conv, relu, add), width 2
    b = GraphBuilder()
    x = b.input((1, 3, 8, 8))
    c1 = b.act(b.conv(x, 4, 3), "relu")
    c2 = b.conv(x, 4, 1)
    b.eltwise([c1, c2], "add")
    g = b.build()
    gt = _tensors(g)
    names = static_feature_names()
    row = static_features(collate([gt], TEXT))[0]
    feat = dict(zip(names, row.tolist(), strict=True))
    assert feat["count_conv"] == pytest.approx(math.log1p(2) / 6)
    assert feat["count_add"] == pytest.approx(math.log1p(1) / 6)
    assert feat["log_depth"] == pytest.approx(math.log1p(4) / 6)
    assert feat["log_width"] == pytest.approx(math.log1p(2) / 6)
    conv_macs = 4 * 3 * 9 * 64 + 4 * 3 * 64
    assert feat["sum_macs_conv"] == pytest.approx(math.log1p(conv_macs) / 20, rel=1e-5)
    # node order does not matter (depth is found by repeated sweeps)
    perm = list(reversed(range(len(gt))))
    torch.testing.assert_close(static_features(collate([gt.permuted(perm)], TEXT))[0], row)
    assert longest_path_depth(collate([gt], TEXT)).amax() == 4


def _flops_problem(devices: dict[float, float], n_graphs: int = 12):
    """Latency = exp(c_d) * MACs exactly, on every (graph, device) pair."""
    graphs = [_tensors(g) for g in cnn_family(n_graphs)]
    items, cards, y = [], [], []
    for card, c in devices.items():
        for g, gt in zip(cnn_family(n_graphs), graphs, strict=True):
            items.append(gt)
            cards.append(card)
            y.append(math.log(g.macs) + c)
    return collate(items, TEXT), hw_rows(cards), torch.tensor(y, dtype=torch.float64)


@pytest.mark.parametrize("slope", ["one", "shared", "per_device"])
def test_flops_recovers_proportional_latency(slope):
    batch, hw, y = _flops_problem({0.5: -18.0, 1.0: -19.0, 2.0: -20.5})
    model = create_model("flops", slope=slope).fit(batch, hw, y)
    torch.testing.assert_close(model(batch, hw).double(), y, atol=1e-3, rtol=0)
    b, _ = model.coefficients(batch, hw)
    torch.testing.assert_close(b, torch.ones_like(b), atol=1e-3, rtol=0)
    # checkpoint round trip through state_dict (fitted state is extra state)
    clone = create_model("flops", slope=slope)
    clone.load_state_dict(model.state_dict())
    torch.testing.assert_close(clone(batch, hw), model(batch, hw))


def test_flops_unseen_device_from_card_features():
    # offset linear in the card feature: the ridge over training devices extrapolates it
    train = {v: -18.0 - 1.5 * v for v in (0.2, 0.6, 1.0, 1.4, 1.8, 2.2)}
    batch, hw, y = _flops_problem(train, n_graphs=4)
    model = create_model("flops", slope="one").fit(batch, hw, y)
    tb, thw, ty = _flops_problem({1.2: -18.0 - 1.5 * 1.2}, n_graphs=4)
    assert (model(tb, thw).double() - ty).abs().max() < 0.05
    # no informative card feature (same card values, unrelated offsets): the training mean
    w, w0 = ridge_loo(np.array([[1.0], [1.0], [1.0], [1.0]]), np.array([1.0, 3.0, 2.0, 6.0]))
    assert not w.any() and w0 == pytest.approx(3.0)


def test_flops_accuracy_ranks_by_macs():
    graphs = cnn_family(8)
    batch = collate([_tensors(g) for g in graphs], TEXT)
    y = torch.tensor([0.1 * math.log(g.macs) + 0.3 for g in graphs])
    model = create_model("flops", task="accuracy").fit(batch, None, y)
    torch.testing.assert_close(model(batch), y.float(), atol=1e-4, rtol=0)


def test_gbdt_fits_and_round_trips():
    batch, hw, y = _flops_problem({0.5: -18.0, 1.0: -19.0, 2.0: -20.5}, n_graphs=16)
    model = create_model("gbdt", n_estimators=200, min_child_samples=2, subsample=1.0, colsample_bytree=1.0)
    with pytest.raises(LedgformerError, match="not fitted"):
        model(batch, hw)
    model.fit_batches([(batch, hw, y)])
    pred = model(batch, hw).double()
    assert float((pred - y).abs().mean()) < 0.1 * float((y - y.mean()).abs().mean())
    clone = create_model("gbdt")
    clone.load_state_dict(model.state_dict())
    torch.testing.assert_close(clone(batch, hw), model(batch, hw))
    # residual on MACs extrapolates to a bigger net than any seen; plain trees cannot
    res = create_model("gbdt", residual=True, n_estimators=50, min_child_samples=2).fit(batch, hw, y)
    big = collate([_tensors(small_cnn(64, 6))], TEXT)
    truth = math.log(small_cnn(64, 6).macs) - 19.0
    assert abs(float(res(big, hw_rows([1.0]))[0]) - truth) < 0.3


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread (and do not fight parallel test workers)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tiny_gin_overfits_16_cells(one_thread):
    torch.manual_seed(0)
    archs = all_arch_strings()[:16]
    batch = collate([_tensors(cell_graph(a)) for a in archs], TEXT)
    y = torch.randn(16)
    model = create_model("gin", task="accuracy", d_model=32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        loss = (model(batch) - y).pow(2).mean()
        loss.backward()
        opt.step()
    assert loss.item() < 0.01 * float(y.var())


def test_static_transformer_attends_to_neighbours_only():
    b = GraphBuilder()
    x = b.input((1, 3, 8, 8))
    for _ in range(4):
        x = b.act(x, "relu")
    batch = collate([_tensors(b.build())], TEXT)  # a 5-node chain
    model = _build("static_transformer", "accuracy")
    allowed = torch.isfinite(model.attention_bias(batch, torch.float32))[0, 0]
    idx = torch.arange(5)
    expected = (idx[:, None] - idx[None, :]).abs() <= 1
    assert torch.equal(allowed, expected)


@pytest.mark.parametrize("name", NEURAL + CLOSED)
def test_accepts_the_trainer_kwargs(name):
    # ledgformer.train.trainer.model_kwargs passes these to every model
    model = create_model(name, task="accuracy", text_dim=384, use_hardware=False)
    assert model.task == "accuracy"
    create_model(name, task="latency", text_dim=384, hw_text_dim=384, use_hardware=True)


@pytest.mark.parametrize("name", CLOSED)
def test_closed_form_checkpoint_round_trip(name, tmp_path):
    from ledgformer.train.checkpoint import load_checkpoint, save_checkpoint

    batch, hw, y = _flops_problem({0.5: -18.0, 1.0: -19.0, 2.0: -20.5}, n_graphs=8)
    kw: dict = {"task": "latency"}
    if name == "gbdt":
        kw.update(n_estimators=20, min_child_samples=2)
    model = create_model(name, **kw).fit(batch, hw, y)
    path = save_checkpoint(tmp_path / "m.pt", model, config={}, model_name=name, model_config=kw,
                           encoder_id=None, data_version={})
    loaded, _ = load_checkpoint(path)
    torch.testing.assert_close(loaded(batch, hw), model(batch, hw))


def test_gbdt_position_encoding_on_cells():
    archs = all_arch_strings()[:40]
    batch = collate([_tensors(cell_graph(a)) for a in archs], TEXT)
    # target: number of 3x3 convs (only the kernel feature tells them from 1x1 convs)
    y = torch.tensor([float(a.count("nor_conv_3x3")) for a in archs])
    model = create_model("gbdt", task="accuracy", encoding="position", n_estimators=100,
                         min_child_samples=2).fit(batch, None, y)
    assert float((model(batch) - y).abs().max()) < 0.3
    flat = create_model("flops", task="accuracy").fit(batch, None, y)  # cells have no MACs: a constant
    assert model(batch).std() > 0 and flat(batch).std() == 0


def test_flops_without_cards_is_one_line():
    graphs = cnn_family(6)
    batch = collate([_tensors(g) for g in graphs], TEXT)
    y = torch.tensor([math.log(g.macs) - 19.0 for g in graphs], dtype=torch.float64)
    model = create_model("flops", slope="one", use_hardware=False).fit(batch, None, y)
    torch.testing.assert_close(model(batch).double(), y, atol=1e-4, rtol=0)


def test_gin_residual_option_changes_the_model():
    batch = collate([_tensors(cell_graph(a)) for a in all_arch_strings()[:4]], TEXT)
    plain, res = _build("gin", "accuracy"), _build("gin", "accuracy", residual=True)
    res.load_state_dict(plain.state_dict())
    assert not torch.allclose(plain(batch), res(batch))


def test_masked_batch_norm_ignores_padding():
    from ledgformer.model.baselines import MaskedBatchNorm

    torch.manual_seed(0)
    h = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    norm = MaskedBatchNorm(4).train()
    out = norm(h, mask)
    real = out[mask]  # 10 real nodes: zero mean, unit (biased) variance per channel
    torch.testing.assert_close(real.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(real.var(0, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
    assert torch.equal(out[~mask], h[~mask])
    other = h.masked_fill(~mask[..., None], 100.0)  # different padding, same real nodes
    torch.testing.assert_close(MaskedBatchNorm(4).train()(other, mask)[mask], real)


@pytest.mark.parametrize("opts", [{"batch_norm": True}, {"jk": True}, {"batch_norm": True, "jk": True}])
def test_gin_options_padding_invariant_and_trainable(opts, one_thread):
    cells = [_tensors(cell_graph(a)) for a in all_arch_strings()[:16]]
    tiny = _tensors(small_cnn(8, 0))  # 5 nodes: padded to the cells' 8
    model = _build("gin", "accuracy", d_model=32, n_layers=2, **opts)
    assert model.config_dict()["jk"] == opts.get("jk", False)
    if opts.get("jk"):  # graph vector: input embedding + 2 layers, then the graph totals
        assert model.head[0].in_features == 3 * 32 + len(GRAPH_FEATURES)
    both = model(collate([tiny, *cells[:2]], TEXT))
    torch.testing.assert_close(model(collate([tiny], TEXT))[0], both[0], atol=1e-5, rtol=1e-5)
    torch.manual_seed(0)
    batch, y = collate(cells, TEXT), torch.randn(16)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        loss = (model(batch) - y).pow(2).mean()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * float(y.var())


def test_gin_default_keeps_checkpoint_keys():
    # GIN checkpoints written before batch_norm / jk existed must still load
    keys = set(create_model("gin", n_layers=1).state_dict())
    assert {"layers.0.mlp.0.weight", "layers.0.mlp.3.weight", "head.0.weight"} <= keys
    assert not any("norms" in k for k in keys)


@pytest.mark.parametrize("name", ["gin", "graphsage", "static_transformer", "mlp"])
def test_graph_baselines_ignore_node_order(name):
    """Sums over neighbours (and the op-count encoding) see a set, so a re-ordered graph gives the
    same output: isomorphic re-ordering would add no training signal (README, Training)."""
    gt = _tensors(small_cnn(16, 3))
    perm = np.random.default_rng(0).permutation(len(gt)).tolist()
    m = _build(name, "accuracy")
    torch.testing.assert_close(m(collate([gt.permuted(perm)], TEXT)), m(collate([gt], TEXT)))
