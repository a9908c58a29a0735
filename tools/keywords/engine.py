"""Keyword recommendations and negative-keyword suggestions from search-term reports.

Both functions take plain rows (no store), so the MCP server, jobs and tests feed them the same way.

Conversion statistics are Beta-Binomial: every search term's conversion rate is drawn from a Beta
centred on its ad group's rate, with a concentration fitted by maximum likelihood on all the
advertiser's terms (how much terms really differ) and capped at one order's worth of evidence. A term is "not converting" only when its posterior
puts most of its mass below a fraction of the ad group's rate, so three clicks without an order never
suffice, while about four expected orders' worth of clicks without one do. Meaning comes from sentence embeddings: a term's similarity to the
closest of the advertiser's products and converting keywords.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError
from scipy import optimize, stats

from tools.errors import InvalidInputError, UnknownIdError
from tools.keywords.embeddings import Embedder, default_embedder, normalize_text
from tools.keywords.models import (
    KeywordRecommendations,
    KeywordSuggestion,
    NegativeKind,
    NegativesOptions,
    NegativeSuggestion,
    NegativeSuggestions,
    RecommendOptions,
    SuggestionSource,
)
from tools.market.data_model import Keyword, MatchType, NegativeKeyword, Product, SearchTermDay, Status

MIN_BID, MAX_BID = 0.02, 100.0
GROUP_PRIOR_CLICKS = 50.0  # shrink a small ad group's conversion rate toward the account's
BEST_KEYWORDS = 20  # converting keywords used, with the products, as anchors of "what we sell"
BID_CAP_X_CPC = 2.0  # a harvested bid stays within 2x the CPC seen; the bid tools can go further
# The fitted prior is dominated by an account's big terms, which convert alike; irrelevant terms hide in the
# long tail. So the prior never counts for more than one order's worth of evidence.
MAX_PRIOR_ORDERS = 1.0


_NEG, _REC = NegativesOptions(), RecommendOptions()  # defaults
_M = TypeVar("_M", bound=BaseModel)


def _validated(model: type[_M], **values: object) -> _M:
    """The options as `model`, or InvalidInputError naming the first bad field and its allowed range."""
    try:
        return model.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0])
        bounds = []
        for constraint in model.model_fields[field].metadata:
            for attr, words in (
                ("gt", ">"),
                ("ge", ">="),
                ("lt", "<"),
                ("le", "<="),
                ("max_length", "at most"),
            ):
                if getattr(constraint, attr, None) is not None:
                    bounds.append(f"{words} {getattr(constraint, attr):g}")
        allowed = " and ".join(bounds) or None
        got = first["input"]
        shown = f"{len(got)} items" if isinstance(got, list) else repr(got)
        message = f"{field} must be {allowed}" if allowed else f"{field}: {first['msg']}"
        raise InvalidInputError(f"{message} (got {shown})", field=field, allowed=allowed) from None


# --- aggregation --------------------------------------------------------------------------------------


@dataclass
class _Term:
    text: str
    ad_group_id: str
    clicks: int = 0
    spend: float = 0.0
    orders: int = 0
    sales: float = 0.0
    keyword_ids: set[str] = field(default_factory=set)
    found_in: str | None = None  # the automatic-targeting ad group a harvested term was found in

    def add(self, row: SearchTermDay) -> None:
        self.clicks += row.clicks
        self.spend += row.spend
        self.orders += row.orders
        self.sales += row.sales
        self.keyword_ids.add(row.keyword_id)


@dataclass
class _Account:
    """Search-term rows summed per (ad group, term), with what the two engines need around them."""

    terms: dict[tuple[str, str], _Term]
    keywords: dict[str, Keyword]
    start: dt.date
    end: dt.date
    group_cvr: dict[str, float]  # shrunk toward the account's rate
    account_cvr: float
    concentration: float  # Beta-Binomial kappa: prior strength in clicks

    def cvr_prior(self, ad_group_id: str) -> tuple[float, float]:
        """Beta prior of a term's conversion rate in this ad group, worth at most MAX_PRIOR_ORDERS orders."""
        p = self.group_cvr[ad_group_id]
        kappa = min(self.concentration, MAX_PRIOR_ORDERS / p)
        return kappa * p, kappa * (1 - p)


def _check_inputs(
    search_term_days: Sequence[SearchTermDay], keywords: Sequence[Keyword], products: Sequence[Product]
) -> dict[str, Keyword]:
    if not products:
        raise InvalidInputError(
            "products is empty: the engine needs the advertiser's products",
            field="products",
            allowed="1 or more",
        )
    if not keywords:
        raise InvalidInputError("keywords is empty", field="keywords", allowed="1 or more")
    if not search_term_days:
        raise InvalidInputError(
            "no search-term rows: the period has no search-term data (widen the date range)",
            field="search_term_days",
            allowed="1 or more rows",
        )
    by_id = {k.id: k for k in keywords}
    for row in search_term_days:
        if row.keyword_id not in by_id:
            raise UnknownIdError(
                f"search-term row '{row.term}' names keyword {row.keyword_id}, which is not among the keywords given",
                field="search_term_days.keyword_id",
            )
    return by_id


def _aggregate(search_term_days: Sequence[SearchTermDay], keywords: dict[str, Keyword]) -> _Account:
    terms: dict[tuple[str, str], _Term] = {}
    for row in search_term_days:
        ad_group_id = keywords[row.keyword_id].ad_group_id
        key = (ad_group_id, normalize_text(row.term))
        if key not in terms:
            terms[key] = _Term(text=key[1], ad_group_id=ad_group_id)
        terms[key].add(row)

    clicks_by_group: dict[str, int] = defaultdict(int)
    orders_by_group: dict[str, int] = defaultdict(int)
    for t in terms.values():
        clicks_by_group[t.ad_group_id] += t.clicks
        orders_by_group[t.ad_group_id] += t.orders
    total_clicks = sum(clicks_by_group.values())
    total_orders = sum(orders_by_group.values())
    account_cvr = _clip_rate(total_orders / total_clicks if total_clicks else 0.0)
    group_cvr = {
        g: _clip_rate(
            (orders_by_group[g] + GROUP_PRIOR_CLICKS * account_cvr)
            / (clicks_by_group[g] + GROUP_PRIOR_CLICKS)
        )
        for g in clicks_by_group
    }
    dates = [r.date for r in search_term_days]
    return _Account(
        terms=terms,
        keywords=keywords,
        start=min(dates),
        end=max(dates),
        group_cvr=group_cvr,
        account_cvr=account_cvr,
        concentration=_fit_concentration(terms.values(), group_cvr),
    )


def _clip_rate(p: float) -> float:
    return float(min(max(p, 1e-4), 0.99))


def _fit_concentration(terms: Iterable[_Term], group_cvr: dict[str, float]) -> float:
    """Maximum-likelihood kappa of Beta(kappa*p_g, kappa*(1-p_g)) over all terms with clicks."""
    rows = [(t.clicks, t.orders, group_cvr[t.ad_group_id]) for t in terms if t.clicks > 0]
    if len(rows) < 5:
        return 20.0  # too few terms to learn how much they differ: a moderate prior
    n, k, p = (np.array(col, dtype=float) for col in zip(*rows, strict=True))

    def negative_log_likelihood(log_kappa: float) -> float:
        kappa = np.exp(log_kappa)
        return -float(stats.betabinom.logpmf(k, n, kappa * p, kappa * (1 - p)).sum())

    # kappa in [2, 1000]: below 2 one click would swing a term; above, terms are all alike anyway.
    fit = optimize.minimize_scalar(
        negative_log_likelihood, bounds=(np.log(2.0), np.log(1000.0)), method="bounded"
    )
    return float(np.exp(fit.x))


# --- meaning ------------------------------------------------------------------------------------------


@dataclass
class _Anchors:
    """What the advertiser sells: product names and best converting keywords, embedded once."""

    texts: list[str]
    vectors: np.ndarray
    keyword_of: dict[str, Keyword]  # anchor text -> keyword, for anchors that are keywords

    def nearest(self, vectors: np.ndarray) -> tuple[np.ndarray, list[str]]:
        sims = vectors @ self.vectors.T
        best = sims.argmax(axis=1)
        return sims[np.arange(len(best)), best], [self.texts[i] for i in best]


def _anchors(account: _Account, products: Sequence[Product], embedder: Embedder) -> _Anchors:
    orders_by_keyword: dict[str, int] = defaultdict(int)
    for t in account.terms.values():
        for kid in t.keyword_ids:
            # A term matched by several keywords credits each; only the ranking matters here.
            orders_by_keyword[kid] += t.orders
    best = sorted(
        (k for k in account.keywords.values() if orders_by_keyword[k.id] > 0 and k.status == Status.ENABLED),
        key=lambda k: -orders_by_keyword[k.id],
    )[:BEST_KEYWORDS]
    keyword_of = {normalize_text(k.text): k for k in best}
    texts = list(dict.fromkeys([p.name for p in products] + list(keyword_of)))
    return _Anchors(texts=texts, vectors=embedder.encode(texts), keyword_of=keyword_of)


# --- helpers ------------------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b > 0 else None


def _money(x: float) -> float:
    return round(float(x), 2)


def _pct(x: float) -> str:
    return f"{x:.1%}" if x < 0.1 else f"{x:.0%}"


def _is_negated(text: str, negatives: Iterable[NegativeKeyword]) -> bool:
    words = set(text.split())
    for n in negatives:
        neg = normalize_text(n.text)
        if (
            (n.match_type == MatchType.EXACT and text == neg)
            or (n.match_type == MatchType.PHRASE and f" {neg} " in f" {text} ")
            or (n.match_type == MatchType.BROAD and set(neg.split()) <= words)
        ):
            return True
    return False


def _check_ad_group(ad_group_id: str | None, keywords: dict[str, Keyword]) -> None:
    if ad_group_id is not None and ad_group_id not in {k.ad_group_id for k in keywords.values()}:
        raise UnknownIdError(
            f"ad group {ad_group_id} has none of the keywords given",
            field="ad_group_id",
            allowed="an ad group of yours",
        )


# --- negatives ----------------------------------------------------------------------------------------


def suggest_negatives(
    search_term_days: Sequence[SearchTermDay],
    keywords: Sequence[Keyword],
    products: Sequence[Product],
    negatives: Sequence[NegativeKeyword] = (),
    *,
    ad_group_id: str | None = None,
    cvr_ratio: float = _NEG.cvr_ratio,
    confidence: float = _NEG.confidence,
    off_topic_similarity: float = _NEG.off_topic_similarity,
    limit: int = _NEG.limit,
    embedder: Embedder | None = None,
) -> NegativeSuggestions:
    """Search terms to add as exact negatives, most spend first, each with its reason and the spend it saves.

    A term is suggested when it is
    - not converting: posterior P(term CVR < cvr_ratio x ad group CVR) >= confidence, or
    - off topic: similarity to every product and converting keyword < off_topic_similarity, with clicks
      and no order.
    Terms already negated in their ad group, or equal to one of its keywords, are left alone.
    """
    _validated(
        NegativesOptions,
        ad_group_id=ad_group_id,
        cvr_ratio=cvr_ratio,
        confidence=confidence,
        off_topic_similarity=off_topic_similarity,
        limit=limit,
    )
    keyword_by_id = _check_inputs(search_term_days, keywords, products)
    _check_ad_group(ad_group_id, keyword_by_id)
    embedder = embedder or default_embedder()
    account = _aggregate(search_term_days, keyword_by_id)

    negatives_by_group: dict[str, list[NegativeKeyword]] = defaultdict(list)
    for n in negatives:
        negatives_by_group[n.ad_group_id].append(n)
    keyword_texts_by_group: dict[str, set[str]] = defaultdict(set)
    for k in keywords:
        keyword_texts_by_group[k.ad_group_id].add(normalize_text(k.text))

    candidates = [
        t
        for t in account.terms.values()
        if t.clicks > 0
        and (ad_group_id is None or t.ad_group_id == ad_group_id)
        and t.text not in keyword_texts_by_group[t.ad_group_id]
        and not _is_negated(t.text, negatives_by_group[t.ad_group_id])
    ]
    days = (account.end - account.start).days + 1
    suggestions: list[NegativeSuggestion] = []
    if candidates:
        anchors = _anchors(account, products, embedder)
        sims, nearest = anchors.nearest(embedder.encode([t.text for t in candidates]))
        for t, sim, near in zip(candidates, sims, nearest, strict=True):
            group_cvr = account.group_cvr[t.ad_group_id]
            p_below = _p_below(t, account, cvr_ratio)
            not_converting = p_below >= confidence
            off_topic = float(sim) < off_topic_similarity and t.orders == 0
            if not (not_converting or off_topic):
                continue
            kind = (
                NegativeKind.OFF_TOPIC_NOT_CONVERTING
                if off_topic and not_converting
                else NegativeKind.OFF_TOPIC
                if off_topic
                else NegativeKind.NOT_CONVERTING
            )
            suggestions.append(
                NegativeSuggestion(
                    text=t.text,
                    ad_group_id=t.ad_group_id,
                    match_type=MatchType.EXACT,
                    kind=kind,
                    clicks=t.clicks,
                    orders=t.orders,
                    spend=_money(t.spend),
                    sales=_money(t.sales),
                    acos=_ratio(t.spend, t.sales),
                    cvr=_ratio(t.orders, t.clicks),
                    similarity=round(float(sim), 4),
                    similar_to=near,
                    ad_group_cvr=round(group_cvr, 4),
                    p_below=round(p_below, 4),
                    reason=_negative_reason(t, kind, float(sim), near, group_cvr, p_below, cvr_ratio, days),
                )
            )
    suggestions.sort(key=lambda s: (-s.spend, -s.clicks, s.text))
    shown = suggestions[:limit]
    return NegativeSuggestions(
        start=account.start,
        end=account.end,
        suggestions=shown,
        total=len(suggestions),
        spend_saved=_money(sum(s.spend for s in shown)),
        sales_lost=_money(sum(s.sales for s in shown)),
    )


def _negative_reason(
    t: _Term,
    kind: NegativeKind,
    sim: float,
    near: str,
    group_cvr: float,
    p_below: float,
    cvr_ratio: float,
    days: int,
) -> str:
    record = f"{t.orders} order{'s' if t.orders != 1 else ''} from {t.clicks} clicks (${t.spend:.2f} spent)"
    parts = []
    if kind != NegativeKind.NOT_CONVERTING:
        parts.append(f"Unrelated to what you sell (closest: '{near}', similarity {sim:.2f})")
    if kind != NegativeKind.OFF_TOPIC:
        parts.append(
            f"{record} while its ad group converts {_pct(group_cvr)} of clicks: "
            f"{p_below:.0%} likely it converts below {cvr_ratio:.0%} of that"
        )
    else:
        parts.append(record)
    return "; ".join(parts) + f". Negating it would have saved ${t.spend:.2f} over these {days} days."


# --- recommendations ----------------------------------------------------------------------------------


def recommend_keywords(
    search_term_days: Sequence[SearchTermDay],
    keywords: Sequence[Keyword],
    products: Sequence[Product],
    negatives: Sequence[NegativeKeyword] = (),
    *,
    ad_group_id: str | None = None,
    target_acos: float | None = None,
    min_orders: int = _REC.min_orders,
    min_similarity: float = _REC.min_similarity,
    candidates: Sequence[str] = (),
    auto_ad_group_ids: Collection[str] = (),
    limit: int = _REC.limit,
    embedder: Embedder | None = None,
) -> KeywordRecommendations:
    """New keywords: harvested converting search terms first, then related terms, each with a reason.

    - harvest: a search term with >= min_orders orders whose text is no keyword of any match type yet, as an
      exact keyword in the ad group where it sold most, bid = shrunk value per click x target ACoS
      (capped at 2x its CPC);
    - related: search terms below that bar (and extra `candidates` texts) whose similarity to the closest
      product or converting keyword is >= min_similarity, bid = that keyword's bid (or its ad group's
      median bid); terms that would be suggested as negatives are not offered.
    Terms found by automatic targeting (`auto_ad_group_ids`: ad groups of auto campaigns) go to the manual
    ad group whose keyword is closest in meaning. target_acos defaults to the account's ACoS over the period.
    """
    _validated(
        RecommendOptions,
        ad_group_id=ad_group_id,
        target_acos=target_acos,
        min_orders=min_orders,
        min_similarity=min_similarity,
        candidates=list(candidates),
        limit=limit,
    )
    keyword_by_id = _check_inputs(search_term_days, keywords, products)
    _check_ad_group(ad_group_id, keyword_by_id)
    embedder = embedder or default_embedder()
    account = _aggregate(search_term_days, keyword_by_id)

    spend = sum(t.spend for t in account.terms.values())
    sales = sum(t.sales for t in account.terms.values())
    if target_acos is None and sales > 0:
        target_acos = spend / sales
    keyword_texts = {normalize_text(k.text) for k in keywords}
    negatives_by_group: dict[str, list[NegativeKeyword]] = defaultdict(list)
    for n in negatives:
        negatives_by_group[n.ad_group_id].append(n)

    # One row per term across the account; its home is the ad group where it sold (else was clicked) most.
    by_text: dict[str, list[_Term]] = defaultdict(list)
    for t in account.terms.values():
        by_text[t.text].append(t)
    pooled: list[_Term] = []
    for text, rows in by_text.items():
        home = max(rows, key=lambda r: (r.orders, r.clicks, r.spend))
        if text in keyword_texts or _is_negated(text, negatives_by_group[home.ad_group_id]):
            continue
        total = _Term(text=text, ad_group_id=home.ad_group_id)
        for r in rows:
            total.clicks += r.clicks
            total.spend += r.spend
            total.orders += r.orders
            total.sales += r.sales
        pooled.append(total)

    if auto_ad_group_ids:
        _move_out_of_auto(pooled, set(auto_ad_group_ids), keywords, embedder)
    if ad_group_id is not None:
        pooled = [t for t in pooled if t.ad_group_id == ad_group_id]

    normalized = dict.fromkeys(normalize_text(c) for c in candidates)
    extra = [c for c in normalized if c and c not in keyword_texts and c not in by_text]
    anchors = _anchors(account, products, embedder)
    texts = [p.text for p in pooled] + extra
    sims, nearest = anchors.nearest(embedder.encode(texts)) if texts else (np.zeros(0), [])

    suggestions: list[KeywordSuggestion] = []
    for i, text in enumerate(texts):
        sim, near = float(sims[i]), nearest[i]
        term = pooled[i] if i < len(pooled) else None
        if term is not None and term.orders >= min_orders and target_acos is not None:
            suggestions.append(_harvest(term, account, target_acos, sim, near))
        elif sim >= min_similarity and (term is None or not _looks_negative(term, account)):
            suggestion = _related(text, term, account, anchors, sim, near, keyword_by_id, ad_group_id)
            if suggestion is not None:
                suggestions.append(suggestion)

    # Proven terms first (by orders), then the related ones by closeness.
    suggestions.sort(
        key=lambda s: (s.source != SuggestionSource.HARVEST, -s.orders, -s.similarity, -s.clicks, s.text)
    )
    return KeywordRecommendations(
        start=account.start,
        end=account.end,
        target_acos=None if target_acos is None else round(target_acos, 4),
        suggestions=suggestions[:limit],
        total=len(suggestions),
    )


def _move_out_of_auto(
    pooled: list[_Term], auto: set[str], keywords: Sequence[Keyword], embedder: Embedder
) -> None:
    """Terms at home in an auto ad group move to the manual ad group of the closest keyword in meaning."""
    manual = [k for k in keywords if k.ad_group_id not in auto and k.status == Status.ENABLED]
    found = [t for t in pooled if t.ad_group_id in auto]
    if not manual or not found:
        return
    sims = embedder.encode([t.text for t in found]) @ embedder.encode([k.text for k in manual]).T
    for t, best in zip(found, sims.argmax(axis=1), strict=True):
        t.found_in, t.ad_group_id = t.ad_group_id, manual[int(best)].ad_group_id


def _looks_negative(t: _Term, account: _Account) -> bool:
    """Clicked often enough without orders that suggest_negatives (default settings) would flag it."""
    a, b = account.cvr_prior(t.ad_group_id)
    return _p_below(t, account, _NEG.cvr_ratio) >= _NEG.confidence


def _p_below(t: _Term, account: _Account, cvr_ratio: float) -> float:
    """Posterior probability that the term's conversion rate is below cvr_ratio x its ad group's."""
    group = t.found_in or t.ad_group_id  # judged against the ad group it was seen in
    a, b = account.cvr_prior(group)
    return float(stats.beta.cdf(cvr_ratio * account.group_cvr[group], a + t.orders, b + t.clicks - t.orders))


def _harvest(t: _Term, account: _Account, target_acos: float, sim: float, near: str) -> KeywordSuggestion:
    a, b = account.cvr_prior(t.found_in or t.ad_group_id)
    cvr_shrunk = (a + t.orders) / (a + b + t.clicks)
    value_per_click = cvr_shrunk * t.sales / t.orders
    cpc = t.spend / t.clicks if t.clicks else 0.0
    bid = value_per_click * target_acos
    capped = cpc > 0 and bid > BID_CAP_X_CPC * cpc
    if capped:
        bid = BID_CAP_X_CPC * cpc
    bid = min(max(bid, MIN_BID), MAX_BID)
    acos = t.spend / t.sales if t.sales > 0 else None
    acos_words = f"ACoS {_pct(acos)}" if acos is not None else "no sales"
    reason = (
        f"Converting search term, not yet a keyword: {t.orders} orders from {t.clicks} clicks, "
        f"{acos_words} (target {_pct(target_acos)}), CPC ${cpc:.2f}. "
        f"As its own exact keyword at ${bid:.2f}: {_pct(target_acos)} of its ${value_per_click:.2f} value per click"
        + (f", capped at {BID_CAP_X_CPC:g}x its CPC." if capped else ".")
        + (f" Found by automatic targeting in {t.found_in}." if t.found_in else "")
    )
    return KeywordSuggestion(
        text=t.text,
        ad_group_id=t.ad_group_id,
        match_type=MatchType.EXACT,
        bid=_money(bid),
        source=SuggestionSource.HARVEST,
        clicks=t.clicks,
        orders=t.orders,
        spend=_money(t.spend),
        sales=_money(t.sales),
        acos=_ratio(t.spend, t.sales),
        cvr=_ratio(t.orders, t.clicks),
        similarity=round(sim, 4),
        similar_to=near,
        reason=reason,
    )


def _related(
    text: str,
    t: _Term | None,
    account: _Account,
    anchors: _Anchors,
    sim: float,
    near: str,
    keyword_by_id: dict[str, Keyword],
    ad_group_id: str | None,
) -> KeywordSuggestion | None:
    near_keyword = anchors.keyword_of.get(normalize_text(near))
    if t is not None:
        home = t.ad_group_id
    elif near_keyword is not None:
        home = near_keyword.ad_group_id
    else:
        home = _busiest_group(account)
    if ad_group_id is not None and home != ad_group_id:
        if t is not None:
            return None
        home = ad_group_id
    if near_keyword is not None and near_keyword.ad_group_id == home:
        bid, bid_words = near_keyword.bid, f"the bid of your keyword '{near_keyword.text}'"
    else:
        group_bids = [
            k.bid for k in keyword_by_id.values() if k.ad_group_id == home and k.status == Status.ENABLED
        ]
        bid = float(np.median(group_bids)) if group_bids else MIN_BID
        bid_words = "the median bid of that ad group's keywords"
    seen = (
        f"{t.clicks} clicks, {t.orders} order{'s' if t.orders != 1 else ''} so far as a search term"
        if t is not None
        else "not seen as a search term yet"
    )
    reason = (
        f"Close in meaning to '{near}' (similarity {sim:.2f}); {seen}. "
        f"Start at ${bid:.2f}, {bid_words}, and let data decide."
    )
    return KeywordSuggestion(
        text=text,
        ad_group_id=home,
        match_type=MatchType.EXACT if t is not None else MatchType.PHRASE,
        bid=_money(min(max(bid, MIN_BID), MAX_BID)),
        source=SuggestionSource.RELATED,
        clicks=t.clicks if t else 0,
        orders=t.orders if t else 0,
        spend=_money(t.spend) if t else 0.0,
        sales=_money(t.sales) if t else 0.0,
        acos=_ratio(t.spend, t.sales) if t else None,
        cvr=_ratio(t.orders, t.clicks) if t else None,
        similarity=round(sim, 4),
        similar_to=near,
        reason=reason,
    )


def _busiest_group(account: _Account) -> str:
    clicks: dict[str, int] = defaultdict(int)
    for t in account.terms.values():
        clicks[t.ad_group_id] += t.clicks
    return max(clicks, key=lambda g: clicks[g])
