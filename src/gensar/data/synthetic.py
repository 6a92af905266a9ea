"""A seeded synthetic dataset in the ``jsonl`` raw format, at any size (for scale tests).

Real logs are skewed, and that is what makes memory and time grow the way they
do (long-tail items, a few very active users, repeated queries), so the
generator reproduces the skew rather than drawing uniformly:

* items get a Zipf-like popularity (weight ``1 / rank**zipf``, ranks shuffled)
  and one leaf of a three-level category tree; every item has a title and a
  short text made of its category words, a brand and words of its leaf, so
  BM25 and the sentence encoder see related texts within a category;
* users have a log-normal activity (a few heavy users, many light ones), two to
  three favourite leaves, and act in sessions: a session stays in one leaf
  (a favourite most of the time), its events are recommendation clicks or
  searches (share ``search_share``), each search a query of that leaf (a few
  queries per leaf, the first ones more often) and a click on an item of the
  leaf; a search may get a second click in the same session (same query);
* times grow within a user: seconds between the events of a session, days
  between sessions.

The output is what ``gensar prepare --source jsonl DIR`` reads (README, "Bring
your own data"): ``DIR/items.jsonl`` and ``DIR/events.jsonl``. Pseudo-words
(consonant-vowel syllables) stand in for English: no word list is needed and
the same seed always gives the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


@dataclass(frozen=True)
class SyntheticSpec:
    """The size and shape of a synthetic dataset."""

    users: int
    items: int
    events_per_user: float  # mean over users (rec clicks + search clicks)
    search_share: float = 0.43  # share of events that are search clicks
    queries: int = 2000  # about this many distinct query strings
    items_per_leaf: int = 50  # sets the number of leaf categories
    zipf: float = 1.0  # item popularity exponent
    session_mean: float = 4.0  # mean events per session
    second_click: float = 0.25  # chance that a search gets a second click (same query)
    text_words: int = 3  # extra words in an item text (short texts keep MiniLM cheap)
    seed: int = 0


#: The three sizes of ``benchmarks/scale.py`` (events per user from the issue's counts).
SIZES: dict[str, SyntheticSpec] = {
    # amazon-scientific: ~8k users, 4k items, 60k rec events (+ ~45k search).
    "scientific": SyntheticSpec(users=8_000, items=4_000, events_per_user=13.1, queries=1_000),
    # MovieLens-1M-sized: 6,040 users, 3,883 items, 1.0M rec + 1.0M search events.
    "ml1m": SyntheticSpec(
        users=6_040, items=3_883, events_per_user=331.0, search_share=0.5, queries=2_000
    ),
    # The paper's Amazon Electronics: 192,403 users, 62,882 items, 1.68M rec + 1.28M search.
    "electronics": SyntheticSpec(
        users=192_403, items=62_882, events_per_user=15.4, search_share=0.432, queries=8_000
    ),
}


def _words(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct pseudo-words of three syllables."""
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    k = len(syllables)
    codes = rng.choice(k**3, size=n, replace=False)
    return [syllables[c // (k * k)] + syllables[(c // k) % k] + syllables[c % k] for c in codes]


def generate(out_dir: str | Path, spec: SyntheticSpec) -> dict[str, Any]:
    """Write ``items.jsonl`` and ``events.jsonl`` into ``out_dir``; return their counts."""
    rng = np.random.default_rng(spec.seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    # -- catalogue: a category tree, item popularity, texts ------------------------------------
    n_leaves = max(4, spec.items // spec.items_per_leaf)
    n_roots = max(2, round(n_leaves**0.33))
    n_subs = max(n_roots, round(n_leaves**0.66))
    pool_size = 6  # words specific to each leaf
    words = _words(rng, n_roots + n_subs + n_leaves * (1 + pool_size) + 400)
    roots = words[:n_roots]
    subs = words[n_roots : n_roots + n_subs]
    leaf_words = words[n_roots + n_subs : n_roots + n_subs + n_leaves]
    start = n_roots + n_subs + n_leaves
    leaf_pool = np.array(words[start : start + n_leaves * pool_size]).reshape(n_leaves, pool_size)
    common = words[start + n_leaves * pool_size :]  # brands and general words
    sub_of_leaf = rng.integers(0, n_subs, n_leaves)
    root_of_sub = rng.integers(0, n_roots, n_subs)

    item_leaf = rng.integers(0, n_leaves, spec.items)
    weight = 1.0 / (rng.permutation(spec.items) + 1.0) ** spec.zipf
    order = np.lexsort((np.arange(spec.items), item_leaf))  # items grouped by leaf
    leaf_start = np.searchsorted(item_leaf[order], np.arange(n_leaves + 1))
    leaf_mass = np.bincount(item_leaf, weights=weight, minlength=n_leaves)
    # Within-leaf CDFs laid end to end: leaf l occupies [l, l + 1), so one
    # searchsorted of (leaf + u) draws an item of that leaf by popularity.
    within = np.zeros(spec.items)
    for leaf in range(n_leaves):
        rows = order[leaf_start[leaf] : leaf_start[leaf + 1]]
        if rows.size:
            within[leaf_start[leaf] : leaf_start[leaf + 1]] = (
                leaf + np.cumsum(weight[rows]) / weight[rows].sum()
            )
    nonempty = leaf_start[1:] > leaf_start[:-1]
    leaf_p = np.where(nonempty, leaf_mass, 0.0)
    leaf_p /= leaf_p.sum()

    brand = rng.integers(0, 60, spec.items)
    extra = rng.integers(0, len(common), (spec.items, spec.text_words))
    pool_pick = rng.integers(0, pool_size, (spec.items, 2))
    n_items = 0
    with (out / "items.jsonl").open("w") as f:
        for i in range(spec.items):
            leaf = item_leaf[i]
            sub = sub_of_leaf[leaf]
            title = (
                f"{common[brand[i]].title()} {leaf_words[leaf]} {leaf_pool[leaf, pool_pick[i, 0]]}"
            )
            text = " ".join(
                [title, leaf_pool[leaf, pool_pick[i, 1]], subs[sub]] + [common[w] for w in extra[i]]
            )
            categories = [
                roots[root_of_sub[sub]].title(),
                subs[sub].title(),
                leaf_words[leaf].title(),
            ]
            record = {
                "item_id": f"I{i:06d}",
                "title": title,
                "text": text,
                "categories": categories,
            }
            f.write(json.dumps(record) + "\n")
            n_items += 1

    # -- queries: a few per leaf: its word, one of its pool words, then a general word ----------
    per_leaf = max(1, spec.queries // n_leaves)
    query_pick = rng.integers(0, pool_size, (n_leaves, per_leaf))
    query_extra = rng.integers(0, len(common), (n_leaves, per_leaf))
    query_text = np.array(
        [
            f"{leaf_words[leaf]} {leaf_pool[leaf, query_pick[leaf, q]]}"
            + (f" {common[query_extra[leaf, q]]}" if q >= 2 else "")
            for leaf in range(n_leaves)
            for q in range(per_leaf)
        ]
    ).reshape(n_leaves, per_leaf)

    # -- users, sessions, events ----------------------------------------------------------------
    activity = rng.lognormal(0.0, 0.8, spec.users)
    counts = np.maximum(6, np.round(activity / activity.mean() * spec.events_per_user)).astype(
        np.int64
    )
    n = int(counts.sum())
    user = np.repeat(np.arange(spec.users), counts)
    first = np.zeros(n, dtype=bool)
    first[np.cumsum(counts)[:-1]] = True
    first[0] = True
    new_session = first | (rng.random(n) < 1.0 / spec.session_mean)
    session = np.cumsum(new_session) - 1
    session_user = user[new_session]
    favourites = rng.choice(n_leaves, size=(spec.users, 3), p=leaf_p)
    from_favourite = rng.random(session_user.size) < 0.75
    session_leaf = np.where(
        from_favourite,
        favourites[session_user, rng.integers(0, 3, session_user.size)],
        rng.choice(n_leaves, size=session_user.size, p=leaf_p),
    )
    leaf = session_leaf[session]
    rank = np.searchsorted(within, leaf + rng.random(n), side="right")
    rank = np.minimum(rank, leaf_start[leaf + 1] - 1)  # float round-off at a leaf's end
    item = order[rank]
    is_search = rng.random(n) < spec.search_share
    # A search click continues the previous search (same query, same session) sometimes.
    prev_search = np.concatenate(([False], is_search[:-1] & ~new_session[1:]))
    continued = is_search & prev_search & (rng.random(n) < spec.second_click)
    search_rows = np.flatnonzero(is_search)
    group = np.cumsum(~continued[search_rows]) - 1  # one search session per group
    group_query = np.minimum(
        (per_leaf * rng.random(int(group.max()) + 1 if group.size else 0) ** 2).astype(np.int64),
        per_leaf - 1,
    )
    gap = np.where(new_session, rng.exponential(2 * 86_400, n), rng.integers(20, 300, n))
    t0 = rng.integers(1_500_000_000, 1_530_000_000, spec.users)
    cum = np.cumsum(gap.astype(np.int64))
    user_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    time = t0[user] + cum - cum[user_start][user]

    n_search_sessions = 0
    with (out / "events.jsonl").open("w") as f:
        search_index = np.full(n, -1, dtype=np.int64)
        search_index[search_rows] = np.arange(search_rows.size)
        for row in range(n):
            u, t, it = int(user[row]), int(time[row]), int(item[row])
            if not is_search[row]:
                f.write(f'{{"user_id": "U{u:06d}", "time": {t}, "item_id": "I{it:06d}"}}\n')
                continue
            g = int(group[search_index[row]])
            query = query_text[leaf[row], group_query[g]]
            n_search_sessions += not continued[row]
            f.write(
                f'{{"user_id": "U{u:06d}", "time": {t}, "query": "{query}", '
                f'"items": ["I{it:06d}"], "session_id": "s{g}"}}\n'
            )
    return {
        "spec": asdict(spec),
        "items": n_items,
        "users": spec.users,
        "leaves": n_leaves,
        "events": n,
        "rec_events": int(n - is_search.sum()),
        "search_events": int(is_search.sum()),
        "search_sessions": n_search_sessions,
        "distinct_queries": int(np.unique(query_text).size),
    }
