"""The Merkle tree against published RFC 6962/9162 vectors and the RFC's own definitions."""

from __future__ import annotations

import hashlib
import random
from functools import cache

import pytest

from domain.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    needed_nodes,
    node_hash,
    root,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# Published vectors: transparency-dev/merkle, proof/verify_test.go (leaves, roots,
# inclusionProofs, consistencyProofs; Go's leaf numbers there are 1-based) and
# rfc6962/rfc6962_test.go (leaf and node hashes). Facts only, checked against our code.
LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243")] + [
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H96, H5F, H6B = (
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
)
HBC, HCA, HD3 = (
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ROOTS[3],
)
H0E, HB0 = (
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
)
# (0-based leaf index, tree size, proof)
INCLUSION = [
    (0, 1, []),
    (0, 8, [H96, H5F, H6B]),
    (5, 8, [HBC, HCA, HD3]),
    (2, 3, [ROOTS[1]]),
    (1, 5, [ROOTS[0], H5F, HBC]),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, [H96, H5F, H6B]),
    (6, 8, [H0E, HCA, HD3]),
    (2, 5, [H5F, HBC]),
    (6, 7, [H0E, HB0, HD3]),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def lookup(leaves: list[bytes]):
    """A node(level, index) over these leaf data, computed independently of range_hash."""

    @cache
    def node(level: int, index: int) -> bytes:
        if level == 0:
            return leaf_hash(leaves[index])
        return node_hash(node(level - 1, 2 * index), node(level - 1, 2 * index + 1))

    return node


# RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 written literally, as the oracle for random logs.
def rfc_mth(d: tuple[bytes, ...]) -> bytes:
    """MTH(D[n])."""
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:])).digest()


def rfc_path(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    """PATH(m, D[n])."""
    n = len(d)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*rfc_path(m, d[:k]), rfc_mth(d[k:])]
    return [*rfc_path(m - k, d[k:]), rfc_mth(d[:k])]


def rfc_proof(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""

    def subproof(m: int, d: tuple[bytes, ...], b: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if b else [rfc_mth(d)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return [*subproof(m, d[:k], b), rfc_mth(d[k:])]
        return [*subproof(m - k, d[k:], False), rfc_mth(d[:k])]

    return subproof(m, d, True)


def test_leaf_and_node_hashes_match_rfc6962_vectors() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == ROOTS[0]
    assert leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert node_hash(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_published_vectors(size: int) -> None:
    node = lookup(LEAVES)
    assert root(size, node).hex() == ROOTS[size - 1]
    assert root_of(leaf_hash(x) for x in LEAVES[:size]).hex() == ROOTS[size - 1]
    assert rfc_mth(tuple(LEAVES[:size])).hex() == ROOTS[size - 1]  # the oracle agrees too


def test_empty_tree() -> None:
    assert root(0, lookup([])) == EMPTY_ROOT == root_of([]) == Frontier().root()


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proofs_match_published_vectors(index: int, size: int, proof: list[str]) -> None:
    want = [bytes.fromhex(h) for h in proof]
    assert inclusion_proof(index, size, lookup(LEAVES)) == want
    verify_inclusion(index, size, leaf_hash(LEAVES[index]), want, bytes.fromhex(ROOTS[size - 1]))


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_match_published_vectors(old: int, new: int, proof: list[str]) -> None:
    want = [bytes.fromhex(h) for h in proof]
    assert consistency_proof(old, new, lookup(LEAVES)) == want
    verify_consistency(old, new, bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1]), want)


def _flip(b: bytes, i: int, mask: int = 8) -> bytes:
    return b[:i] + bytes([b[i] ^ mask]) + b[i + 1 :]


@pytest.mark.parametrize(("index", "size", "proof"), [v for v in INCLUSION if v[1] > 1])
def test_corrupted_inclusion_probes_of_the_reference_suite_fail(
    index: int, size: int, proof: list[str]
) -> None:
    # The probes transparency-dev/merkle's corruptInclusionProof makes, each must fail.
    p = [bytes.fromhex(h) for h in proof]
    r, leaf = bytes.fromhex(ROOTS[size - 1]), leaf_hash(LEAVES[index])
    probes = [
        (index - 1, size, leaf, p, r),
        (index + 1, size, leaf, p, r),
        (index ^ 2, size, leaf, p, r),
        (index, size * 2, leaf, p, r),
        (index, size // 2, leaf, p, r),
        (index, size, b"WrongLeaf", p, r),
        (index, size, leaf, p, EMPTY_ROOT),
        (index, size, leaf, p, SOME_HASH),
        (index, size, leaf, [*p, b""], r),
        (index, size, leaf, [*p, r], r),
        (index, size, leaf, [b"", *p], r),
        (index, size, leaf, [r, *p], r),
        (index, size, leaf, p[:-1], r),
        (index, size, leaf, [p[0], SOME_HASH, *p[1:]], r),
    ] + [(index, size, leaf, [*p[:i], _flip(p[i], 0), *p[i + 1 :]], r) for i in range(len(p))]
    for i, n, lf, pr, rt in probes:
        with pytest.raises(ProofError):
            verify_inclusion(i, n, lf, pr, rt)


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in CONSISTENCY if v[2]])
def test_corrupted_consistency_probes_of_the_reference_suite_fail(
    old: int, new: int, proof: list[str]
) -> None:
    # The probes of corruptConsistencyProof in transparency-dev/merkle proof/verify_test.go.
    p = [bytes.fromhex(h) for h in proof]
    r1, r2 = bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1])
    probes = [
        (old - 1, new, r1, r2, p),
        (old + 1, new, r1, r2, p),
        (old ^ 2, new, r1, r2, p),
        (old, new * 2, r1, r2, p),
        (old, new // 2, r1, r2, p),
        (old, new, b"WrongRoot", r2, p),
        (old, new, r1, b"WrongRoot", p),
        (old, new, r2, r1, p),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*p, b""]),
        (old, new, r1, r2, [*p, r1]),
        (old, new, r1, r2, [*p, r2]),
        (old, new, r1, r2, [b"", *p]),
        (old, new, r1, r2, [r1, *p]),
        (old, new, r1, r2, [r2, *p]),
        (old, new, r1, r2, [p[0], *p]),
        (old, new, r1, r2, p[:-1]),
    ] + [(old, new, r1, r2, [*p[:i], _flip(p[i], 0, 16), *p[i + 1 :]]) for i in range(len(p))]
    for m, n, a, b, pr in probes:
        with pytest.raises(ProofError):
            verify_consistency(m, n, a, b, pr)


def test_a_proof_of_the_wrong_length_is_refused_for_its_length() -> None:
    node, leaf = lookup(LEAVES), leaf_hash(LEAVES[5])
    proof, r = inclusion_proof(5, 8, node), bytes.fromhex(ROOTS[7])
    with pytest.raises(ProofError, match="longer"):
        verify_inclusion(5, 8, leaf, [*proof, r], r)
    with pytest.raises(ProofError, match="shorter"):
        verify_inclusion(5, 8, leaf, proof[:-1], r)
    proof, r6 = consistency_proof(6, 8, node), bytes.fromhex(ROOTS[5])
    with pytest.raises(ProofError, match="longer"):
        verify_consistency(6, 8, r6, r, [*proof, r])
    with pytest.raises(ProofError, match="shorter"):
        verify_consistency(6, 8, r6, r, proof[:-1])


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ProofError):
        verify_inclusion(0, 0, SOME_HASH, [], EMPTY_ROOT)
    with pytest.raises(ProofError):
        verify_inclusion(1, 1, SOME_HASH, [], SOME_HASH)
    with pytest.raises(ProofError):
        verify_consistency(2, 1, SOME_HASH, SOME_HASH, [])
    with pytest.raises(ProofError):  # an empty tree has no root to prove from (0 < old)
        verify_consistency(0, 1, EMPTY_ROOT, SOME_HASH, [])
    with pytest.raises(ProofError):  # equal sizes need equal roots: a split view
        verify_consistency(3, 3, SOME_HASH, EMPTY_ROOT, [])
    with pytest.raises(ProofError):  # and an empty proof
        verify_consistency(3, 3, SOME_HASH, SOME_HASH, [SOME_HASH])
    verify_consistency(3, 3, SOME_HASH, SOME_HASH, [])
    with pytest.raises(ValueError):
        inclusion_proof(3, 3, lookup(LEAVES))
    with pytest.raises(ValueError):
        consistency_proof(0, 3, lookup(LEAVES))
    with pytest.raises(ValueError):
        consistency_proof(4, 3, lookup(LEAVES))


# A random log of 1..300 entries (fixed seed).
MAX = 300
RNG = random.Random(23)
LOG = [RNG.randbytes(RNG.randrange(0, 40)) for _ in range(MAX)]
NODE = lookup(LOG)
ROOT = [root(n, NODE) for n in range(MAX + 1)]
EXHAUSTIVE = 64  # every size, index and pair up to here; samples above


@cache
def mth(start: int, end: int) -> bytes:
    return rfc_mth(tuple(LOG[start:end]))


def test_roots_of_every_size_match_the_rfc_and_the_frontier() -> None:
    f = Frontier()
    assert f.root() == EMPTY_ROOT == ROOT[0]
    for n in range(1, MAX + 1):
        f.push(leaf_hash(LOG[n - 1]))
        assert f.size == n
        assert ROOT[n] == f.root()
        if n <= EXHAUSTIVE or n % 37 == 0 or n == MAX:
            assert ROOT[n] == mth(0, n)


def test_frontier_reports_exactly_the_complete_subtrees() -> None:
    f, seen = Frontier(), {}
    for n in range(MAX):
        for level, index, h in f.push(leaf_hash(LOG[n])):
            assert (level, index) not in seen
            seen[level, index] = h
        # Every complete aligned subtree of the first n+1 leaves, each once, with its range hash.
        want = {
            (level, index): NODE(level, index)
            for level in range((n + 1).bit_length())
            for index in range((n + 1) >> level)
        }
        assert seen == want
        # The frontier can be resumed from its edge as storage keeps it.
        edge = [seen[k] for k in Frontier.edge_nodes(n + 1)]
        assert Frontier(n + 1, edge).root() == f.root() == ROOT[n + 1]


def test_a_frontier_needs_one_edge_hash_per_set_bit() -> None:
    with pytest.raises(ValueError):
        Frontier(3, [SOME_HASH])


def _sizes() -> list[int]:
    return [*range(1, EXHAUSTIVE + 1), *sorted(RNG.sample(range(EXHAUSTIVE + 1, MAX), 20)), MAX]


def test_every_inclusion_proof_verifies_and_matches_the_rfc() -> None:
    for n in range(1, MAX + 1):
        for i in range(n):
            proof = inclusion_proof(i, n, NODE)
            verify_inclusion(i, n, leaf_hash(LOG[i]), proof, ROOT[n])
            if n <= EXHAUSTIVE:
                assert proof == rfc_path(i, tuple(LOG[:n]))


def _pairs() -> list[tuple[int, int]]:
    pairs = [(m, n) for n in range(1, EXHAUSTIVE + 1) for m in range(1, n + 1)]
    for n in range(EXHAUSTIVE + 1, MAX + 1):
        edges = {1, n - 1, n, 1 << (n.bit_length() - 1), (1 << (n.bit_length() - 1)) - 1}
        pairs += [(m, n) for m in edges | set(RNG.sample(range(1, n), 6))]
    return pairs


def test_every_consistency_proof_verifies_and_matches_the_rfc() -> None:
    for m, n in _pairs():
        proof = consistency_proof(m, n, NODE)
        verify_consistency(m, n, ROOT[m], ROOT[n], proof)
        if n <= EXHAUSTIVE:
            assert proof == rfc_proof(m, tuple(LOG[:n]))


def _flips(b: bytes) -> list[bytes]:
    return [_flip(b, i, 1 << (i % 8)) for i in range(len(b))]


def test_flipping_any_byte_of_an_inclusion_proof_root_or_leaf_fails() -> None:
    cases = [(i, n) for n in range(1, 21) for i in range(n)]
    cases += [(RNG.randrange(n), n) for n in _sizes()[EXHAUSTIVE:] for _ in range(3)]
    for i, n in cases:
        proof, leaf = inclusion_proof(i, n, NODE), leaf_hash(LOG[i])
        for k, element in enumerate(proof):
            for bad in _flips(element):
                with pytest.raises(ProofError):
                    verify_inclusion(i, n, leaf, [*proof[:k], bad, *proof[k + 1 :]], ROOT[n])
        for bad in _flips(ROOT[n]):
            with pytest.raises(ProofError):
                verify_inclusion(i, n, leaf, proof, bad)
        for bad in _flips(leaf):
            with pytest.raises(ProofError):
                verify_inclusion(i, n, bad, proof, ROOT[n])
        # Changing the leaf's data (not just its hash) fails the same way.
        with pytest.raises(ProofError):
            verify_inclusion(i, n, leaf_hash(LOG[i] + b"x"), proof, ROOT[n])


def test_flipping_any_byte_of_a_consistency_proof_or_either_root_fails() -> None:
    pairs = [(m, n) for n in range(2, 21) for m in range(1, n)]
    pairs += RNG.sample([p for p in _pairs() if p[1] > EXHAUSTIVE and p[0] < p[1]], 40)
    for m, n in pairs:
        proof = consistency_proof(m, n, NODE)
        for k, element in enumerate(proof):
            for bad in _flips(element):
                with pytest.raises(ProofError):
                    verify_consistency(m, n, ROOT[m], ROOT[n], [*proof[:k], bad, *proof[k + 1 :]])
        for bad in _flips(ROOT[m]):
            with pytest.raises(ProofError):
                verify_consistency(m, n, bad, ROOT[n], proof)
        for bad in _flips(ROOT[n]):
            with pytest.raises(ProofError):
                verify_consistency(m, n, ROOT[m], bad, proof)


def test_an_inclusion_proof_does_not_hold_for_another_index_or_size() -> None:
    for n in _sizes():
        for i in sorted({0, n // 3, n // 2, n - 1}):
            proof, leaf = inclusion_proof(i, n, NODE), leaf_hash(LOG[i])
            for j in {i - 1, i + 1, i ^ 1, i ^ 2} - {i}:
                with pytest.raises(ProofError):
                    verify_inclusion(j, n, leaf, proof, ROOT[n])
            for size in {n - 1, n + 1, 2 * n, n // 2} - {n}:
                if not i < size <= MAX or proof == inclusion_proof(i, size, NODE):
                    continue
                # Claiming another size fails against that size's root (RFC verification binds
                # the size only through the path's shape, so the root is what must differ).
                with pytest.raises(ProofError):
                    verify_inclusion(i, size, leaf, proof, ROOT[size])
                if len(inclusion_proof(i, size, NODE)) != len(proof):
                    with pytest.raises(ProofError):  # another depth fails whatever the root
                        verify_inclusion(i, size, leaf, proof, ROOT[n])


def test_a_consistency_proof_does_not_hold_for_other_sizes() -> None:
    for m, n in RNG.sample([p for p in _pairs() if p[0] < p[1]], 200):
        proof = consistency_proof(m, n, NODE)
        for a, b in {(m - 1, n), (m + 1, n), (m, n - 1), (m, n + 1)}:
            if not 0 < a < b <= MAX or (a, b) == (m, n):
                continue
            with pytest.raises(ProofError):
                verify_consistency(a, b, ROOT[a], ROOT[b], proof)


def test_a_rewritten_entry_breaks_consistency_with_every_size_that_covered_it() -> None:
    other = [*LOG[:40], b"rewritten", *LOG[41:]]  # entry 40 rewritten
    node = lookup(other)
    for m in (10, 40, 41, 64):
        for n in (64, 100, 300):
            proof = consistency_proof(m, n, node)
            if m <= 40:  # the rewrite is after the old tree: still an extension of it
                verify_consistency(m, n, ROOT[m], root(n, node), proof)
                continue
            with pytest.raises(ProofError):
                verify_consistency(m, n, ROOT[m], root(n, node), proof)
            if proof != consistency_proof(m, n, NODE):  # nor does it join the honest roots
                with pytest.raises(ProofError):
                    verify_consistency(m, n, ROOT[m], ROOT[n], proof)


def test_needed_nodes_are_exactly_what_a_proof_reads() -> None:
    makers = [
        lambda node: root(77, node),
        lambda node: inclusion_proof(50, 77, node),
        lambda node: consistency_proof(13, 77, node),
        lambda node: consistency_proof(64, 300, node),
    ]
    for make in makers:
        needed = needed_nodes(make)
        fetched = {k: NODE(*k) for k in needed}

        def from_fetched(level: int, index: int, fetched: dict = fetched) -> bytes:
            return fetched[level, index]  # KeyError if the proof reads one not listed

        assert make(from_fetched) == make(NODE)
        # Only complete subtrees inside the tree: level/index describe real nodes.
        assert all((index + 1) << level <= 300 for level, index in needed)
