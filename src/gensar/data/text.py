"""Item text and search-query construction shared by every loader."""

from __future__ import annotations

import html
import re

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

#: Texts longer than this are dropped (the authors' code does the same for descriptions).
MAX_TEXT_CHARS = 2000

#: A compact English stopword list (the function words of NLTK's list, which the
#: product-search literature uses), hard-coded so preparing data needs no download.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just me more most my myself no nor not now of off on once
    only or other our ours ourselves out over own same she should so some such than that the
    their theirs them themselves then there these they this those through to too under until
    up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves""".split()
)


def clean_text(raw: object) -> str:
    """Unescape HTML entities, strip tags and collapse whitespace."""
    if raw is None:
        return ""
    if isinstance(raw, list | tuple):
        raw = " ".join(str(part) for part in raw if part)
    text = html.unescape(str(raw))
    text = _TAG.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def item_text(
    title: str, description: str = "", *extra: str, max_chars: int = MAX_TEXT_CHARS
) -> str:
    """Item text = title + description (+ extra fields such as brand or categories).

    A description longer than ``max_chars`` is dropped rather than truncated,
    following the authors' preprocessing; the title is always kept.
    """
    parts = [clean_text(title)]
    description = clean_text(description)
    if description and len(description) <= max_chars:
        parts.append(description)
    parts.extend(clean_text(part) for part in extra)
    return ". ".join(part.rstrip(". ") for part in parts if part)


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words of ``text`` (punctuation dropped)."""
    return _WORD.findall(text.lower())


def query_from_categories(levels: list[str], *, min_levels: int = 2) -> str | None:
    """The product-search protocol's query for one category path.

    Van Gysel et al. 2016 / Ai et al. 2017 (used by GenSAR, UniSAR, SESRec): the
    terms of the category hierarchy concatenated from the first level to the
    last, lower-cased, with stopwords and repeated words removed in that order.
    Paths with fewer than ``min_levels`` levels are ignored (a bare root such as
    "Electronics" says nothing about an item); ``None`` means "no query".
    """
    levels = [level for level in levels if level and level.strip()]
    if len(levels) < min_levels:
        return None
    seen: set[str] = set()
    terms: list[str] = []
    for level in levels:
        for word in words(level):
            if word in STOPWORDS or word in seen:
                continue
            seen.add(word)
            terms.append(word)
    return " ".join(terms) or None
