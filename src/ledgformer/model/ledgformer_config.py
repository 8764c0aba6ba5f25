"""``LeDGFormerConfig``: every option of the LeDG-Former model (``model.*`` in a run config),
with why each exists and the checks that turn a bad combination into one clear error. The model
itself is ``ledgformer.model.ledgformer``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledgformer.errors import LedgformerError


@dataclass
class LeDGFormerConfig:
    task: str = "latency"  # "latency" (log-ms output) or "accuracy"
    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 4
    ffn_mult: int = 2
    dropout: float = 0.0
    text_dim: int = 384  # node text embedding size (encoder dim)
    use_text: bool = True  # False: no text tokens at all (features + op embedding only)
    dynamic_bias: bool = True  # False: fixed relation bias only
    dyn_rank: int = 8  # rank of the per-head bilinear state score
    #: initial per-relation gate of the state score; 0 starts as the static bias and lets each
    #: relation and head grow its dynamic part only as far as the loss asks (ReZero-style)
    dyn_gate_init: float = 1.0
    use_hardware: bool = True  # hardware token (latency tasks); accuracy tasks run without
    hardware_text: bool = True  # False: the hardware token sees the numeric card only
    #: what the hardware token reads: "all" (card text and every numeric figure) or "setting" (no
    #: text; only the setting's kind / precision / runtime one-hots, threads, batch, unit count and
    #: which figures are missing). With ``roofline_card`` a device's speed then enters only through
    #: its card's peak figures, so an unseen phone cannot be placed by how its name or clock
    #: resembles a training phone (5 phones teach little beyond the peak)
    hw_features: str = "all"
    hw_text_dim: int = 384
    #: the hardware token joins the last ``hw_layers`` blocks (-1: all). The blocks before are
    #: device-independent: one graph encoding then serves every device (``encode``/``decode``).
    #: 0 = late fusion: the token only conditions the readout (per-node costs, pooled head), so
    #: ranking a whole space for a new device costs one small MLP per node
    hw_layers: int = -1
    readout: str = "auto"  # "sum" (latency default), "pool" (accuracy default)
    #: the global token also reads per-op-type counts and MACs / params / bytes totals (GBDT's
    #: inputs): whole-graph cost structure without asking the attention to count
    op_totals: bool = False
    #: graph-level inputs from outside the graph (``data.proxies``: zero-cost proxies), fed to the
    #: global token; set from the data by the trainer
    n_extra: int = 0
    #: latency "sum" readout on a roofline prior: node i costs exp(score_i) x (MACs_i / P + bytes_i / B)
    #: with log P, log B read from the hardware token, and the prediction is the log of the sum in
    #: ms (plus a graph-level correction), so an untrained model already scales like MACs and bytes
    roofline: bool = False
    #: with the roofline prior, P (B) of a card that states peak_tflops_fp32 (memory_bandwidth_gbs)
    #: is that figure times a learned efficiency read from the hardware token, instead of a level
    #: learned from the token alone: an unseen device's scale then comes from its card's figures
    roofline_card: bool = False
    #: with the roofline prior, every node also pays a fixed overhead O ms read from the hardware
    #: token: node i costs exp(score_i) x (MACs_i / P + bytes_i / B + O), so a network of many
    #: small operators (a CIFAR cell network on a CPU runtime) is not priced by its work alone
    roofline_overhead: bool = False
    #: every block first adds a GIN-style local step (sum of the parents' and of the children's
    #: states, through an MLP) before its attention: message passing along the edges themselves,
    #: which the relation bias only approximates through softmax weights
    local_mp: bool = False
    #: what the per-node cost head (sum readout) reads beside the hardware token: "context", each
    #: node's final state (after attention over the whole graph), or "token", the node's own input
    #: token (op type, text, numeric features): a node's cost then cannot follow which training
    #: family the rest of the graph resembles (the graph-level term still reads the context)
    node_cost: str = "context"

    def __post_init__(self) -> None:
        if self.task not in ("latency", "accuracy"):
            raise LedgformerError(f"model.task must be 'latency' or 'accuracy', got {self.task!r}")
        if self.d_model % self.n_heads:
            raise LedgformerError(
                f"model.d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.hw_layers < 0 or self.hw_layers > self.n_layers:
            self.hw_layers = self.n_layers
        if self.readout == "auto":
            self.readout = "sum" if self.task == "latency" else "pool"
        if self.readout not in ("sum", "pool"):
            raise LedgformerError(f"model.readout must be 'auto', 'sum' or 'pool', got {self.readout!r}")
        if self.roofline and (self.readout != "sum" or not self.use_hardware or self.task != "latency"):
            raise LedgformerError("model.roofline needs a latency model with the hardware token and the "
                                  "sum readout")
        if self.hw_features not in ("all", "setting"):
            raise LedgformerError(f"model.hw_features must be 'all' or 'setting', got {self.hw_features!r}")
        if self.node_cost not in ("context", "token"):
            raise LedgformerError(f"model.node_cost must be 'context' or 'token', got {self.node_cost!r}")
        if self.node_cost == "token" and self.readout != "sum":
            raise LedgformerError("model.node_cost applies to the sum readout (latency models)")
        for key in ("roofline_card", "roofline_overhead"):
            if getattr(self, key) and not self.roofline:
                raise LedgformerError(f"model.{key} extends the roofline prior: set model.roofline too")
