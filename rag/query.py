"""The query: a question, read in the light of the conversation before it.

A follow-up such as "And France?" or "What about him?" cannot be searched on its own. When a
question leans on the previous one (it opens like a continuation, or carries too little content
of its own), the text used for retrieval is the previous question followed by the new one.
The question itself, as shown and answered, is never rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.errors import InvalidQuestion
from core.text import is_valid_unicode

MAX_HISTORY = 5

_CONTINUATION = re.compile(
    r"(?:and|but|also|so|then|what about|how about|what of|and what about|and how about|"
    r"same for|what else|why|how come|anything else|and why)\b",
    re.IGNORECASE,
)
_REFERS_BACK = re.compile(
    r"\b(?:he|she|they|him|her|them|his|hers|their|theirs|it|its|that|this|those|these)\b",
    re.IGNORECASE,
)
_ABOUT_THE_ARTICLE = re.compile(
    r"\b(?:wrote|write|written|writer|author|article|piece|op-ed|published|publisher)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "so",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "by",
        "with",
        "about",
        "from",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "do",
        "does",
        "did",
        "say",
        "says",
        "said",
        "think",
        "thinks",
        "about",
        "also",
        "then",
        "again",
        "more",
        "else",
        "any",
        "anything",
        "there",
        "here",
    ]
)


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.casefold()) if w not in _STOP]


def depends_on_previous(question: str) -> bool:
    """Whether ``question`` only makes sense after the previous one."""
    words = content_words(question)
    if _ABOUT_THE_ARTICLE.search(question):
        return False  # "Who wrote this?" asks about the article, not the last answer
    if _CONTINUATION.match(question.strip()) and len(words) <= 4:
        return True
    if not words:
        return True  # "Why?", "When?"
    names = [w for w in _WORD.findall(question) if w[0].isupper()][1:]  # not the first word
    return not names and bool(_REFERS_BACK.search(question)) and len(words) <= 3


def validate_history(history: object, max_chars: int) -> list[str]:
    if history is None:
        return []
    if isinstance(history, str) or not isinstance(history, Sequence):
        raise InvalidQuestion("history must be a list of earlier questions")
    items = list(history)[-MAX_HISTORY:]
    cleaned = []
    for item in items:
        if not isinstance(item, str) or len(item.strip()) > max_chars or not is_valid_unicode(item):
            raise InvalidQuestion(
                f"each earlier question must be valid text of at most {max_chars} characters"
            )
        if item.strip():
            cleaned.append(item.strip())
    return cleaned


def retrieval_text(question: str, history: Sequence[str]) -> str:
    """What to search with: the question, or the previous question then this one."""
    if history and depends_on_previous(question):
        return f"{history[-1]} {question}"
    return question
