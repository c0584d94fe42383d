"""Full-text search over non-deleted events (CONTRACT §2.6, §1.7).

**Query syntax.** ``parse_query`` turns the user's text into an OR of AND-groups of literals (a word or a
``"quoted phrase"``, possibly negated): bare words are ANDed, an upper-case ``OR`` between two terms starts a
new group, ``NOT term`` / ``-term`` / ``-"phrase"`` exclude, an upper-case ``AND`` is ignored. Precedence is
NOT, then the implicit AND, then OR, exactly as PostgreSQL's ``websearch_to_tsquery`` (``sad cat OR dog`` =
(sad AND cat) OR dog). There are no parentheses: characters other than letters, digits, double quotes and ``-``
are separators (a ``-`` inside a word is kept: ``x-ray``). A query without any literal returns an empty page.

**PostgreSQL.** The parsed query is written back in ``websearch_to_tsquery`` syntax (NOT → ``-``, AND dropped)
and matched with ``search_vector @@ websearch_to_tsquery('english', …)``, which the GIN index
``events_search_vector_gin`` serves (English stemming and stop words apply). One statement does the rest: it
ranks the matching rows only (``ts_rank``), takes their count and the best rank with window functions, keeps the
requested page (relevance desc, started_at desc, id desc) and renders the page's list items as JSON with the
event list's own SQL (``events.selectors.event_list_item_sql``), plus the highlights of those page rows only.
``relevance_score`` = ``ts_rank / max(ts_rank over all matches)`` rounded to 4 decimals (1.0 for the best hit;
1.0 for every hit when the query has no positive term).

**SQLite fallback** (and any other database): each literal must (or, negated, must not) appear case-insensitively
as a substring of summary, reasoning, object types, notes or camera name (ORM ``icontains``, no stemming, no
stop words); ``relevance_score`` = fraction of the distinct positive literals found, rounded to 4 decimals.

**Highlights** (an addition to the contract's list item): ``highlights`` maps ``summary``, ``reasoning`` and
``notes`` — only those where a positive term was found, and ``reasoning`` only when ``summary`` has no match
(ts_headline on a reasoning text is the costly part of a page) — to the field's text, HTML-escaped, with each
match wrapped in ``<mark>…</mark>``. ``summary`` is given whole; ``reasoning`` and ``notes`` as fragments around
the matches. PostgreSQL computes them with ``ts_headline`` (stemmed matches) on the page rows only; the fallback
marks the literal substrings in Python. ``{}`` when nothing is highlighted (e.g. a query with only NOT terms, or
a match on the camera name or object types only).
"""

from __future__ import annotations

import functools
import html
import json
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import BooleanField, Case, F, FloatField, Q, QuerySet, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Round

from hsi.api.counts import cached_count
from hsi.api.json_sql import PrerenderedItems
from hsi.api.pagination import MAX_OFFSET, PageRequest, envelope

from . import selectors

Refine = Callable[[QuerySet], QuerySet]

SEARCH_CONFIG = "english"
SCORE_DECIMALS = 4
MARK_START, MARK_END = "<mark>", "</mark>"
HIGHLIGHT_FIELDS = ("summary", "reasoning", "notes")
TEXT_FIELDS = ("summary", "reasoning", "object_types", "notes", "camera__name")
FRAGMENT_CONTEXT = 60  # characters of context either side of a match in a fallback fragment


# --- parsing ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    text: str  # one word, or the words of a phrase joined by single spaces
    phrase: bool = False
    negated: bool = False

    @property
    def key(self) -> tuple[str, bool]:
        return self.text.lower(), self.phrase

    def websearch(self) -> str:
        # ``websearch_to_tsquery`` reads ``or`` in any case as OR; §2.6 makes only upper-case ``OR`` an operator,
        # so a lower-case one is quoted (it is then an English stop word, dropped like ``the``)
        body = f'"{self.text}"' if self.phrase or self.text.lower() == "or" else self.text
        return f"-{body}" if self.negated else body


@dataclass(frozen=True)
class SearchQuery:
    """An OR of AND-groups of literals (the only shape ``websearch_to_tsquery`` syntax can express)."""

    groups: tuple[tuple[Literal, ...], ...]

    @property
    def is_empty(self) -> bool:
        return not self.groups

    @property
    def positives(self) -> tuple[Literal, ...]:
        """The distinct positive literals (case-insensitive), in query order."""
        seen: dict[tuple[str, bool], Literal] = {}
        for group in self.groups:
            for literal in group:
                if not literal.negated:
                    seen.setdefault(literal.key, literal)
        return tuple(seen.values())

    def websearch_text(self) -> str:
        """The query in ``websearch_to_tsquery`` syntax: NOT written as ``-``, AND dropped, OR kept."""
        return " OR ".join(" ".join(literal.websearch() for literal in group) for group in self.groups)


def _is_term_char(char: str) -> bool:
    return char.isalnum() or char == "-"


_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")  # runs of letters/digits, inner hyphens kept (``x-ray``)


def _phrase_words(text: str) -> list[str]:
    return _WORD.findall(text)


def parse_query(text: str) -> SearchQuery:
    """Parse the §2.6 syntax (see the module docstring). Never fails: stray operators are ignored."""
    groups: list[list[Literal]] = [[]]
    negate_next = False
    position, length = 0, len(text)

    def add(literal_text: str, phrase: bool) -> None:
        nonlocal negate_next
        groups[-1].append(Literal(literal_text, phrase=phrase, negated=negate_next))
        negate_next = False

    while position < length:
        char = text[position]
        if char == '"':
            end = text.find('"', position + 1)
            end = length if end < 0 else end
            words = _phrase_words(text[position + 1 : end])
            if len(words) == 1:
                add(words[0], False)
            elif words:
                add(" ".join(words), True)
            else:
                negate_next = False
            position = end + 1
            continue
        if not _is_term_char(char):
            position += 1
            continue
        end = position
        while end < length and _is_term_char(text[end]):
            end += 1
        token = text[position:end]
        position = end
        if token == "OR":
            if groups[-1]:
                groups.append([])
            negate_next = False
        elif token == "AND":
            continue
        elif token == "NOT":
            negate_next = True
        else:
            negated = token.startswith("-")
            word = token.strip("-")
            if negated:
                negate_next = True
            if word:
                # inner separators (other than ``-``) cannot occur here; strip what trails the word
                add(word, False)
            elif not (position < length and text[position] == '"'):
                negate_next = False  # a lone ``-`` negates only a phrase that follows it directly
    return SearchQuery(tuple(tuple(group) for group in groups if group))


# --- fallback matching (SQLite and any other database) -------------------------------------------------------------


def _literal_q(literal: Literal) -> Q:
    found = Q()
    for field in TEXT_FIELDS:
        found |= Q(**{f"{field}__icontains": literal.text})
    return ~found if literal.negated else found


def fallback_filter(query: SearchQuery) -> Q:
    """The rows matching ``query`` by case-insensitive substrings (CONTRACT §2.6, SQLite)."""
    groups = [functools.reduce(operator.and_, map(_literal_q, group)) for group in query.groups]
    return functools.reduce(operator.or_, groups)


def fallback_score(query: SearchQuery):
    """Fraction of the distinct positive literals found (1.0 when there is none), rounded to 4 decimals."""
    positives = query.positives
    if not positives:
        return Value(1.0, output_field=FloatField())
    found = [
        Case(When(_literal_q(literal), then=Value(1.0)), default=Value(0.0), output_field=FloatField())
        for literal in positives
    ]
    total = found[0]
    for term in found[1:]:
        total = total + term
    return Round(total / Value(float(len(positives))), SCORE_DECIMALS, output_field=FloatField())


def _mark_spans(text: str, needles: Iterable[str]) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) spans of every case-insensitive occurrence of the needles in ``text``."""
    lowered = text.lower()
    spans: list[tuple[int, int]] = []
    for needle in {n.lower() for n in needles if n}:
        start = lowered.find(needle)
        while start >= 0:
            spans.append((start, start + len(needle)))
            start = lowered.find(needle, start + len(needle))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def mark_text(text: str, needles: Iterable[str], *, fragment: bool = False) -> str | None:
    """``text`` HTML-escaped with each occurrence of a needle in ``<mark>``; None when none occurs.

    With ``fragment``, only the parts around the matches are kept (joined by `` … ``).
    """
    if not text:
        return None
    spans = _mark_spans(text, needles)
    if not spans:
        return None
    windows: list[tuple[int, int]] = [(0, len(text))]
    if fragment:
        windows = []
        for start, end in spans:
            window = (max(0, start - FRAGMENT_CONTEXT), min(len(text), end + FRAGMENT_CONTEXT))
            if windows and window[0] <= windows[-1][1]:
                windows[-1] = (windows[-1][0], window[1])
            else:
                windows.append(window)
    parts = []
    for low, high in windows:
        out, cursor = [], low
        for start, end in spans:
            if end <= low or start >= high:
                continue
            start, end = max(start, low), min(end, high)
            out.append(html.escape(text[cursor:start], quote=False))
            out.append(MARK_START + html.escape(text[start:end], quote=False) + MARK_END)
            cursor = end
        out.append(html.escape(text[cursor:high], quote=False))
        prefix = "… " if fragment and low > 0 else ""
        suffix = " …" if fragment and high < len(text) else ""
        parts.append(prefix + "".join(out).strip() + suffix)
    return " … ".join(parts) if fragment else parts[0]


def fallback_highlights(query: SearchQuery, fields: dict[str, str | None]) -> dict[str, str]:
    needles = [literal.text for literal in query.positives]
    highlights = {}
    for name in HIGHLIGHT_FIELDS:
        if name == "reasoning" and "summary" in highlights:
            continue  # as on PostgreSQL: reasoning only when the summary holds no match
        marked = mark_text(fields.get(name) or "", needles, fragment=name != "summary")
        if marked is not None:
            highlights[name] = marked
    return highlights


# --- the page ---------------------------------------------------------------------------------------------------


def _vendor() -> str:
    return connections[DEFAULT_DB_ALIAS].vendor


def search_page(
    query: SearchQuery, page: PageRequest, *, refine: Refine = lambda qs: qs, full_text: bool | None = None
) -> dict:
    """One page of search hits: Event list items plus ``relevance_score`` and ``highlights``.

    ``full_text`` chooses PostgreSQL full-text search (default: when the database is PostgreSQL) or the
    substring fallback (any database).
    """
    if query.is_empty:
        return envelope([], total=0, page=page, has_more=False)
    if full_text is None:
        full_text = _vendor() == "postgresql"
    return _full_text_page(query, page, refine) if full_text else _fallback_page(query, page, refine)


def _matches(refine: Refine) -> QuerySet:
    return refine(selectors.live_events())


def _has_more(page: PageRequest, shown: int, total: int) -> bool:
    return page.offset + shown < total


# PostgreSQL ------------------------------------------------------------------------------------------------------

_TSQUERY = f"websearch_to_tsquery('{SEARCH_CONFIG}', %s)"
_ESCAPED = "replace(replace(replace({col}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')"
_MARKERS = "StartSel=<mark>, StopSel=</mark>"
_FRAGMENTS = f'{_MARKERS}, MaxFragments=2, MaxWords=20, MinWords=8, FragmentDelimiter=" … "'


def _headline(column: str, options: str) -> str:
    escaped = _ESCAPED.format(col=f'"events_event"."{column}"')
    return f"ts_headline('{SEARCH_CONFIG}', {escaped}, q.tsq, '{options}')"


def search_condition_sql() -> str:
    """The WHERE condition the GIN index serves; one parameter, the websearch text."""
    return f'"events_event"."search_vector" @@ {_TSQUERY}'


@functools.cache
def _page_sql_template() -> str:
    """Outer statement over the matching rows ``{matches}`` (id, started_at, rank): relevance with the best rank
    and the count as window functions over all matches, the page, then the page rows' JSON and headlines.

    ``OFFSET 0`` keeps ``{matches}`` a subquery the planner does not flatten, so ``ts_rank`` runs once per match
    (flattened, the scan returns the whole tsvector and the window and the sort key each rank it again).

    Parameters: the websearch text (for the headlines), those of ``{matches}``, LIMIT, OFFSET. ``ts_headline``
    costs ~20 µs on a summary but ~70 µs on a reasoning text, so reasoning is highlighted only for rows whose
    summary holds no match (the same rule as the fallback's).
    """
    return (
        f"WITH q AS (SELECT {_TSQUERY} AS tsq) "
        "SELECT p.relevance, p.total, "
        f"{selectors.event_list_item_sql()}, h.summary, "
        f"CASE WHEN strpos(h.summary, '{MARK_START}') = 0 THEN {_headline('reasoning', _FRAGMENTS)} END, "
        f'CASE WHEN "events_event"."notes" <> \'\' THEN {_headline("notes", _FRAGMENTS)} END '
        "FROM (SELECT m.id, m.started_at, "
        f"COALESCE(round((m.rank / NULLIF(max(m.rank) OVER (), 0))::numeric, {SCORE_DECIMALS}), 1.0) AS relevance, "
        "count(*) OVER () AS total "
        "FROM ({matches} OFFSET 0) m ORDER BY relevance DESC, m.started_at DESC, m.id DESC LIMIT %s OFFSET %s) p "
        'JOIN "events_event" ON "events_event"."id" = p.id CROSS JOIN q '
        f"CROSS JOIN LATERAL (SELECT {_headline('summary', _MARKERS + ', HighlightAll=true')} AS summary) h "
        "ORDER BY p.relevance DESC, p.started_at DESC, p.id DESC"
    )


def full_text_matches(query: SearchQuery, refine: Refine = lambda qs: qs) -> QuerySet:
    """The matching live events as (id, started_at, rank) rows: filters, then ``search_vector @@ query``."""
    text = query.websearch_text()
    condition = RawSQL(search_condition_sql(), (text,), output_field=BooleanField())
    if query.positives:
        rank = RawSQL(f'ts_rank("events_event"."search_vector", {_TSQUERY})', (text,), output_field=FloatField())
    else:
        rank = Value(1.0, output_field=FloatField())
    matches = _matches(refine).filter(condition).annotate(rank=rank).order_by()
    return matches.values_list("id", "started_at", "rank")


def _full_text_page(query: SearchQuery, page: PageRequest, refine: Refine) -> dict:
    matches = full_text_matches(query, refine)
    matches_sql, matches_params = matches.query.sql_with_params()
    text = query.websearch_text()
    statement = _page_sql_template().replace("{matches}", matches_sql)
    params = (text, *matches_params, page.limit, min(page.offset, MAX_OFFSET))
    with connections[matches.db].cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    # past the end (or when nothing matches) no row carries the window count
    total = rows[0][1] if rows else (matches.count() if page.offset else 0)
    items = PrerenderedItems(_spliced(row[2], float(row[0]), row[3:]) for row in rows)
    return envelope(items, total=total, page=page, has_more=_has_more(page, len(rows), total))


def _spliced(item_json: str, relevance: float, headlines: tuple) -> str:
    highlights = {
        name: value for name, value in zip(HIGHLIGHT_FIELDS, headlines, strict=True) if value and MARK_START in value
    }
    extra = json.dumps(
        {"relevance_score": round(relevance, SCORE_DECIMALS), "highlights": highlights},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return item_json[:-1] + "," + extra[1:]


# Fallback --------------------------------------------------------------------------------------------------------


def _fallback_page(query: SearchQuery, page: PageRequest, refine: Refine) -> dict:
    matches = _matches(refine).filter(fallback_filter(query)).annotate(relevance=fallback_score(query))
    ranked = matches.order_by(F("relevance").desc(), "-started_at", "-id").values_list("id", "relevance")
    offset = min(page.offset, MAX_OFFSET)  # past any table's end, and within SQL's bigint OFFSET
    window = list(ranked[offset : offset + page.limit])
    total = cached_count(matches.order_by().values("pk"), ("events",))
    rows = {row["id"]: row for row in selectors.event_rows("reasoning").filter(id__in=[i for i, _ in window])}
    ordered = [rows[event_id] for event_id, _ in window if event_id in rows]
    selectors.attach_detection_links(ordered)
    relevance = dict(window)
    items = []
    for row in ordered:
        item = selectors.event_json(row)
        item["relevance_score"] = round(float(relevance[row["id"]]), SCORE_DECIMALS)
        item["highlights"] = fallback_highlights(query, row)
        items.append(item)
    return envelope(items, total=total, page=page, has_more=_has_more(page, len(items), total))
