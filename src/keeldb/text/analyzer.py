"""Tokenisation for full-text search: text -> the terms BM25 indexes and matches.

An :class:`Analyzer` lowercases (optionally), splits on Unicode word characters, drops
English stop words and stems with the Snowball English stemmer (PyStemmer). The same
analyser must be used for documents and queries, so a collection records
:meth:`Analyzer.config` and re-creates it with :meth:`Analyzer.from_config`; the config's
:meth:`Analyzer.fingerprint` is stored in every postings file so postings built under
another analyser are detected and rebuilt (``docs/text.md``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, compress
from typing import Any

import numpy as np
import orjson

from keeldb.errors import InvalidArgumentError
from keeldb.storage.framed import crc32c

__all__ = ["ENGLISH_STOP_WORDS", "Analyzer", "TokenBatch"]

# Lucene's EnglishAnalyzer default stop set (also bm25s's "en" list): short on purpose;
# longer lists (NLTK, SMART) remove words such as "not" or "against" that carry meaning
# in claims and product names.
ENGLISH_STOP_WORDS: frozenset[str] = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)

_LANGUAGES = {"english": ENGLISH_STOP_WORDS}

# One table word -> term per (stemming language, stop list) per process: stemming a word
# costs ~1 us in C, a dict hit ~50 ns, and vocabularies are Zipfian, so nearly every word
# after the first batch hits. Stop words map to "".
_TABLES: dict[tuple[str | None, frozenset[str]], dict[str, str]] = {}
_STEMMERS: dict[str, Any] = {}
_STEM_LOCK = threading.Lock()
_STEM_CACHE_MAX = 1 << 20  # words; the cache is cleared (not evicted) past this


def _stemmer(language: str) -> Any:
    with _STEM_LOCK:
        stemmer = _STEMMERS.get(language)
        if stemmer is None:
            import Stemmer  # PyStemmer: a base dependency

            stemmer = Stemmer.Stemmer(language)
            _STEMMERS[language] = stemmer
        return stemmer


def _table(language: str | None, stop: frozenset[str]) -> dict[str, str]:
    key = (language, stop)
    table = _TABLES.get(key)
    if table is None:
        with _STEM_LOCK:
            table = _TABLES.setdefault(key, {})
    return table


@dataclass(frozen=True, slots=True)
class TokenBatch:
    """The terms of a batch of texts, flat: text i's terms are
    ``terms[sum(counts[:i]) : sum(counts[:i + 1])]``, in order, repeats kept.

    The form postings are built from (:func:`keeldb.text.postings.coo_from_tokens`)
    without a Python list per text."""

    terms: list[str]
    counts: np.ndarray  # i64, one per text

    def __len__(self) -> int:
        return len(self.counts)

    def split(self) -> list[list[str]]:
        """One list of terms per text."""
        terms = self.terms
        ends = list(accumulate(self.counts.tolist()))
        return [terms[e - c : e] for e, c in zip(ends, self.counts.tolist(), strict=True)]


@dataclass(frozen=True, slots=True)
class Analyzer:
    """Turns text into terms. Immutable and thread-safe.

    Parameters (all recorded in :meth:`config`):

    - ``language``: ``"english"`` (default) removes :data:`ENGLISH_STOP_WORDS` and applies
      the Snowball English stemmer; ``None`` does neither.
    - ``lowercase``: fold case first (default True; Unicode-aware ``str.lower``).
    - ``min_token_len``: shortest word kept, in characters (default 2, as Lucene's and
      bm25s's ``\\w\\w+`` pattern: single letters rarely discriminate).
    - ``stop_words`` / ``stem``: override what ``language`` implies (``None`` = its
      default; ``stop_words=()`` keeps every word).

    A word is a maximal run of Unicode word characters (``\\w``: letters, digits,
    underscore, in every script). Example: ``Analyzer()("The runners' quick runs!")`` is
    ``["runner", "quick", "run"]``; with ``language=None``: ``["the", "runners", "quick",
    "runs"]``.
    """

    language: str | None = "english"
    lowercase: bool = True
    min_token_len: int = 2
    stop_words: tuple[str, ...] | None = None
    stem: bool | None = None

    def __post_init__(self) -> None:
        if self.language is not None and self.language not in _LANGUAGES:
            raise InvalidArgumentError(
                f"unsupported analyser language {self.language!r}; "
                f"supported: {sorted(_LANGUAGES)} or None"
            )
        if not isinstance(self.min_token_len, int) or not 1 <= self.min_token_len <= 64:
            raise InvalidArgumentError("min_token_len must be an integer in 1..64")
        if self.stem and self.language is None:
            raise InvalidArgumentError("stem=True needs a language")
        if self.stop_words is not None:
            object.__setattr__(self, "stop_words", tuple(sorted(set(self.stop_words))))

    # --- derived settings -----------------------------------------------------------------

    @property
    def _stop(self) -> frozenset[str]:
        if self.stop_words is not None:
            return frozenset(self.stop_words)
        return _LANGUAGES[self.language] if self.language else frozenset()

    @property
    def _stems(self) -> bool:
        return bool(self.language) if self.stem is None else self.stem

    def _pattern(self) -> re.Pattern[str]:
        n = self.min_token_len
        return re.compile(r"\w" * n + r"\w*" if n > 1 else r"\w+")

    # --- tokenising -----------------------------------------------------------------------

    def __call__(self, text: str) -> list[str]:
        """The terms of ``text``, in order, repeats kept (as :meth:`tokenize_many` gives
        them; one text, so no per-batch arrays: a query's analysis)."""
        words = self._pattern().findall(text.lower() if self.lowercase else text)
        if not self._stop and not self._stems:
            return words
        mapped = self._map_words(words)
        return list(compress(mapped, mapped))

    def tokenize_many(self, texts: Sequence[str]) -> list[list[str]]:
        """The terms of each text (one list per text); :meth:`tokenize_batch` split."""
        return self.tokenize_batch(texts).split()

    def tokenize_batch(self, texts: Sequence[str]) -> TokenBatch:
        """The terms of every text of ``texts``, flat, with each text's term count.

        Each word goes through a per-process table word -> term ("" for a stop word); the
        words of the batch missing from it are stemmed in one C call (PyStemmer) and
        added. No Python code runs per word or per text: regex, lookups and filtering
        are C-level iterations (``map``, ``itertools.compress``) and numpy."""
        findall = self._pattern().findall
        n = len(texts)
        words = list(map(findall, map(str.lower, texts) if self.lowercase else texts))
        counts = np.fromiter(map(len, words), dtype=np.int64, count=n)
        flat = list(chain.from_iterable(words))
        if not self._stop and not self._stems:
            return TokenBatch(flat, counts)
        mapped = self._map_words(flat)
        kept = list(compress(mapped, mapped))  # stop words map to "" (falsy)
        if len(kept) != len(mapped):
            is_term = np.fromiter(map(bool, mapped), dtype=bool, count=len(mapped))
            text_of = np.repeat(np.arange(n, dtype=np.int64), counts)
            counts = np.bincount(text_of[is_term], minlength=n).astype(np.int64)
        return TokenBatch(kept, counts)

    def _map_words(self, flat: list[str]) -> list[str]:
        """The term of each word of ``flat`` ("" for a stop word), through the shared
        per-process table; words missing from it are stemmed in one call and added."""
        stop = self._stop
        table = _table(self.language if self._stems else None, stop)
        uniq = list(set(flat))
        # Independent of the shared table's state afterwards (another thread may clear
        # it): the batch maps through its own dict of its distinct words.
        known = dict(zip(uniq, map(table.get, uniq), strict=True))
        new = [w for w, t in known.items() if t is None]  # per distinct word, not per word
        if new:
            terms = new
            if self._stems:
                assert self.language is not None
                terms = _stemmer(self.language).stemWords(new)
            fresh = {w: "" if w in stop else t for w, t in zip(new, terms, strict=True)}
            known.update(fresh)
            with _STEM_LOCK:
                if len(table) > _STEM_CACHE_MAX:
                    table.clear()
                table.update(fresh)
        return list(map(known.__getitem__, flat))  # type: ignore[arg-type]

    # --- persistence ----------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """A JSON-serialisable description: ``{"name": "standard", "options": {...}}``."""
        return {
            "name": "standard",
            "options": {
                "language": self.language,
                "lowercase": self.lowercase,
                "min_token_len": self.min_token_len,
                "stop_words": None if self.stop_words is None else list(self.stop_words),
                "stem": self.stem,
            },
        }

    def config_json(self) -> bytes:
        """:meth:`config` as canonical JSON bytes (sorted keys)."""
        return orjson.dumps(self.config(), option=orjson.OPT_SORT_KEYS)

    def fingerprint(self) -> int:
        """CRC32C of :meth:`config_json`: equal analysers have equal fingerprints."""
        return crc32c(self.config_json())

    @classmethod
    def from_config(cls, config: dict[str, Any] | str | bytes) -> Analyzer:
        """Re-create an analyser from :meth:`config` (a dict or its JSON).

        Raises InvalidArgumentError for an unknown name or option.
        """
        if isinstance(config, str | bytes):
            try:
                config = orjson.loads(config)
            except orjson.JSONDecodeError as exc:
                raise InvalidArgumentError(f"analyser config is not JSON: {exc}") from exc
        if not isinstance(config, dict) or config.get("name") != "standard":
            raise InvalidArgumentError(f"unknown analyser config {config!r}")
        options = config.get("options") or {}
        allowed = {"language", "lowercase", "min_token_len", "stop_words", "stem"}
        unknown = set(options) - allowed
        if unknown:
            raise InvalidArgumentError(f"unknown analyser options {sorted(unknown)}")
        stop = options.get("stop_words")
        return cls(
            language=options.get("language", "english"),
            lowercase=bool(options.get("lowercase", True)),
            min_token_len=int(options.get("min_token_len", 2)),
            stop_words=None if stop is None else tuple(stop),
            stem=options.get("stem"),
        )
