"""Entity resolution: a tool argument that takes an id also takes the advertiser's own words for the thing.

Sellers name things by their words ("my bottle warmer campaign", "bamboo cutting board", "the July promo
test"), so every id argument of every tool (`schemas.ToolSpec.references`) is resolved here, inside the
caller's scope only (an advertiser's index holds nothing of another's):

1. an id of the right kind is used as is (an id that is not the advertiser's own fails as it always did,
   with the same message whether it exists elsewhere or not);
2. an exact name (or alias: a campaign's distinctive words, an ad group's products) is used when it names
   one thing; match-type words in the query ("label maker exact") narrow keywords;
3. otherwise every name is scored by how many of the query's words it holds (rapidfuzz per word, so typos
   still match and "cutting board" matches "bamboo cutting board"); a clear best is used;
4. where the words differ ("bottle heater" for "Bottle Warmer"), the MiniLM sentence encoder the keyword
   engine ships compares meanings;
5. several equally good matches raise `AmbiguousReferenceError` with the candidates and their ids (the agent
   asks the user which one); none raises `NoMatchError` naming what was searched and the closest names.

Experiments are named by kind and time ("the spring coupon test", "the ads holdout from June"): kind words and
months/seasons filter the advertiser's experiments before any fuzzy match.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz.distance import OSA

from tools.errors import AdguideError, UnknownIdError
from tools.market.data_model import Status
from tools.mcp_server.schemas import Candidate, EntityKind, Resolved

ID_PATTERNS = {
    "keyword": re.compile(r"^kw_\d+$"),
    "campaign": re.compile(r"^cmp_\d+$"),
    "ad_group": re.compile(r"^ag_\d+$"),
    "experiment": re.compile(r"^exp_[\d_]+$"),
}
ID_SHAPE = r"(?:kw|cmp|ag|exp|prd|adv)_[\d_]+"  # any id of the tools, of any kind or advertiser
ANY_ID = re.compile(rf"^{ID_SHAPE}$")

FUZZY_ACCEPT = 80.0  # `similarity` (0-100) a match needs: every query word there, typos allowed
FUZZY_MARGIN = 5.0  # a best match must lead the next by this much to be used without asking
EMBED_ACCEPT = 0.62  # cosine similarity of sentence vectors a meaning match needs
EMBED_MARGIN = 0.06
MAX_CANDIDATES = 6


class AmbiguousReferenceError(AdguideError):
    """A name that matches several things equally well: the caller must pick one (by id)."""

    def __init__(self, message: str, *, field: str, candidates: list[Candidate]) -> None:
        super().__init__(message, field=field, allowed="one of the candidates' ids")
        self.candidates = candidates


class NoMatchError(UnknownIdError):
    """Nothing of the advertiser's matches the words; the message names what was searched."""


class OtherKindError(AmbiguousReferenceError):
    """The words name a thing of another kind exactly ("set 'adjustable kettlebell' to 1.70" as a budget: a keyword,
    not a campaign); its candidates are those things, for a call of the right kind or a question back."""


# --- the advertiser's names ---------------------------------------------------------------------------------

_STOP = {
    "the",
    "my",
    "our",
    "a",
    "an",
    "that",
    "this",
    "those",
    "these",
    "one",
    "on",
    "for",
    "of",
    "in",
    "from",
    "i",
    "we",
    "me",
    "us",
    "to",
    "with",
    "its",
    "it",
    "please",
}
_KIND_WORDS = {
    EntityKind.CAMPAIGN: {"campaign", "campaigns", "camp", "cmp", "sp", "sponsored", "products"},
    EntityKind.KEYWORD: {"keyword", "keywords", "kw", "kws", "term", "search"},
    EntityKind.AD_GROUP: {"ad", "group", "adgroup", "groups", "ads"},
    EntityKind.EXPERIMENT: {"test", "tests", "experiment", "experiments", "exp", "run", "ran", "did", "we"},
}
_MATCH_WORDS = {"exact": "exact", "phrase": "phrase", "broad": "broad"}
_MONTHS = {
    m.lower(): i
    for i, m in enumerate(
        [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ],
        start=1,
    )
}
_MONTHS |= {k[:3]: v for k, v in list(_MONTHS.items())} | {"sept": 9}
_SEASONS = {
    "spring": {3, 4, 5},
    "summer": {6, 7, 8},
    "fall": {9, 10, 11},
    "autumn": {9, 10, 11},
    "winter": {12, 1, 2},
}
_EXPERIMENT_KINDS = {
    "promotion": {
        "promotion",
        "promo",
        "promos",
        "coupon",
        "coupons",
        "discount",
        "discounts",
        "price",
        "deal",
        "sale",
        "offer",
    },
    "ad_exposure": {
        "holdout",
        "hold",
        "out",
        "holdouts",
        "ads",
        "ad",
        "exposure",
        "ghost",
        "incrementality",
        "incremental",
        "lift",
        "brand",
    },
}


def normalize(text: str) -> str:
    """Lowercase words without punctuation: 'SP - Generic - Bottle Warmer' -> 'sp generic bottle warmer'."""
    text = text.casefold().replace("'s ", " ").replace("’s ", " ")
    return " ".join(re.sub(r"[^\w]+", " ", text).replace("_", " ").split())


def _content_words(text: str, kind: EntityKind) -> str:
    """The words that name the thing: stop words, the kind's own words ("campaign", "keyword") and, for
    keywords, match-type words (they narrow, they don't name) dropped."""
    drop = _STOP | _KIND_WORDS.get(kind, set())
    if kind == EntityKind.KEYWORD:
        drop = drop | set(_MATCH_WORDS) | {"match", "matched", "type"}
    words = [w for w in normalize(text).split() if w not in drop]
    return " ".join(words)


def _coverage(words: list[str], other: list[str]) -> float:
    """How much of `words` appears in `other`, each word by its best spelling match (typos count partly)."""
    if not words:
        return 0.0
    total = 0.0
    for w in words:
        best = max((OSA.normalized_similarity(w, o) for o in other), default=0.0)
        total += best if best >= (0.66 if len(w) <= 4 else 0.75) else 0.0
    return total / len(words)


def similarity(query: str, name: str) -> float:
    """0-100: mostly how much of the query the name covers (the seller's words must all be there, typos
    allowed), then how much of the name the query covers (the closest whole name wins a tie)."""
    q, n = query.split(), name.split()
    return 100 * (0.7 * _coverage(q, n) + 0.3 * _coverage(n, q))


def campaign_aliases(name: str) -> list[str]:
    """The words a seller uses for a campaign: its name without the 'SP - Generic -' scaffolding."""
    parts = [p.strip() for p in re.split(r"\s[-|/:]\s|\s[-–]\s", name) if p.strip()]
    generic = {"sp", "sponsored products", "generic", "manual", "exact", "phrase", "broad"}
    kept = [p for p in parts if p.lower() not in generic]
    aliases = [" ".join(kept)] if kept else []
    if len(kept) > 1:  # "Auto - Baby Monitor" -> "baby monitor", "baby monitor auto", "auto baby monitor"
        aliases += [kept[-1], " ".join(reversed(kept))]
    return [a for a in dict.fromkeys(normalize(a) for a in aliases) if a]


@dataclass
class Entry:
    candidate: Candidate
    names: list[str]  # normalized full name first, then aliases
    live: bool = True
    match_type: str | None = None
    months: set[int] = field(default_factory=set)
    experiment_kind: str | None = None
    start: dt.date | None = None


@dataclass
class EntityIndex:
    """Every named thing of one advertiser, by kind (built from its scoped store)."""

    advertiser_id: str
    entries: dict[EntityKind, list[Entry]]

    def by_id(self, kind: EntityKind) -> dict[str, Entry]:
        return {e.candidate.id: e for e in self.entries[kind]}


def build_index(adv: Any) -> EntityIndex:
    """The index of an advertiser-scoped store (tools.market.store.AdvertiserStore)."""
    campaigns = adv.campaigns()
    cmp_name = {c.id: c.name for c in campaigns}
    groups = adv.ad_groups()
    group_of = {g.id: g for g in groups}
    products = {p.id: p for p in adv.products()}
    brand = normalize(adv.advertiser.name)
    entries: dict[EntityKind, list[Entry]] = {k: [] for k in EntityKind}
    for c in campaigns:
        entries[EntityKind.CAMPAIGN].append(
            Entry(
                Candidate(
                    id=c.id,
                    kind=EntityKind.CAMPAIGN,
                    name=c.name,
                    detail=f"{c.targeting.value} targeting, ${c.daily_budget:.2f}/day, {c.status.value}",
                ),
                [normalize(c.name), *campaign_aliases(c.name)],
                live=c.status == Status.ENABLED,
            )
        )
    for g in groups:
        names = [normalize(g.name)]
        names += [normalize(p) for p in g.name.split("+") if "+" in g.name]
        for pid in g.product_ids:
            if pid in products:  # "Zenwise Video Bottle Warmer" and "video bottle warmer"
                full = normalize(products[pid].name)
                names += [full, " ".join(w for w in full.split() if w not in brand.split())]
        entries[EntityKind.AD_GROUP].append(
            Entry(
                Candidate(
                    id=g.id,
                    kind=EntityKind.AD_GROUP,
                    name=g.name,
                    detail=f"in {cmp_name.get(g.campaign_id, '')}",
                ),
                list(dict.fromkeys(n for n in names if n)),
            )
        )
    for k in adv.keywords():
        g = group_of.get(k.ad_group_id)
        where = cmp_name.get(g.campaign_id, "") if g else ""
        entries[EntityKind.KEYWORD].append(
            Entry(
                Candidate(
                    id=k.id,
                    kind=EntityKind.KEYWORD,
                    name=k.text,
                    detail=f"{k.match_type.value}, bid ${k.bid:.2f}, {k.status.value}, in {where}",
                ),
                [normalize(k.text)],
                live=k.status == Status.ENABLED,
                match_type=k.match_type.value,
            )
        )
    for e in adv.experiments():
        months = {e.start.month, e.end.month}
        label = "ads holdout" if e.kind == "ad_exposure" else "promotion"
        entries[EntityKind.EXPERIMENT].append(
            Entry(
                Candidate(
                    id=e.id,
                    kind=EntityKind.EXPERIMENT,
                    name=f"{label} test",
                    detail=f"{e.start.isoformat()} to {e.end.isoformat()}, outcome {e.outcome}",
                ),
                [normalize(e.id), normalize(f"{label} {e.start.strftime('%B')}")],
                months=months,
                experiment_kind=e.kind,
                start=e.start,
            )
        )
    return EntityIndex(adv.advertiser.id, entries)


# --- resolving -----------------------------------------------------------------------------------------------


def _id_kind(value: str) -> EntityKind | None:
    for kind, rx in ID_PATTERNS.items():
        if rx.match(value):
            return EntityKind(kind)
    return None


def _label(kinds: Sequence[EntityKind]) -> str:
    return " or ".join(k.value.replace("_", " ") for k in kinds)


def _ambiguous(
    query: str, field_name: str, matches: list[Entry], advertiser_id: str
) -> AmbiguousReferenceError:
    cands = [m.candidate for m in matches[:MAX_CANDIDATES]]
    listed = "; ".join(f"{c.name!r} ({c.id}: {c.detail})" for c in cands)
    more = f" and {len(matches) - len(cands)} more" if len(matches) > len(cands) else ""
    kinds = sorted({c.kind.value.replace("_", " ") for c in cands})
    return AmbiguousReferenceError(
        f"{query!r} matches {len(matches)} {'/'.join(kinds)}s of {advertiser_id}: {listed}{more}. "
        "Ask which one is meant, then call again with its id.",
        field=field_name,
        candidates=cands,
    )


def _narrow(matches: list[Entry], query_words: set[str]) -> list[Entry]:
    """Match-type words and liveness break ties: 'label maker exact' picks the exact one."""
    wanted = {_MATCH_WORDS[w] for w in query_words if w in _MATCH_WORDS}
    if wanted:
        typed = [m for m in matches if m.match_type in wanted]
        if typed:
            matches = typed
    return matches


def _experiments(query: str, entries: list[Entry]) -> list[Entry]:
    words = set(normalize(query).split())
    kinds = {k for k, vocab in _EXPERIMENT_KINDS.items() if words & vocab}
    months: set[int] = set()
    for w in words:
        months |= {_MONTHS[w]} if w in _MONTHS else _SEASONS.get(w, set())
    found = [
        e for e in entries if (not kinds or e.experiment_kind in kinds) and (not months or e.months & months)
    ]
    if found and words & {"last", "latest", "recent", "newest", "most"}:
        found = [max(found, key=lambda e: e.start or dt.date.min)]
    elif found and words & {"first", "earliest", "oldest"}:
        found = [min(found, key=lambda e: e.start or dt.date.max)]
    return found if (kinds or months) else []


class Resolver:
    """Resolves words to ids for one advertiser. `embed` (texts -> unit vectors) is the meaning fallback."""

    def __init__(self, index: EntityIndex, embed: Any = None) -> None:
        self.index = index
        self.embed = embed

    def resolve(
        self, value: str, kinds: Sequence[EntityKind], field_name: str
    ) -> tuple[str, Resolved | None]:
        """(id, how it was resolved or None when `value` already was an id of one of `kinds`)."""
        query = str(value).strip()
        if not query:
            raise NoMatchError(
                f"{field_name} is empty: give an id or the {_label(kinds)}'s name", field=field_name
            )
        id_kind = _id_kind(query)
        if id_kind is not None and id_kind in kinds:
            return query, None  # the handler checks it belongs to the advertiser, as before
        if ANY_ID.match(query):  # an id of another kind (or another advertiser's): the old, leak-free message
            raise UnknownIdError(
                f"{query} is not one of {self.index.advertiser_id}'s {_label(kinds)}s",
                field=field_name,
                allowed=f"a {_label(kinds)} id or name",
            )
        entry, how = self._match(query, kinds, field_name)
        c = entry.candidate
        return c.id, Resolved(
            field=field_name, query=query, id=c.id, kind=c.kind, name=c.name, detail=c.detail, how=how
        )

    def _match(self, query: str, kinds: Sequence[EntityKind], field_name: str) -> tuple[Entry, str]:
        pool = [e for k in kinds for e in self.index.entries[k]]
        if EntityKind.EXPERIMENT in kinds:
            found = _experiments(query, self.index.entries[EntityKind.EXPERIMENT])
            if len(found) == 1:
                return found[0], "alias"
            if len(found) > 1:
                raise _ambiguous(query, field_name, found, self.index.advertiser_id)
        words = set(normalize(query).split())
        # a name or an alias said exactly (per kind the query's own kind words are dropped: "yoga mat campaign");
        # a keyword's text and another campaign's distinctive words are as ambiguous as two keywords
        said = {e.candidate.id: (_content_words(query, e.candidate.kind), normalize(query)) for e in pool}
        hits = _narrow([e for e in pool if any(n in said[e.candidate.id] for n in e.names)], words)
        full = [e for e in hits if e.names[0] in said[e.candidate.id]]
        if len(full) == 1:  # a whole name said exactly wins over another thing's alias ("Coffee Grinder")
            return full[0], "exact"
        if len(hits) == 1:
            return hits[0], "alias"
        if len(hits) > 1:
            raise _ambiguous(query, field_name, full if len(full) > 1 else hits, self.index.advertiser_id)
        scored = sorted(((self._fuzzy(query, e), e) for e in pool), key=lambda x: -x[0])
        good = _narrow([e for s, e in scored if s >= FUZZY_ACCEPT], words)
        if good:
            best = self._fuzzy(query, good[0])
            close = [e for e in good if best - self._fuzzy(query, e) < FUZZY_MARGIN]
            if len(close) == 1:
                return close[0], "fuzzy"
            raise _ambiguous(query, field_name, close, self.index.advertiser_id)
        self._check_other_kinds(query, kinds, field_name)
        meaning = self._by_meaning(query, pool, field_name)
        if meaning is not None:
            return meaning, "meaning"
        closest = ", ".join(f"{e.candidate.name!r} ({e.candidate.id})" for _, e in scored[:3])
        raise NoMatchError(
            f"no {_label(kinds)} of {self.index.advertiser_id} matches {query!r}"
            + (f"; the closest names are {closest}" if closest else f"; the account has no {_label(kinds)}s"),
            field=field_name,
            allowed=f"a {_label(kinds)} id or name",
        )

    def _check_other_kinds(self, query: str, kinds: Sequence[EntityKind], field_name: str) -> None:
        """Raise OtherKindError where the words, matching nothing of `kinds` by name, say the whole name of a
        keyword, campaign or ad group (before a match by meaning would pick a thing of `kinds` that merely shares a
        word: "kw 'adjustable kettlebell'" as the Kettlebell campaign)."""
        words = set(normalize(query).split())
        named = _narrow(
            [
                e
                for k in (EntityKind.KEYWORD, EntityKind.CAMPAIGN, EntityKind.AD_GROUP)
                if k not in kinds
                for e in self.index.entries[k]
                if e.names[0] in (_content_words(query, k), normalize(query))
            ],
            words,
        )
        if not named:
            return
        cands = [e.candidate for e in named[:MAX_CANDIDATES]]
        listed = "; ".join(f"{c.name!r} ({c.id}: {c.kind.value.replace('_', ' ')})" for c in cands)
        raise OtherKindError(
            f"{query!r} names no {_label(kinds)} of {self.index.advertiser_id} but {listed}: "
            f"call again for that kind of thing, or ask which {_label(kinds)} is meant.",
            field=field_name,
            candidates=cands,
        )

    def find(
        self, query: str, kinds: Sequence[EntityKind] | None, limit: int
    ) -> list[tuple[Candidate, float]]:
        """The best-matching things of `kinds` (all kinds by default), best first, with a 0-100 score."""
        kinds = list(kinds or EntityKind)
        query = query.strip()
        scored: dict[str, tuple[Candidate, float]] = {}
        for kind in kinds:
            for e in self.index.entries[kind]:
                score = 100.0 if e.candidate.id == query else min(100.0, self._fuzzy(query, e))
                scored[e.candidate.id] = (e.candidate, score)
        if EntityKind.EXPERIMENT in kinds:
            for e in _experiments(query, self.index.entries[EntityKind.EXPERIMENT]):
                scored[e.candidate.id] = (e.candidate, 100.0)
        ranked = sorted(scored.values(), key=lambda x: (-x[1], x[0].id))
        return [x for x in ranked if x[1] >= 50.0][:limit]

    @staticmethod
    def _fuzzy(query: str, entry: Entry) -> float:
        q = _content_words(query, entry.candidate.kind) or normalize(query)
        return max(similarity(q, n) for n in entry.names)

    def _by_meaning(self, query: str, pool: list[Entry], field_name: str) -> Entry | None:
        if self.embed is None or not pool:
            return None
        # lazy: numpy is heavy and needed only here
        import numpy as np

        names = [e.names[0] for e in pool]
        vectors = self.embed([normalize(query), *names])
        sims = np.asarray(vectors[1:]) @ np.asarray(vectors[0])
        order = np.argsort(-sims)
        best = float(sims[order[0]])
        if best < EMBED_ACCEPT:
            return None
        close = [pool[i] for i in order if best - float(sims[i]) < EMBED_MARGIN]
        if len(close) > 1:
            raise _ambiguous(query, field_name, close, self.index.advertiser_id)
        return close[0]


class ResolverCache:
    """One index per (advertiser, data version): a write (a new keyword, a paused campaign) rebuilds it."""

    def __init__(self, embed: Any = None) -> None:
        self._indexes: dict[str, tuple[str, EntityIndex]] = {}
        self._lock = threading.Lock()
        self.embed = embed

    def resolver(self, adv: Any, data_version: str) -> Resolver:
        key = adv.advertiser.id
        with self._lock:
            hit = self._indexes.get(key)
            if hit is None or hit[0] != data_version:
                hit = (data_version, build_index(adv))
                self._indexes[key] = hit
        return Resolver(hit[1], self.embed)


def default_embed(texts: list[str]) -> Any:
    """Unit sentence vectors from the keyword engine's MiniLM (loaded on first use)."""
    # lazy: pulls in numpy, pydantic_settings at import
    from tools.keywords.embeddings import default_embedder

    return default_embedder().encode(texts)


def canonical_args(args: dict[str, Any], result_text: str) -> dict[str, Any]:
    """A call's arguments with every name replaced by the id its result says it resolved to."""
    try:
        result = json.loads(result_text)
    except ValueError:
        return dict(args)
    out = dict(args)
    for r in result.get("resolved", []) if isinstance(result, dict) else []:
        field, value = r.get("field"), r.get("id")
        if field in out and isinstance(out[field], list):
            out[field] = [value if str(x) == r.get("query") else x for x in out[field]]
        elif field in out:
            out[field] = value
    return out
