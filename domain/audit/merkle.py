"""The event log's Merkle tree as RFC 9162 §2.1 defines it: roots, proofs and their checks.

Pure code: storage keeps the hashes of complete, aligned subtrees (``node(level, index)``:
the root of leaves ``index·2^level … (index+1)·2^level − 1``) and hands this module a lookup;
every root and proof for any tree size is made from those. The verifiers need nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

Node = Callable[[int, int], bytes]  # (level, index) -> hash of that complete subtree

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof, root or size that does not verify (the message says which check failed)."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162: SHA-256(0x00 ‖ leaf data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(start: int, end: int, node: Node) -> bytes:
    """MTH(D[start:end]) for a range the RFC's recursion produces (start aligned to its split)."""
    size = end - start
    if size <= 0:
        raise ValueError(f"empty range {start}..{end}")
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return node(level, start >> level)
    k = _split(size)
    return node_hash(range_hash(start, start + k, node), range_hash(start + k, end, node))


def root(size: int, node: Node) -> bytes:
    """The tree head of the first ``size`` leaves."""
    return EMPTY_ROOT if size == 0 else range_hash(0, size, node)


def inclusion_proof(index: int, size: int, node: Node) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]), leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(range_hash(start + k, end, node))
            end = start + k
        else:
            path.append(range_hash(start, start + k, node))
            start += k
    return path[::-1]


def consistency_proof(old: int, new: int, node: Node) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(old, D[0:new])."""
    if not 0 < old <= new:
        raise ValueError(f"no consistency proof from {old} to {new}")
    if old == new:
        return []
    proof: list[bytes] = []
    start, end, m, whole = 0, new, old, True
    while True:
        if m == end - start:
            if not whole:
                proof.append(range_hash(start, end, node))
            break
        k = _split(end - start)
        if m <= k:
            proof.append(range_hash(start + k, end, node))
            end = start + k
        else:
            proof.append(range_hash(start, start + k, node))
            start, m, whole = start + k, m - k, False
    return proof[::-1]


def needed_nodes(make: Callable[[Node], object]) -> set[tuple[int, int]]:
    """The (level, index) pairs ``make`` reads, so storage can fetch them in one query."""
    seen: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        seen.add((level, index))
        return EMPTY_ROOT

    make(record)
    return seen


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """RFC 9162 §2.1.3.2; raises ProofError unless ``leaf`` is at ``index`` under ``root_hash``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the tree is deep")
    if r != root_hash:
        raise ProofError(f"the inclusion proof of leaf {index} does not lead to the root")


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2; raises ProofError unless the tree of ``old`` is a prefix of ``new``."""
    if not 0 < old <= new:
        raise ProofError(f"no consistency between sizes {old} and {new}")
    if old == new:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError(f"two different roots for size {old}")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the proof's first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than the tree is deep")
    if fr != old_root:
        raise ProofError(f"the consistency proof does not lead to the root of size {old}")
    if sr != new_root:
        raise ProofError(f"the consistency proof does not lead to the root of size {new}")


class Frontier:
    """The right edge of a growing tree: push leaf hashes, read the root of every size on the way.

    It holds one hash per set bit of the size (the complete subtrees of the decomposition), so
    appending is amortised O(1) and each complete subtree formed is reported once.
    """

    def __init__(self, size: int = 0, edge: Iterable[bytes] = ()) -> None:
        self.size = size
        self.edge = list(edge)  # largest subtree first
        if len(self.edge) != size.bit_count():
            raise ValueError(f"a tree of {size} needs {size.bit_count()} edge hashes")

    @classmethod
    def edge_nodes(cls, size: int) -> list[tuple[int, int]]:
        """The (level, index) of the complete subtrees making up a tree of ``size``."""
        out, start = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                out.append((level, start >> level))
                start += 1 << level
        return out

    def push(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf hash; returns the (level, index, hash) of every subtree it completes."""
        formed = [(0, self.size, leaf)]
        h, index, level = leaf, self.size, 0
        while index & 1:
            h = node_hash(self.edge.pop(), h)
            index, level = index >> 1, level + 1
            formed.append((level, index, h))
        self.edge.append(h)
        self.size += 1
        return formed

    def root(self) -> bytes:
        """The tree head of the leaves pushed so far."""
        if not self.edge:
            return EMPTY_ROOT
        h = self.edge[-1]
        for left in reversed(self.edge[:-1]):
            h = node_hash(left, h)
        return h


def root_of(leaves: Iterable[bytes]) -> bytes:
    """The tree head of these leaf hashes (for verifiers holding every entry)."""
    f = Frontier()
    for leaf in leaves:
        f.push(leaf)
    return f.root()
