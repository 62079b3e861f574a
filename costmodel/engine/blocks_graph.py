"""The block function of the ``graph`` kind (spec/layers_graph.py): its op nodes, evaluated in order.

Tensors are block-local ids, as in every Flow: 0 is the layer input ``in``, node j's output is j + 1, and the
layer's j-th named input (``inputs``) is −(j + 1), which the walk maps to that layer's tensor id (as for
concat). The walk's shapes are per sample; a graph's are full torch shapes at batch 1, so ``in`` and the
named inputs get a leading 1 here and the layer's output (batched, leading dim 1) loses it on the way out.
Each node is one step, its stage the node's ``module`` (else its op name); engine/graph_ops.py has the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import SpecError
from ..spec.layers_graph import IN
from .blocks import BlockArgs, Flow
from .graph_ops import UNKNOWN, evaluate
from .ops import Shape


@dataclass
class GraphFlow(Flow):
    """A graph layer's flow: the steps' shapes are full batch-1 torch shapes; ``output`` is the per-sample shape
    of the ``result`` tensor (its leading 1 removed) the walk hands on."""

    def shape(self, tensor: int) -> Shape:
        """The batch-1 torch shape of a block-local tensor (0: the layer input, with its leading 1)."""
        return (1, *self.inp) if tensor == 0 else self.steps[tensor - 1].op.output

    @property
    def output(self) -> Shape:
        """The per-sample shape of the tensor that leaves the layer."""
        t = self.last if self.result is None else self.result
        return self.steps[t - 1].op.output[1:]


def graph(layer: Any, a: BlockArgs) -> Flow:
    """Evaluate the nodes in order: each reads its ``inputs`` (default: the previous node, the first ``in``),
    its Op from engine/graph_ops.py; the output node (``output``, else the last) must be batched with leading
    dim 1 (a SpecError naming ``output`` otherwise)."""
    f = GraphFlow(a.inp)
    shapes: dict[int, Shape] = {0: (1, *a.inp)}
    batched: dict[int, int | None] = {0: 0}  # where each tensor holds the batch (None: unbatched)
    names: dict[str, int] = {IN: 0}
    for j, src in enumerate(a.sources):
        t = -(j + 1)
        shapes[t], batched[t] = (1, *src), 0
        names[layer.inputs[j]] = t
    prev = 0
    for j, node in enumerate(layer.nodes):
        path = (*a.path, "nodes", j)
        if node.inputs is not None:
            reads = tuple(names[name] for name in node.inputs)
        else:
            reads = () if node.op in ("param", "buffer") else (prev,)
        op, where = evaluate(node, tuple(shapes[t] for t in reads), tuple(batched[t] for t in reads), a.n, path)
        t = f.add(node.module or node.op, op, reads)
        shapes[t], batched[t] = op.output, where
        if node.id is not None:
            names[node.id] = t
        prev = t
    result = names[layer.output] if layer.output is not None else f.last
    out = shapes[result]
    if batched[result] != 0 or out[0] != 1:
        why = (
            "is computed from parameters alone"
            if batched[result] is None
            else f"is {'×'.join(map(str, out))}"
            if out[0] != 1
            else f"holds the batch in dim {batched[result]}, not dim 0"
            if batched[result] != UNKNOWN
            else "holds the batch folded with other dims (a reshape of a tensor whose batch is not its outermost dim)"
        )
        raise SpecError(
            f"the layer's output tensor {why}: it must be batched with leading dim 1 (the batch)",
            (*a.path, "output" if layer.output is not None else "nodes"),
        )
    if layer.output is not None:
        f.result = result
    return f
