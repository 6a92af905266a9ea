"""Prefix tries: the flat-tensor trie agrees with a brute-force dict of prefixes."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gensar.decoding import IdentifierCatalogue, build_trie
from gensar.decoding.reference import prefix_table
from gensar.errors import GensarError


@st.composite
def code_matrices(draw):
    """Unique identifiers of 1-4 codes over a small alphabet (so prefixes are shared)."""
    length = draw(st.integers(1, 4))
    alphabet = draw(st.integers(1, 4))
    rows = draw(
        st.lists(
            st.tuples(*[st.integers(10, 10 + alphabet - 1)] * length),
            min_size=1,
            max_size=40,
            unique=True,
        )
    )
    return np.asarray(rows, dtype=np.int64)


def walk(trie, group: int, prefix: tuple[int, ...]) -> int | None:
    """Node reached from ``group``'s root by following ``prefix`` through ``children``."""
    node = torch.tensor(group)
    for depth, token in enumerate(prefix):
        kids = trie.children(depth, node)
        hit = (kids.tokens == token) & kids.valid
        if not hit.any():
            return None
        node = kids.nodes[hit][0]
    return int(node)


@settings(max_examples=60, deadline=None)
@given(code_matrices(), st.randoms(use_true_random=False))
def test_trie_children_match_brute_force(codes, rnd):
    items = np.asarray(rnd.sample(range(1000), len(codes)))
    trie = build_trie(codes, items)
    table = prefix_table(codes, eos=-1)
    assert trie.num_items == len(codes) and trie.depth == codes.shape[1]
    for prefix, allowed in table.items():
        if len(prefix) == codes.shape[1]:
            leaf = walk(trie, 0, prefix)
            assert leaf is not None
            row = [tuple(r) for r in codes.tolist()].index(prefix)
            assert int(trie.items[leaf]) == items[row]
            continue
        node = walk(trie, 0, prefix)
        assert node is not None
        kids = trie.children(len(prefix), torch.tensor([node]))
        assert kids.tokens[kids.valid].tolist() == allowed  # sorted, nothing missing or extra
    # a prefix that is not in the catalogue leads nowhere
    assert walk(trie, 0, (9,) * codes.shape[1]) is None
    # identifiers() lists the catalogue back in leaf order
    back = {tuple(r): int(i) for r, i in zip(trie.identifiers().tolist(), trie.items, strict=True)}
    assert back == {tuple(r): int(i) for r, i in zip(codes.tolist(), items, strict=True)}


@settings(max_examples=40, deadline=None)
@given(code_matrices(), st.data())
def test_restricted_trie_holds_exactly_each_candidate_list(codes, data):
    catalogue = IdentifierCatalogue(3, codes, np.arange(len(codes)) * 7)
    n_lists = data.draw(st.integers(1, 4))
    lists = [
        data.draw(st.lists(st.sampled_from(catalogue.items.tolist()), max_size=12))
        for _ in range(n_lists)
    ]
    trie = catalogue.restricted_trie(lists)
    assert trie.num_groups == n_lists
    assert trie.group_sizes().tolist() == [len(set(c)) for c in lists]
    groups = trie.leaf_groups()
    for g, cands in enumerate(lists):
        assert sorted(trie.items[groups == g].tolist()) == sorted(set(cands))
        for item in set(cands):
            identifier = tuple(catalogue.codes[catalogue.row_of[item]].tolist())
            leaf = walk(trie, g, identifier)
            assert leaf is not None and int(trie.items[leaf]) == item


def test_children_pad_and_mask_for_a_batch_of_nodes():
    codes = np.array([[10, 20], [10, 21], [11, 20]])
    trie = build_trie(codes, np.array([5, 6, 7]))
    kids = trie.children(0, torch.tensor([[0]]))
    assert kids.tokens.tolist() == [[[10, 11]]]
    kids = trie.children(1, torch.tensor([[0, 1]]))  # node 0 = prefix 10, node 1 = prefix 11
    assert kids.valid.tolist() == [[[True, True], [True, False]]]
    assert kids.tokens[kids.valid].tolist() == [20, 21, 20]
    assert trie.items[kids.nodes[kids.valid]].tolist() == [5, 6, 7]


def test_duplicate_identifier_is_rejected_with_both_items_named():
    with pytest.raises(GensarError, match="items 1 and 2 have the same identifier"):
        IdentifierCatalogue(3, [[10, 20], [11, 20], [11, 20]])


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        ([[10, 20], [11]], "different lengths"),
        ([], "at least one identifier"),
        ([[10, -1]], "non-negative"),
    ],
)
def test_malformed_catalogues_are_rejected(codes, message):
    with pytest.raises(GensarError, match=message):
        IdentifierCatalogue(3, codes)


def test_unknown_candidate_and_token_clashes_are_user_errors():
    catalogue = IdentifierCatalogue(3, [[10, 20], [11, 20]], items=[4, 9])
    with pytest.raises(GensarError, match="item 5 has no identifier"):
        catalogue.restricted_trie([[4, 5]])
    with pytest.raises(GensarError, match="item 4 appears twice|appears twice"):
        IdentifierCatalogue(3, [[10, 20], [11, 20]], items=[4, 4])
    with pytest.raises(GensarError, match=r"\[20\]"):
        catalogue.check_special_tokens(0, 20)
    with pytest.raises(GensarError, match="both special tokens and code tokens"):
        IdentifierCatalogue(10, [[10, 20]]).check_special_tokens(0, 1)
    catalogue.check_special_tokens(0, 1, 2)


def test_empty_candidate_lists_give_empty_groups():
    catalogue = IdentifierCatalogue(3, [[10, 20], [11, 20]])
    trie = catalogue.restricted_trie([[], [1], []])
    assert trie.group_sizes().tolist() == [0, 1, 0]
    assert trie.children(0, torch.tensor([0, 2])).tokens.shape == (2, 0)


def test_restricted_tries_for_a_batch_are_fast():
    """The paper's protocol builds a trie per test case: 16 x 100 candidates from 4,400 items."""
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, 256, size=(5000, 4)) + np.arange(4) * 256 + 100, axis=0)[
        :4400
    ]
    catalogue = IdentifierCatalogue(3, codes)
    lists = [rng.choice(4400, 100, replace=False).tolist() for _ in range(16)]
    catalogue.restricted_trie(lists)
    start = time.perf_counter()
    for _ in range(5):
        trie = catalogue.restricted_trie(lists)
    per_batch = (time.perf_counter() - start) / 5
    assert trie.group_sizes().tolist() == [100] * 16
    assert per_batch < 0.05, f"{per_batch * 1e3:.1f} ms for 16 restricted tries"
