"""Makes moto's check of an update expression cost its nodes, not ten dictionaries a node.

moto validates each UpdateItem (and each Update of a transaction) by walking the expression's tree
ten times, one processor a walk (`UpdateExpressionValidator`). At each node of each walk,
`DepthFirstTraverser` builds the processor's map of node types to handlers twice (once to ask whether
the node is handled, once to handle it): a fifth of what a record's rewrite costs in a 10,000-record
data job. Each processor's map is fixed (its node types and bound methods), so here it is built once a
walk, and the walk is moto's: the same order, the same `pre_processing_of_child` calls, the first
matching type's handler, the node it returns put in its parent's place. Only the emulator is touched;
the product code and its behaviour on AWS do not change. infra/local/patches.py installs `PATCHES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from infra.local.patches import Patch

# moto marks the module `# type: ignore` (mypy sees none of its names), so it is taken as a plain module.
_ast_nodes = importlib.import_module("moto.dynamodb.parsing.ast_nodes")
DepthFirstTraverser, Node = _ast_nodes.DepthFirstTraverser, _ast_nodes.Node


def _one_map_a_walk(_traverse: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """DepthFirstTraverser.traverse with the processor's map built once for the walk (see the module)."""

    def traverse(self: Any, node: Any) -> Any:
        handlers = tuple(self._processing_map().items())
        handled = tuple(kind for kind, _ in handlers)
        pre = self.pre_processing_of_child

        def walk(node: Any, child_id: int = -1) -> Any:
            if isinstance(node, Node):
                parent = node.parent
                if node.children is not None:
                    for i, child in enumerate(node.children):
                        pre(node, i)
                        walk(child, i)
                if isinstance(node, handled):
                    node = next(handler for kind, handler in handlers if isinstance(node, kind))(node)
                    node.parent = parent
                    if parent:
                        parent.children[child_id] = node
            return node

        return walk(node)

    return traverse


# What infra/local/patches.py replaces for this module (its table says why), with the shapes it expects.
PATCHES = (Patch(DepthFirstTraverser, "traverse", "(self, node)", _one_map_a_walk),)
