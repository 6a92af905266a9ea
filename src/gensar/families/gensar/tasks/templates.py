"""Instruction templates of the five training tasks (paper 3.3).

Each task has several English phrasings; training draws one at random per
example and evaluation uses the first (the authors' code does the same with 10).
Placeholders: ``{history}`` (the behaviour-aware history of Eq. 11),
``{query}`` (the current query), ``{description}`` (item text) and
``{identifier}`` (an item identifier). The instruction then ends with the
behaviour token of the wanted output (paper 3.4.2), which the response repeats.
"""

from __future__ import annotations

NRIP = "nrip"  # next recommendation item prediction (3.3.1)
NSQP = "nsqp"  # next search query prediction (3.3.2)
NSIP = "nsip"  # next search item prediction (3.3.3)
DESC2ID = "desc2id"  # identifier-language alignment (3.3.4)
ID2DESC = "id2desc"
TASKS = (NRIP, NSQP, NSIP, DESC2ID, ID2DESC)

TEMPLATES: dict[str, list[str]] = {
    NRIP: [
        "Below is the user's interaction history: {history}. Please recommend the next item the user is likely to click.",
        "Here is a user's history of searches and clicks: {history}. Which item will the user click next?",
        "The user has interacted with: {history}. Predict the next item to recommend to this user.",
        "Given the user history {history}, what item should be recommended next?",
        "User behaviour sequence: {history}. Recommend one item for this user.",
        "Based on these interactions: {history}, suggest the item the user wants to see next.",
    ],
    NSQP: [
        "Below is the user's interaction history: {history}. Please predict the next query the user might want to search.",
        "Here is a user's history of searches and clicks: {history}. What will the user search for next?",
        "The user has interacted with: {history}. Predict the user's next search query.",
        "Given the user history {history}, which query will the user type next?",
        "User behaviour sequence: {history}. Suggest the query this user is about to search.",
        "Based on these interactions: {history}, guess the next search of the user.",
    ],
    NSIP: [
        "Below is the user's interaction history: {history}. The user searches for {query}. Please predict the item the user will click.",
        "Here is a user's history of searches and clicks: {history}. The user now searches {query}. Which item will be clicked?",
        "The user has interacted with: {history}. Current query: {query}. Predict the clicked item.",
        "Given the user history {history} and the query {query}, what item does the user want?",
        "User behaviour sequence: {history}. Query: {query}. Retrieve the item for this user.",
        "Based on these interactions: {history}, find the item that answers the search {query}.",
    ],
    DESC2ID: [
        'Using the provided description "{description}", predict the corresponding item.',
        'Which item matches the description "{description}"?',
        'Find the identifier of the item described as "{description}".',
        'An item is described as "{description}". What is it?',
        'Give the item whose description is "{description}".',
        'Map the description "{description}" to its item.',
    ],
    ID2DESC: [
        "Please provide a description for the item {identifier}.",
        "Describe the item {identifier}.",
        "What is the item {identifier}?",
        "Write the description of item {identifier}.",
        "Tell me what {identifier} is.",
        "Give a short description of {identifier}.",
    ],
}


def template_texts() -> list[str]:
    """Every template with its placeholders removed, and the history separator ("; "):
    text the vocabulary must cover."""
    import re

    texts = [re.sub(r"\{\w+\}", " ", t) for templates in TEMPLATES.values() for t in templates]
    return [*texts, "item; query; item"]
