"""LeDG-Former invariants: batching, padding, permutation, gradients, positivity, overfitting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ledgformer.errors import LedgformerError
from ledgformer.graph.builder import GraphBuilder
from ledgformer.graph.ops import op_index
from ledgformer.hardware import FEATURE_NAMES
from ledgformer.model import HardwareBatch, TextTable, collate, create_model, graph_tensors, list_models
from ledgformer.model.features import N_OPS, NODE_FEATURES, REL, op_totals, relations

torch.set_num_threads(1)
TEXT_DIM = 16


def _net(width: int, depth: int, branch: bool) -> GraphBuilder:
    b = GraphBuilder(name=f"net{width}-{depth}-{branch}")
    x = b.input((1, 3, 16, 16))
    x = b.act(b.batchnorm(b.conv(x, width, 3)))
    for i in range(depth):
        y = b.conv(x, width, 3 if i % 2 else 1)
        x = b.eltwise([x, b.act(y)]) if branch else b.act(y)
    x = b.flatten(b.global_pool(x))
    b.linear(x, 10)
    return b


def graphs(n: int) -> list:
    return [_net(8 * (1 + i % 4), 1 + i % 5, bool(i % 2)).build() for i in range(n)]


def _texts(g) -> list[str]:
    return [f"{nd.op} {nd.output_shapes[0] if nd.output_shapes else ''}" for nd in g.nodes]


@pytest.fixture(scope="module")
def data():
    table = TextTable()
    items = [graph_tensors(g, table, texts=_texts) for g in graphs(16)]
    emb = torch.randn(len(table.texts()), TEXT_DIM, generator=torch.Generator().manual_seed(0))
    hw = HardwareBatch(torch.randn(16, TEXT_DIM), torch.randn(16, len(FEATURE_NAMES)))
    return items, emb, hw


def _model(task: str = "latency", **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    m = create_model("ledgformer", task=task, d_model=16, n_layers=2, n_heads=2, text_dim=TEXT_DIM,
                     hw_text_dim=TEXT_DIM, use_hardware=task == "latency", **kw)
    return m.eval()


def test_registry_lists_ledgformer_and_rejects_unknown_keys() -> None:
    assert "ledgformer" in list_models()
    with pytest.raises(LedgformerError, match="bogus"):
        create_model("ledgformer", bogus=1)
    with pytest.raises(LedgformerError, match="unknown model"):
        create_model("nope")


def test_relations_hand_checked() -> None:
    b = GraphBuilder()
    x = b.input((1, 4, 8, 8))  # 0
    y = b.act(x)  # 1
    z = b.act(x)  # 2
    w = b.eltwise([y, z])  # 3
    b.act(w)  # 4
    rel = relations(b.build())
    assert rel[1, 0] == REL["parent"] and rel[0, 1] == REL["child"]
    assert rel[1, 2] == REL["sibling"]
    assert rel[3, 0] == REL["grandparent"] and rel[0, 3] == REL["grandchild"]
    assert rel[4, 0] == REL["ancestor"] and rel[0, 4] == REL["descendant"]
    assert rel[2, 2] == REL["self"]
    b2 = GraphBuilder()
    p, q = b2.input((1, 2), "a"), b2.input((1, 2), "b")
    b2.act(p)
    b2.act(q)
    assert relations(b2.build())[2, 3] == REL["unrelated"]


def test_node_features_are_finite_and_sized(data) -> None:
    items, _, _ = data
    for g in items:
        assert g.num.shape == (len(g), len(NODE_FEATURES))
        assert np.isfinite(g.num).all() and np.abs(g.num).max() < 5


@pytest.mark.parametrize(("task", "kw"), [("latency", {}), ("accuracy", {}), ("latency", {"op_totals": True}),
                                         ("latency", {"roofline": True}), ("accuracy", {"local_mp": True})])
def test_alone_equals_padded_batch(data, task, kw) -> None:
    items, emb, hw = data
    m = _model(task, **kw)
    h = hw if task == "latency" else None
    batch = m(collate(items, emb), h)
    for k in (0, 5, 11):
        alone = m(collate([items[k]], emb), h.index(torch.tensor([k])) if h else None)
        assert torch.allclose(alone, batch[k:k + 1], atol=1e-5)


@pytest.mark.parametrize("kw", [{}, {"op_totals": True}, {"roofline": True}, {"local_mp": True}])
def test_permutation_invariance(data, kw) -> None:
    items, emb, hw = data
    m = _model(**kw)
    rng = np.random.default_rng(0)
    g = items[7]
    perm = rng.permutation(len(g))
    one = hw.index(torch.tensor([0]))
    assert torch.allclose(m(collate([g], emb), one), m(collate([g.permuted(perm)], emb), one), atol=1e-5)


def test_local_mp_sums_parents_and_children(data) -> None:
    """model.local_mp: the local step of a block adds MLP([h_i, sum of parents' h, sum of children's
    h]) (hand-checked on one graph's relation matrix), and the loss reaches it."""
    items, emb, _ = data
    m = _model("accuracy", local_mp=True)
    blk, g = m.blocks[0], items[3]
    batch = collate([g], emb)
    x = torch.randn(1, len(g), m.config.d_model)
    rel = batch.rel
    hl = blk.ln_loc(x)[0]
    rows = []
    for i in range(len(g)):
        par = [j for j in range(len(g)) if g.rel[i, j] == REL["parent"]]
        chi = [j for j in range(len(g)) if g.rel[i, j] == REL["child"]]
        rows.append(torch.cat([hl[i], hl[par].sum(0), hl[chi].sum(0)]))
    after_local = x + blk.local(torch.stack(rows))[None]
    pad = torch.zeros(1, 1, 1, len(g))
    got = blk(x, rel, pad)
    blk.local = None  # the same block without its local step, fed the hand-computed local output
    assert torch.allclose(got, blk(after_local, rel, pad), atol=1e-5)
    m = _model("accuracy", local_mp=True)
    m(collate(items[:4], emb), None).sum().backward()
    assert m.blocks[0].local[0].weight.grad.abs().sum() > 0


def test_op_totals_hand_checked(data) -> None:
    """Per op type: log count / 6 and log total MACs / 20 (the conv nodes of one graph)."""
    items, emb, _ = data
    g = items[3]
    tot = op_totals(collate([g, items[0]], emb))[0].double()
    conv = op_index("conv")
    is_conv = g.op == conv
    assert torch.isclose(tot[conv], torch.tensor(math.log1p(is_conv.sum()) / 6.0, dtype=torch.float64))
    macs = np.expm1(g.num[is_conv, NODE_FEATURES.index("log_macs")].astype(np.float64) * 20).sum()
    want = torch.tensor(math.log1p(macs) / 20, dtype=torch.float64)
    assert torch.isclose(tot[N_OPS + conv], want, rtol=1e-4)
    absent = [i for i in range(N_OPS) if i not in set(g.op.tolist()) | set(items[0].op.tolist())]
    assert absent and all(tot[k * N_OPS + i] == 0 for k in range(4) for i in absent)


def _zero_heads(m: torch.nn.Module) -> None:
    """Node and graph heads at zero: a roofline model then predicts its prior alone."""
    for head in (m.node_head[-1], m.graph_head[-1]):
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)


@pytest.mark.parametrize("node_cost", ["context", "token"])
def test_node_cost_token_ignores_the_attention_states(data, node_cost: str) -> None:
    """model.node_cost=token: node costs read each node's own token, so new attention weights
    leave them as they are (the default reads the final states: they move)."""
    items, emb, hw = data
    m = _model(roofline=True, hw_layers=0, node_cost=node_cost)
    batch, h = collate([items[2]], emb), hw.index(torch.tensor([0]))
    with torch.no_grad():
        before = m.decode_parts(m.encode(batch), batch, h)[1]
        for p in m.blocks.parameters():
            p.add_(torch.randn_like(p))
        after = m.decode_parts(m.encode(batch), batch, h)[1]
    assert torch.allclose(after, before) == (node_cost == "token")
    with pytest.raises(LedgformerError, match="node_cost"):
        _model(node_cost="graph")
    with pytest.raises(LedgformerError, match="node_cost"):
        _model("accuracy", node_cost="token")


def _node_work(g) -> tuple[np.ndarray, np.ndarray]:
    """Each node's MACs and memory bytes, from its log1p / 20 features."""
    return tuple(np.expm1(g.num[:, NODE_FEATURES.index(f)].astype(np.float64) * 20)
                 for f in ("log_macs", "log_mem_bytes"))


def test_roofline_prior_starts_at_macs_and_bytes_over_a_phone_core(data) -> None:
    """With the node and graph heads at zero the prediction is log(sum MACs / 2e7 + bytes / 1e7) ms;
    the prior needs the sum readout and a card."""
    items, emb, hw = data
    m = _model(roofline=True)
    _zero_heads(m)
    g = items[2]
    macs, mem = _node_work(g)
    want = math.log(np.sum((macs + 1) / 2e7 + (mem + 1) / 1e7))
    got = m(collate([g], emb), hw.index(torch.tensor([0]))).item()
    assert got == pytest.approx(want, rel=1e-4)
    with pytest.raises(LedgformerError, match="roofline"):
        _model("accuracy", roofline=True)


def test_roofline_overhead_adds_five_microseconds_per_node(data) -> None:
    """model.roofline_overhead: at init each real node costs MACs / 2e7 + bytes / 1e7 + 5e-3 ms
    (padding adds nothing: the same graph alone and beside a larger one); needs model.roofline."""
    items, emb, hw = data
    m = _model(roofline=True, roofline_overhead=True)
    _zero_heads(m)
    g = items[2]
    macs, mem = _node_work(g)
    want = math.log(np.sum((macs + 1) / 2e7 + (mem + 1) / 1e7 + 5e-3))
    big = max(items, key=len)
    assert len(big) > len(g)
    got = m(collate([g, big], emb), hw.index(torch.tensor([0, 0])))
    assert got[0].item() == pytest.approx(want, rel=1e-4)
    with pytest.raises(LedgformerError, match="roofline_overhead"):
        _model(roofline_overhead=True)


def test_roofline_card_starts_at_a_quarter_of_the_card_peak(data) -> None:
    """model.roofline_card: a card stating peak_tflops_fp32 gets P = peak x 1/4 at init (1 TFLOP/s
    = 5e8 MACs/ms), B stays learned where the card has no bandwidth; a card without figures gets
    the plain roofline prior; the option needs model.roofline."""
    from ledgformer.hardware import load_card

    items, emb, _ = data
    g = items[2]
    macs, mem = _node_work(g)
    without = load_card("mmb/tflite/s10|gpu|float")  # no peak, no bandwidth
    with_peak = load_card({"base": "mmb/tflite/s10|gpu|float", "name": "c", "peak_tflops_fp32": 0.1})
    feat = torch.as_tensor(np.stack([with_peak.features(), without.features()]))
    hw = HardwareBatch(torch.zeros(2, TEXT_DIM), feat)
    assert feat.shape[1] == len(FEATURE_NAMES)
    m = _model(roofline=True, roofline_card=True)
    _zero_heads(m)
    got = m(collate([g, g], emb), hw)
    p_card = 0.1 * 5e8 * 0.25
    assert got[0].item() == pytest.approx(math.log(np.sum((macs + 1) / p_card + (mem + 1) / 1e7)), rel=1e-4)
    assert got[1].item() == pytest.approx(math.log(np.sum((macs + 1) / 2e7 + (mem + 1) / 1e7)), rel=1e-4)
    assert load_card("mmb/tflite/pixel4|1large|float").peak_tflops_fp32 is not None  # cards that have one
    with pytest.raises(LedgformerError, match="roofline_card"):
        _model(roofline_card=True)


def test_roofline_checkpoint_without_fit_stats_loads(data) -> None:
    """Roofline checkpoints from before the ``fit_stats`` buffer load with it = (y_loc, y_scale)."""
    items, emb, hw = data
    m = _model(roofline=True)
    m.set_target_stats(2.0, 1.5)
    state = {k: v for k, v in m.state_dict().items() if k != "fit_stats"}
    fresh = _model(roofline=True)
    fresh.load_state_dict(state)
    batch, one = collate(items[:3], emb), hw.index(torch.tensor([0, 1, 2]))
    assert torch.equal(fresh(batch, one), m(batch, one))


def test_padding_gets_no_attention(data) -> None:
    items, emb, hw = data
    m = _model()
    batch = collate(items, emb)
    ref = m(batch, hw)
    pad = ~batch.mask
    assert pad.any()
    batch.num[pad] = 1e3 * torch.randn(int(pad.sum()), len(NODE_FEATURES))
    batch.op[pad] = 5
    batch.text_ids[pad] = 1
    batch.rel[pad[:, :, None].expand_as(batch.rel)] = REL["parent"]
    batch.rel[pad[:, None, :].expand_as(batch.rel)] = REL["child"]
    assert torch.allclose(m(batch, hw), ref, atol=1e-5)


def test_gradients_reach_dynamic_bias(data) -> None:
    items, emb, hw = data
    m = _model().train()
    m(collate(items, emb), hw).sum().backward()
    for blk in m.blocks:
        assert blk.bias.pair.weight.grad is not None and blk.bias.pair.weight.grad.abs().sum() > 0
        assert blk.bias.table.grad.abs().sum() > 0
    assert not hasattr(_model(dynamic_bias=False).blocks[0].bias, "pair")


def test_dynamic_bias_depends_on_states(data) -> None:
    """The bias of a pair changes when the node states change (it is not a fixed adjacency)."""
    items, emb, _ = data
    blk = _model().blocks[0]
    rel = collate(items[:1], emb).rel
    h = torch.randn(1, rel.shape[1], 16)
    assert not torch.allclose(blk.bias(h, rel), blk.bias(2 * h, rel))



def test_dynamic_gate_zero_starts_as_the_static_bias_and_learns_its_gates(data) -> None:
    """``dyn_gate_init=0``: the untrained model equals the static-bias model with the same weights,
    and the gates (not yet the state projection) get the first gradient."""
    items, emb, hw = data
    gate0, static = _model(dyn_gate_init=0.0), _model(dynamic_bias=False)
    state = {k: v for k, v in gate0.state_dict().items() if ".bias.pair." not in k}
    for k, v in state.items():
        if k.endswith("bias.table"):
            state[k] = v[:, : v.shape[1] // 2]
    static.load_state_dict(state)
    batch = collate(items, emb)
    assert torch.allclose(gate0(batch, hw), static(batch, hw), atol=1e-5)
    gate0.train()(batch, hw).sum().backward()
    for blk in gate0.blocks:
        assert blk.bias.table.grad[:, blk.bias.h:].abs().sum() > 0
        assert blk.bias.pair.weight.grad.abs().sum() == 0

def test_latency_positive_and_needs_hardware(data) -> None:
    items, emb, hw = data
    m = _model()
    with torch.no_grad():
        m.blocks[0].proj.bias.fill_(-50.0)
    assert (m.predict(collate(items, emb), hw) > 0).all()
    with pytest.raises(LedgformerError, match="hardware"):
        m(collate(items, emb), None)


def test_hardware_text_off_ignores_card_text(data) -> None:
    items, emb, hw = data
    m = _model(hardware_text=False)
    other = HardwareBatch(torch.randn_like(hw.text), hw.feat)
    assert torch.allclose(m(collate(items, emb), hw), m(collate(items, emb), other))


def test_setting_token_reads_what_the_setting_is_not_how_fast(data) -> None:
    """``hw_features: setting``: text, clock, peak ... do not move the prediction; precision does."""
    items, emb, hw = data
    m = _model(hw_features="setting")
    batch = collate(items, emb)
    feat = hw.feat.clone()
    for name in ("log_clock_ghz", "log_peak_tflops_fp32", "log_memory_bandwidth_gbs", "log_power_w"):
        feat[:, FEATURE_NAMES.index(name)] += 1.0
    other = HardwareBatch(torch.randn_like(hw.text), feat)
    assert torch.allclose(m(batch, hw), m(batch, other))
    feat[:, FEATURE_NAMES.index("precision=int8")] += 1.0
    assert not torch.allclose(m(batch, hw), m(batch, HardwareBatch(hw.text, feat)))
    with pytest.raises(LedgformerError, match="hw_features"):
        _model(hw_features="some")


def test_tiny_model_overfits_16_graphs(data) -> None:
    items, emb, hw = data
    torch.manual_seed(0)
    m = _model().train()
    batch = collate(items, emb)
    y = torch.log(torch.tensor([float(g.glob[0] * 10 + (i % 3)) for i, g in enumerate(items)]))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(m(batch, hw), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


@pytest.mark.parametrize("hw_layers", [0, 1])
def test_shared_encoding_serves_every_device(data, hw_layers) -> None:
    """With the card in the last blocks only, one graph encoding is read out per device."""
    items, emb, hw = data
    m = _model(hw_layers=hw_layers)
    batch = collate(items[:4], emb)
    rows = torch.tensor([0, 0, 1, 3, 3, 3])
    shared = m(batch, hw.index(torch.arange(6)), graph_index=rows)
    plain = m(batch.index(rows), hw.index(torch.arange(6)))
    assert torch.allclose(shared, plain, atol=1e-5)
    assert not torch.allclose(shared[3], shared[4])  # same graph, different card


def test_fast_relation_gathers_equal_plain_indexing(data) -> None:
    """Training path (gather with an index_add backward) and inference path (every block's
    table gathered at once, padding folded in) give what ``table[rel]`` and autograd give."""
    from ledgformer.model.relation_gather import gather_relations

    items, emb, hw = data
    m = _model(dyn_gate_init=0.5, hw_layers=0)  # every block device-independent: ``encode``
    batch, six = collate(items[:6], emb), hw.index(torch.arange(6))  # sizes differ: padded keys
    with torch.no_grad():
        fast = m(batch, six)
    with torch.enable_grad():
        slow = m(batch, six)
    assert torch.allclose(fast, slow, atol=1e-5)
    table = torch.randn(5, 4, requires_grad=True)
    rel = torch.randint(0, 5, (2, 3, 3))
    w = torch.randn(2, 4, 3, 3)
    (gather_relations(table, rel) * w).sum().backward()
    got = table.grad.clone()
    table.grad = None
    (table[rel].permute(0, 3, 1, 2) * w).sum().backward()
    assert torch.allclose(got, table.grad, atol=1e-6)


def test_fused_dynamic_bias_equals_autograd_of_the_gather() -> None:
    """The training path's fused ``static + gate * score`` gives bit for bit the values and the
    gradients (table and score) that slicing the gathered table under autograd gives."""
    from ledgformer.model.relation_gather import dynamic_bias, gather_relations

    torch.manual_seed(0)
    table = torch.randn(7, 4, requires_grad=True)
    score = torch.randn(3, 2, 9, 9, requires_grad=True)
    rel, w = torch.randint(0, 7, (3, 9, 9)), torch.randn(3, 2, 9, 9)
    per_rel = gather_relations(table, rel)
    plain = per_rel[:, :2] + per_rel[:, 2:] * score
    (plain * w).sum().backward()
    grads = table.grad.clone(), score.grad.clone()
    table.grad = score.grad = None
    fused = dynamic_bias(table, rel, score)
    (fused * w).sum().backward()
    assert torch.equal(fused, plain)
    assert torch.equal(table.grad, grads[0]) and torch.equal(score.grad, grads[1])
    assert not torch.equal(grads[0][:, 2:], torch.zeros(7, 2))  # the gate columns do get gradient


@pytest.mark.parametrize("dropout", [0.0, 0.2])
@pytest.mark.parametrize("bias_grad", [True, False])
def test_written_out_attention_equals_torch_attention_bit_for_bit(dropout: float, bias_grad: bool) -> None:
    """Values and the gradients of q, k, v (and the bias), padded keys included, the same dropout
    for the same seed; with and without a gradient for the bias (torch picks another kernel)."""
    import torch.nn.functional as F

    from ledgformer.model.relation_gather import attention

    pad = torch.zeros(3, 1, 1, 11)
    pad[1, ..., 7:] = float("-inf")
    grads, outs = [], []
    for fn in (lambda q, k, v, b: F.scaled_dot_product_attention(q, k, v, attn_mask=b, dropout_p=dropout),
               lambda q, k, v, b: attention(q, k, v, b, dropout)):
        torch.manual_seed(0)
        q, k, v = (torch.randn(3, 2, 11, 8, requires_grad=True) for _ in range(3))
        bias = torch.randn(3, 2, 11, 11, requires_grad=bias_grad)
        out = fn(q, k, v, bias + pad)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs.append(out)
        grads.append([t.grad for t in (q, k, v, bias)])
    assert torch.equal(outs[0], outs[1])
    assert all(a is b or torch.equal(a, b) for a, b in zip(*grads, strict=True))
