"""A market model learned from what can be observed: the auction simulator's inputs, estimated from history.

The simulator tools never read the world's true markets (the generator's `KeywordMarket`s, which only the
world generator and the evaluation judge read). They run on `fit_market_model(adv)`: one estimated
`KeywordMarket` per keyword, in one of two information views, stated in every result:

- `seller`: the account's own reports — keyword-days (bid, impressions, impression share, average position,
  clicks, spend, orders, attributed and organic sales), campaign-days (budget caps) and search-term-days —
  and the public retail calendar. What an imported account has.
- `platform`: that plus the platform's auction log (the rivals' count, bids and quality scores of sampled
  auctions on the keyword), as a platform's own bid simulator uses. The generated marketplace's default.

Neither view holds the shoppers' true response; each piece is estimated:

- demand: searches = impressions / impression share, fit by nonlinear least squares (robust loss) to a
  per-keyword level times the advertiser's shared weekly and yearly seasonality; public calendar event days
  are left out of the fit and their lift is measured on them.
- the auction: our slot and price at a bid follow from the rival field (tools.auction.simulate's exact
  terms). `platform`: rivals from the log, our quality score fit to the observed impression share, position
  and cost per click. `seller`: quality is not reported, and only rival scores relative to ours matter, so
  quality is fixed and the rivals' count and bid level are fit on a grid. Recent days weigh most (markets
  move). The grid's likelihood is the parameters' posterior.
- clicks per impression at each position: `ctr_top x decay^(position - 1)`, with the decay identified
  *within* keywords (keyword fixed effects): a keyword's position moves when its bid changes or rivals
  surge, and its clicks follow. Across keywords position is confounded with the keyword's appeal (brand
  terms sit on top and are clicked more): the naive pooled fit (`naive_position_decay`) is biased.
- conversion rate and order value: beta-binomial / shrunk means, pooled toward the campaign.
- incrementality: the organic sales a keyword reports fall when its ads take buyers who would have bought
  anyway, so per keyword-day `organic = aov x (organic_rate x searches - cannibalization x ad orders)`;
  the regression on searches and ad orders identifies both (ad orders move with bids, budget caps and
  chance, not with organic demand), shrunk toward the campaign's pooled fit (empirical Bayes), which is
  itself combined with a marketplace prior that follows the campaign's organic orders per search (a line
  fit to many accounts' campaign fits: `fit_cannibalization_prior`).
- search terms: their shares and relevance from the search-term report (for negative-keyword what-ifs).

Uncertainty: `draws` are markets sampled from each piece's posterior; what-if intervals add their spread
to the simulator's own Monte Carlo spread.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
from scipy import optimize, special

from tools.auction.simulate import (
    N_QUALITY_NODES,
    AuctionTerms,
    MarketArrays,
    auction_terms,
    traffic_share_before,
)
from tools.market.data_model import Keyword, KeywordMarket, MarketEvent, NegativeKeyword, SearchTerm
from tools.market.world import calendar_events, markets_today

if TYPE_CHECKING:
    from tools.market.store import AdvertiserStore


class View(StrEnum):
    SELLER = "seller"
    PLATFORM = "platform"


VIEW_NOTES = {
    View.SELLER: "market estimated from the account's own reports (seller view)",
    View.PLATFORM: "market estimated from the account's reports and the platform's auction logs (platform view)",
}

# Marketplace rules every advertiser knows (KeywordMarket's defaults): slots per page and the reserve price.
N_SLOTS = KeywordMarket.model_fields["n_slots"].default
RESERVE = KeywordMarket.model_fields["reserve"].default
# Seller view: the quality score is not reported, and only rival scores relative to ours matter (rank and
# price depend on rival bid x rival quality / our quality), so these are fixed and the rivals' bid level fit.
SELLER_QUALITY = 0.6
SELLER_RIVAL_SIGMA = 0.45
SELLER_RIVAL_QUALITY = (4.0, 3.0)
SELLER_RIVALS = np.array([0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0])
MU_STEPS = np.linspace(-2.5, 1.5, 33)  # rival log-bid grid around the log cost per click
QUALITY_GRID = np.linspace(0.1, 1.0, 37)
DECAY_GRID = np.linspace(0.3, 1.0, 71)
RECENT_DAYS = 42  # the auction is fit on the last weeks, each day weighted by recency
HALF_LIFE = 14.0
# Observation noise of the auction fit (what a day's figures scatter by around the model).
SD_SHARE, SD_POSITION, SD_LOG_CPC = 0.05, 0.15, 0.12
CVR_PRIOR_CLICKS = 40.0  # pseudo-clicks of the campaign's pooled conversion rate
AOV_PRIOR_ORDERS = 5.0
CANNIBALIZATION_TAU = 0.2  # spread of keywords' cannibalization around their campaign's
# Incrementality is weakly identified by an account's own history (organic sales scatter far more than the
# ad orders that take from them): a campaign's fit is combined with a marketplace prior. Where the reports
# carry no organic sales: about a third of attributed ad sales happening anyway, as holdout studies of
# sponsored search commonly find.
CANNIBALIZATION_PRIOR, CANNIBALIZATION_PRIOR_SD = 0.3, 0.15
# Where they do, the prior follows the campaign's organic orders per search: searches whose shoppers buy the
# advertiser's products without an ad (its own brand's) are the ones where an ad takes sales that would have
# happened anyway. The line, its covariance, the campaigns' spread around it and how far the campaign fits'
# own standard errors understate their scatter were fit by marginal likelihood to the campaign fits of 120
# accounts' histories (world seeds 101-103, no truth read: fit_cannibalization_prior, rerun by
# `python -m evals.benchmarks.bench_budget_incrementality`); the spread is the root mean square over its profile
# likelihood (its maximum is 0, which would make the prior certain).
PRIOR_LINE = np.array([0.947, 0.126])  # cannibalization = a + b x log(organic orders per search)
PRIOR_LINE_COV = np.array([[0.0407, 0.00766], [0.00766, 0.00149]])
PRIOR_SPREAD = 0.064
CANNIBALIZATION_SE_SCALE = 1.58  # fit on campaign fits; keywords' own fits (the same regression) take it too
N_DRAWS = 30
MIN_VOLUME = 0.5


@dataclass
class MarketModel:
    """An advertiser's estimated markets (before negatives), posterior draws and what the fit found."""

    view: View
    markets: dict[str, KeywordMarket]
    draws: list[dict[str, KeywordMarket]]
    terms: dict[str, list[SearchTerm]]
    history_days: int
    fit: dict[str, float] = field(default_factory=dict)
    keywords_by_group: dict[str, list[Keyword]] = field(
        default_factory=dict
    )  # siblings of keywords added later

    @property
    def note(self) -> str:
        return f"{VIEW_NOTES[self.view]}, {self.history_days} days of history"

    def for_keywords(
        self,
        keywords: list[Keyword],
        negatives: list[NegativeKeyword],
        draw: int | None = None,
    ) -> list[KeywordMarket]:
        """Markets of these keywords as the simulator should run them today (tools.market.world.markets_today:
        their ad group's negatives applied; a keyword without history takes its ad group's)."""
        return list(self.by_keyword(keywords, negatives, draw).values())

    def by_keyword(
        self,
        keywords: list[Keyword],
        negatives: list[NegativeKeyword],
        draw: int | None = None,
    ) -> dict[str, KeywordMarket]:
        """for_keywords by keyword id (what the simulator and the judges look markets up by)."""
        source = self.markets if draw is None else self.draws[draw]
        return markets_today(keywords, source, self.terms, negatives, self.keywords_by_group)


@dataclass
class History:
    """One advertiser's keyword-days as [K, D] arrays (nan where the report has no value)."""

    keywords: list[Keyword]
    campaign_of: list[str]
    days: np.ndarray  # [D] day indices (0 = the world's first day)
    bid: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    spend: np.ndarray
    orders: np.ndarray
    sales: np.ndarray
    organic: np.ndarray
    position: np.ndarray
    share: np.ndarray
    served: np.ndarray  # share of the day's searches the campaign was in the auction (budget caps)
    event_day: np.ndarray  # [D] bool: a public calendar event covers the day
    product_price: np.ndarray  # [K] mean price of the keyword's ad group products

    @property
    def searches(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((self.impressions > 0) & (self.share > 0), self.impressions / self.share, np.nan)


def load_history(adv: AdvertiserStore) -> History:
    """The advertiser's reports, as arrays."""
    start, end = adv.history_period
    n_days = (end - start).days + 1
    keywords = adv.keywords()
    groups = {g.id: g for g in adv.ad_groups()}
    prices = {p.id: p.price for p in adv.products()}
    default_price = float(np.mean(list(prices.values()))) if prices else 30.0
    index = {k.id: i for i, k in enumerate(keywords)}
    shape = (len(keywords), n_days)
    cols = {
        name: np.full(shape, np.nan)
        for name in (
            "bid",
            "impressions",
            "clicks",
            "spend",
            "orders",
            "sales",
            "organic",
            "position",
            "share",
        )
    }
    for r in adv.keyword_days(start, end):
        i, d = index[r.keyword_id], (r.date - start).days
        cols["bid"][i, d] = r.bid
        cols["impressions"][i, d] = r.impressions
        cols["clicks"][i, d] = r.clicks
        cols["spend"][i, d] = r.spend
        cols["orders"][i, d] = r.orders
        cols["sales"][i, d] = r.sales
        cols["organic"][i, d] = r.organic_sales
        cols["position"][i, d] = np.nan if r.avg_position is None else r.avg_position
        cols["share"][i, d] = np.nan if r.impression_share is None else r.impression_share
    if not np.nansum(cols["organic"]):  # reports that carry no organic sales (ad console exports)
        cols["organic"][:] = np.nan
    campaign_of = [groups[k.ad_group_id].campaign_id for k in keywords]
    camp_index = {c: j for j, c in enumerate(dict.fromkeys(campaign_of))}
    served_c = np.ones((len(camp_index), n_days))
    for c in adv.campaign_days(start, end):
        if c.campaign_id in camp_index and c.budget_exhausted_at is not None:
            served_c[camp_index[c.campaign_id], (c.date - start).days] = float(
                traffic_share_before(c.budget_exhausted_at)
            )
    served = served_c[[camp_index[c] for c in campaign_of]] if keywords else np.ones(shape)
    first_day = (start - adv.world_start).days
    days = np.arange(first_day, first_day + n_days)
    event_day = np.zeros(n_days, dtype=bool)
    for ev in _public_events(adv, start, end):
        event_day[max(0, (ev.start - start).days) : (ev.end - start).days + 1] = True
    price = []
    for k in keywords:
        ps = [prices[p] for p in groups[k.ad_group_id].product_ids if p in prices]
        price.append(float(np.mean(ps)) if ps else default_price)
    return History(
        keywords,
        campaign_of,
        days,
        served=served,
        event_day=event_day,
        product_price=np.asarray(price),
        **cols,
    )


def _public_events(adv: AdvertiserStore, first: dt.date, last: dt.date) -> list:
    category = adv.advertiser.category
    return [e for e in calendar_events(first, last) if e.categories is None or category in e.categories]


# --- demand -------------------------------------------------------------------------------------------------


@dataclass
class Demand:
    base_volume: np.ndarray  # [K]
    log_se: np.ndarray  # [K] standard error of log base volume
    weekly_amp: float
    weekly_phase: float
    yearly_amp: float
    yearly_phase: float
    event_lift: dict[str, float]

    def expected(self, days: np.ndarray) -> np.ndarray:
        d = days.astype(float)[None, :]
        return (
            self.base_volume[:, None]
            * (1 + self.weekly_amp * np.sin(2 * np.pi * d / 7 + self.weekly_phase))
            * (1 + self.yearly_amp * np.sin(2 * np.pi * d / 365.25 + self.yearly_phase))
        )


def fit_demand(h: History) -> Demand:
    """Searches per day: a level per keyword times shared weekly and yearly seasonality."""
    s = h.searches
    ok = np.isfinite(s) & ~h.event_day[None, :]
    k_n = len(h.keywords)
    has = ok.any(axis=1)
    d = h.days.astype(float)
    if not has.any():
        return Demand(np.full(k_n, MIN_VOLUME), np.full(k_n, 1.0), 0.0, 0.0, 0.0, 0.0, {})
    ki, di = np.nonzero(ok)
    y = s[ki, di]
    # start: log-linear least squares with keyword levels (log(1 + a sin(x + p)) ~ a cos p sin x + a sin p cos x)
    wk, yr = 2 * np.pi * d[di] / 7, 2 * np.pi * d[di] / 365.25
    design = np.column_stack([np.eye(k_n)[ki], np.sin(wk), np.cos(wk), np.sin(yr), np.cos(yr)])
    coef = np.linalg.lstsq(design, np.log(y + 0.5), rcond=None)[0]
    level = np.where(has, np.exp(coef[:k_n]), 1.0)

    def amp_phase(bs: float, bc: float) -> tuple[float, float]:
        return float(min(math.hypot(bs, bc), 0.85)), float(math.atan2(bc, bs))

    wa, wp = amp_phase(coef[k_n], coef[k_n + 1])
    ya, yp = amp_phase(coef[k_n + 2], coef[k_n + 3])
    x0 = np.concatenate([np.log(level), [wa, wp, ya, yp]])

    def predict(x: np.ndarray) -> np.ndarray:
        return (
            np.exp(x[:k_n])[ki]
            * (1 + x[k_n] * np.sin(wk + x[k_n + 1]))
            * (1 + x[k_n + 2] * np.sin(yr + x[k_n + 3]))
        )

    def residuals(x: np.ndarray) -> np.ndarray:
        p = predict(x)
        return (y - p) / np.sqrt(np.maximum(p, 1.0))

    lo = np.concatenate([np.full(k_n, -10.0), [0.0, -10.0, 0.0, -10.0]])
    hi = np.concatenate([np.full(k_n, 15.0), [0.6, 10.0, 0.9, 10.0]])
    fit = optimize.least_squares(
        residuals,
        np.clip(x0, lo + 1e-9, hi - 1e-9),
        bounds=(lo, hi),
        loss="soft_l1",
        f_scale=2.0,
        max_nfev=200,
    )
    x = fit.x
    base = np.exp(x[:k_n])
    # the level's standard error: the recent days' scatter around the fit (markets drift), per keyword
    ratio = np.log((y + 0.5) / (predict(x) + 0.5))
    log_se = np.full(k_n, 0.5)
    for k in range(k_n):
        r = ratio[ki == k][-28:]
        if r.size >= 3:
            log_se[k] = float(np.std(r) / math.sqrt(r.size) + 0.03)
    demand = Demand(base, log_se, float(x[k_n]), float(x[k_n + 1]), float(x[k_n + 2]), float(x[k_n + 3]), {})
    # keywords never seen in an auction: their ad group's typical level (set by the caller), here the median
    base[~has] = float(np.median(base[has]))
    log_se[~has] = 1.0
    return demand


def event_lifts(h: History, demand: Demand, events: list) -> dict[str, float]:
    """Demand on each public event's days over the seasonal fit, pooled over keywords."""
    s = h.searches
    expected = demand.expected(h.days)
    first = h.days[0]
    out = {}
    for ev in events:
        lo, hi = ev[0] - first, ev[1] - first
        cols = slice(max(lo, 0), min(hi, h.days.size - 1) + 1)
        if lo > h.days.size - 1 or hi < 0:
            continue
        ok = np.isfinite(s[:, cols])
        if ok.sum() >= 3:
            out[ev[2]] = float(np.nansum(s[:, cols]) / expected[:, cols][ok].sum())
    return out


# --- the auction --------------------------------------------------------------------------------------------


def _rows(n: int, **columns: np.ndarray | float) -> MarketArrays:
    """A MarketArrays of n rows for auction_terms (fields it does not read are zeros)."""
    values: dict[str, object] = {}
    for f in fields(MarketArrays):
        if f.name == "keyword_ids":
            values[f.name] = tuple(str(i) for i in range(n))
        elif f.name == "key":
            values[f.name] = np.zeros(n, dtype=np.uint64)
        elif f.name.startswith("event_"):
            values[f.name] = np.zeros(
                0, dtype=np.int64 if f.name in ("event_keyword", "event_start", "event_end") else np.float64
            )
        elif f.name == "n_slots":
            values[f.name] = np.full(n, N_SLOTS, dtype=np.int64)
        elif f.name in columns:
            v = columns[f.name]
            values[f.name] = np.broadcast_to(
                np.asarray(v, dtype=np.float64),
                (n, N_QUALITY_NODES) if f.name == "rival_quality_nodes" else (n,),
            ).copy()
        else:
            values[f.name] = np.zeros(n)
    values["reserve"] = np.full(n, RESERVE)
    return MarketArrays(**values)  # type: ignore[arg-type]


def quality_nodes(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    probs = (np.arange(N_QUALITY_NODES) + 0.5) / N_QUALITY_NODES
    a_arr, b_arr = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    return np.clip(special.betaincinv(a_arr[:, None], b_arr[:, None], probs[None, :]), 1e-12, None)


@dataclass
class AuctionObservations:
    """Per keyword, the recent days grouped by bid: weighted impression share (of the served day), position
    and cost per click."""

    keyword: np.ndarray  # [L] keyword index
    bid: np.ndarray
    share: np.ndarray
    position: np.ndarray
    log_cpc: np.ndarray  # nan without clicks
    weight: np.ndarray


def auction_observations(h: History) -> AuctionObservations:
    n_days = h.days.size
    recent = np.arange(n_days) >= n_days - RECENT_DAYS
    w_day = 0.5 ** ((n_days - 1 - np.arange(n_days)) / HALF_LIFE)
    rows: dict[str, list[float]] = defaultdict(list)
    for k in range(len(h.keywords)):
        # reports without impression share or position (imported accounts) leave those terms out
        ok = recent & ~h.event_day & (np.nan_to_num(h.bid[k]) > 0) & (np.nan_to_num(h.impressions[k]) > 0)
        if not ok.any():
            continue
        for b in np.unique(h.bid[k, ok]):
            sel = ok & (h.bid[k] == b)
            w = w_day[sel]
            share = np.clip(h.share[k, sel] / np.maximum(h.served[k, sel], 1e-3), 0, 1)
            clicks, spend = h.clicks[k, sel], h.spend[k, sel]
            rows["keyword"].append(k)
            rows["bid"].append(float(b))
            rows["share"].append(_weighted(share, w))
            rows["position"].append(_weighted(h.position[k, sel], w))
            c = float((clicks * w).sum())
            rows["log_cpc"].append(
                math.log(float((spend * w).sum()) / c) if c > 0 and spend.sum() > 0 else math.nan
            )
            rows["weight"].append(float(w.sum()))
    return AuctionObservations(
        **{
            name: np.asarray(rows[name], dtype=np.int64 if name == "keyword" else float)
            for name in ("keyword", "bid", "share", "position", "log_cpc", "weight")
        }
    )


def _weighted(x: np.ndarray, w: np.ndarray) -> float:
    """Weighted mean of the finite values; nan where there are none."""
    ok = np.isfinite(x)
    return float(np.average(x[ok], weights=w[ok])) if ok.any() and w[ok].sum() > 0 else math.nan


@dataclass
class Rivals:
    """Per keyword, the rival field and our quality: posterior grid (candidates and their probabilities)."""

    n_rivals: np.ndarray  # [K, G]
    mu: np.ndarray
    sigma: np.ndarray
    qa: np.ndarray
    qb: np.ndarray
    quality: np.ndarray
    prob: np.ndarray  # [K, G]

    def best(self) -> np.ndarray:
        return np.argmax(self.prob, axis=1)

    def terms_at(
        self, keywords: np.ndarray, bids: np.ndarray, decay: np.ndarray | float = 1.0
    ) -> AuctionTerms:
        """Our slot and price at `bids` for `keywords` (both [R]) under each one's most likely rival field,
        with clicks per search at a top-slot CTR of 1 and the given decay per slot (no event multipliers)."""
        g = self.best()[keywords]
        m = _rows(
            keywords.size,
            n_rivals=self.n_rivals[keywords, g],
            rival_bid_mu=self.mu[keywords, g],
            rival_bid_sigma=self.sigma[keywords, g],
            quality=self.quality[keywords, g],
            ctr_top=1.0,
            position_decay=decay,
            rival_quality_nodes=0.0,
        )
        m.rival_quality_nodes[:] = quality_nodes(self.qa[keywords, g], self.qb[keywords, g])
        ones = np.ones(keywords.size)
        return auction_terms(m, np.arange(keywords.size), bids, ones, ones)


def _grid_loss(obs: AuctionObservations, cand: dict[str, np.ndarray]) -> np.ndarray:
    """Squared-error loss [K, G] of every candidate rival field against the observations."""
    k_n, g_n = cand["n_rivals"].shape
    loss = np.zeros((k_n, g_n))
    if obs.keyword.size == 0:
        return loss
    li = np.repeat(np.arange(obs.keyword.size), g_n)
    gi = np.tile(np.arange(g_n), obs.keyword.size)
    ki = obs.keyword[li]
    m = _rows(
        li.size,
        n_rivals=cand["n_rivals"][ki, gi],
        rival_bid_mu=cand["mu"][ki, gi],
        rival_bid_sigma=cand["sigma"][ki, gi],
        quality=cand["quality"][ki, gi],
        ctr_top=1.0,
        position_decay=1.0,
        rival_quality_nodes=0.0,
    )
    m.rival_quality_nodes[:] = quality_nodes(cand["qa"][ki, gi], cand["qb"][ki, gi])
    t = auction_terms(m, np.arange(li.size), obs.bid[li], np.ones(li.size), np.ones(li.size))
    pos = np.nan_to_num(t.mean_position, nan=float(N_SLOTS + 1))
    with np.errstate(divide="ignore"):
        log_price = np.log(np.maximum(t.mean_price, 1e-6))

    def term(observed: np.ndarray, predicted: np.ndarray, sd: float) -> np.ndarray:
        return np.where(np.isfinite(observed), ((predicted - np.nan_to_num(observed)) / sd) ** 2, 0.0)

    per = obs.weight[li] * (
        term(obs.share[li], t.p_impression, SD_SHARE)
        + term(obs.position[li], pos, SD_POSITION)
        + term(obs.log_cpc[li], log_price, SD_LOG_CPC)
    )
    np.add.at(loss, (ki, gi), 0.5 * per)
    return loss


def fit_rivals(h: History, obs: AuctionObservations, view: View, log: dict[str, dict] | None) -> Rivals:
    k_n = len(h.keywords)
    cpc_level = np.full(k_n, np.nan)
    for k in range(k_n):
        sel = (obs.keyword == k) & np.isfinite(obs.log_cpc)
        if sel.any():
            cpc_level[k] = float(np.average(obs.log_cpc[sel], weights=obs.weight[sel]))
    # keywords without clicks: their bid's level (rivals bid about what we do)
    live_bids = np.where(np.nan_to_num(h.bid) > 0, h.bid, np.nan)
    fallback = np.full(k_n, math.log(0.5))
    seen = np.isfinite(live_bids).any(axis=1)
    fallback[seen] = np.log(np.maximum(np.nanmedian(live_bids[seen], axis=1), 0.05))
    cpc_level = np.where(np.isfinite(cpc_level), cpc_level, fallback)
    if view == View.PLATFORM and log:
        n_r, mu, sig, qa, qb = (np.zeros(k_n) for _ in range(5))
        for k, kw in enumerate(h.keywords):
            n_r[k], mu[k], sig[k], qa[k], qb[k] = _rivals_from_log(log.get(kw.id), cpc_level[k])
        g_n = QUALITY_GRID.size
        cand = {
            "n_rivals": np.repeat(n_r[:, None], g_n, 1),
            "mu": np.repeat(mu[:, None], g_n, 1),
            "sigma": np.repeat(sig[:, None], g_n, 1),
            "qa": np.repeat(qa[:, None], g_n, 1),
            "qb": np.repeat(qb[:, None], g_n, 1),
            "quality": np.tile(QUALITY_GRID, (k_n, 1)),
        }
    else:
        n_grid, mu_grid = np.meshgrid(SELLER_RIVALS, MU_STEPS, indexing="ij")
        g_n = n_grid.size
        cand = {
            "n_rivals": np.tile(n_grid.ravel(), (k_n, 1)),
            "mu": cpc_level[:, None] + np.tile(mu_grid.ravel(), (k_n, 1)),
            "sigma": np.full((k_n, g_n), SELLER_RIVAL_SIGMA),
            "qa": np.full((k_n, g_n), SELLER_RIVAL_QUALITY[0]),
            "qb": np.full((k_n, g_n), SELLER_RIVAL_QUALITY[1]),
            "quality": np.full((k_n, g_n), SELLER_QUALITY),
        }
    loss = _grid_loss(obs, cand)
    prob = np.exp(-(loss - loss.min(axis=1, keepdims=True)))
    prob /= prob.sum(axis=1, keepdims=True)
    return Rivals(cand["n_rivals"], cand["mu"], cand["sigma"], cand["qa"], cand["qb"], cand["quality"], prob)


def _rivals_from_log(entry: dict | None, cpc_level: float) -> tuple[float, float, float, float, float]:
    """n_rivals, rival log-bid mean and sd, rival quality Beta(a, b) from a keyword's logged auctions."""
    if not entry or not entry.get("counts"):
        return 5.0, cpc_level, SELLER_RIVAL_SIGMA, *SELLER_RIVAL_QUALITY
    counts = np.asarray(entry["counts"], float)
    bids = np.log(np.maximum(np.asarray(entry["bids"], float), 1e-3))
    quality = np.clip(np.asarray(entry["quality"], float), 1e-3, 1 - 1e-3)
    n_r = float(counts.mean())
    if bids.size < 3:
        return n_r, cpc_level, SELLER_RIVAL_SIGMA, *SELLER_RIVAL_QUALITY
    m, v = float(quality.mean()), float(quality.var()) or 1e-3
    common = max(m * (1 - m) / v - 1, 0.5)
    return n_r, float(bids.mean()), float(max(bids.std(ddof=1), 0.05)), m * common, (1 - m) * common


# --- clicks, conversions, incrementality -------------------------------------------------------------------


def _decay_loglik(h: History, fixed_effects: bool, jensen: np.ndarray | None = None) -> np.ndarray:
    """Poisson log-likelihood of every keyword-day's clicks for each decay of DECAY_GRID, with each
    keyword's top-slot CTR profiled out (fixed effects) or one CTR for all (the naive pooled fit).
    A day reports the mean position, and the mean of decay^(slot - 1) is more than decay^(mean - 1) (slots
    vary between auctions): `jensen` [K, G] is that ratio under the fitted auction, 1 where not given."""
    ok = (np.nan_to_num(h.impressions) > 0) & np.isfinite(h.position)
    ki, di = np.nonzero(ok)
    if ki.size == 0:
        return np.zeros(DECAY_GRID.size)
    impr, clicks, pos = h.impressions[ki, di], h.clicks[ki, di], h.position[ki, di]
    ll = np.zeros(DECAY_GRID.size)
    groups = ki if fixed_effects else np.zeros_like(ki)
    n_g = int(groups.max()) + 1
    for j, decay in enumerate(DECAY_GRID):
        exposure = impr * decay ** (pos - 1) * (1.0 if jensen is None else jensen[ki, j])
        rate = np.bincount(groups, clicks, n_g) / np.maximum(np.bincount(groups, exposure, n_g), 1e-12)
        lam = np.maximum(exposure * rate[groups], 1e-12)
        ll[j] = float((clicks * np.log(lam) - lam).sum())
    return ll


def naive_position_decay(h: History) -> float:
    """The pooled fit that ignores which keyword a day belongs to (biased: see the module doc)."""
    return float(DECAY_GRID[int(np.argmax(_decay_loglik(h, fixed_effects=False)))])


def _pooled(values: np.ndarray, weights: np.ndarray, groups: list[str]) -> np.ndarray:
    """Each entry's group's weighted mean (the overall mean where a group has no weight)."""
    total_w = weights.sum()
    overall = float((values * weights).sum() / total_w) if total_w > 0 else float(np.nanmean(values))
    out = np.full(values.size, overall)
    for g in set(groups):
        sel = np.array([x == g for x in groups])
        w = weights[sel].sum()
        if w > 0:
            out[sel] = (values[sel] * weights[sel]).sum() / w
    return out


@dataclass
class Response:
    ctr_top: np.ndarray
    ctr_clicks: np.ndarray  # clicks behind each ctr estimate (its posterior's weight)
    decay_grid_prob: np.ndarray
    cvr_a: np.ndarray  # Beta posterior of the conversion rate
    cvr_b: np.ndarray
    aov: np.ndarray
    aov_se: np.ndarray
    cannibalization: np.ndarray
    cann_se: np.ndarray
    organic_rate: np.ndarray
    # share of each keyword's cannibalization estimate that rests on its campaign's pooled fit (1 where the
    # keyword's own history says nothing): the keywords of a campaign share that part of the error
    cann_shared: np.ndarray


def fit_response(h: History, rivals: Rivals) -> Response:
    k_n = len(h.keywords)
    ll = _decay_loglik(h, fixed_effects=True, jensen=_jensen_ratio(h, rivals))
    decay_prob = np.exp(ll - ll.max())
    decay_prob /= decay_prob.sum()
    decay = float(DECAY_GRID[int(np.argmax(decay_prob))])
    # top-slot CTR: recent clicks over the impressions times the fitted auction's expected decay factor
    recent = np.arange(h.days.size) >= h.days.size - RECENT_DAYS
    ctr, ctr_clicks = np.zeros(k_n), np.zeros(k_n)
    factor = _slot_factor(h, rivals, decay)
    for k in range(k_n):
        ok = np.nan_to_num(h.impressions[k]) > 0
        use = ok & recent if (ok & recent).any() else ok
        clicks = float(np.nansum(h.clicks[k, use]))
        exposure = float(np.nansum(h.impressions[k, use] * factor[k, use]))
        ctr[k], ctr_clicks[k] = (clicks + 0.5) / (exposure + 0.5 / 0.03), clicks
    pooled_ctr = _pooled(ctr, ctr_clicks, h.campaign_of)
    ctr = np.where(ctr_clicks > 0, ctr, pooled_ctr * 0.5)
    # conversion rate: Beta-binomial, pooled toward the campaign
    clicks = np.nansum(h.clicks, axis=1)
    orders = np.nansum(h.orders, axis=1)
    raw_cvr = np.where(clicks > 0, orders / np.maximum(clicks, 1), 0.0)
    prior_cvr = np.clip(_pooled(raw_cvr, clicks, h.campaign_of), 0.005, 0.9)
    cvr_a = CVR_PRIOR_CLICKS * prior_cvr + orders
    cvr_b = CVR_PRIOR_CLICKS * (1 - prior_cvr) + clicks - orders
    aov, aov_se = order_values(h)
    cann, cann_se, organic, shared = _incrementality(h, aov)
    return Response(ctr, ctr_clicks, decay_prob, cvr_a, cvr_b, aov, aov_se, cann, cann_se, organic, shared)


def order_values(h: History) -> tuple[np.ndarray, np.ndarray]:
    """Each keyword's order value and its standard error: shrunk toward the campaign's, which starts from the
    products' prices."""
    orders, sales = np.nansum(h.orders, axis=1), np.nansum(h.sales, axis=1)
    raw_aov = np.where(orders > 0, sales / np.maximum(orders, 1), h.product_price)
    prior_aov = _pooled(raw_aov, orders, h.campaign_of)
    aov = (sales + AOV_PRIOR_ORDERS * prior_aov) / (orders + AOV_PRIOR_ORDERS)
    return aov, 0.15 * aov / np.sqrt(orders + AOV_PRIOR_ORDERS)


def _jensen_ratio(h: History, rivals: Rivals) -> np.ndarray:
    """[K, G] mean of decay^(slot - 1) over decay^(mean slot - 1), at each keyword's latest bid under its
    fitted rival field, for every decay of DECAY_GRID."""
    k_n, g_n = len(h.keywords), DECAY_GRID.size
    bids = np.array(
        [float(b[np.nan_to_num(b) > 0][-1]) if (np.nan_to_num(b) > 0).any() else 0.0 for b in h.bid]
    )
    kk = np.repeat(np.arange(k_n), g_n)
    decay = np.tile(DECAY_GRID, k_n)
    t = rivals.terms_at(kk, bids[kk], decay)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (t.click_rate / t.p_impression) / decay ** (t.mean_position - 1)
    return np.where(np.isfinite(ratio) & (bids[kk] > 0), ratio, 1.0).reshape(k_n, g_n)


def _slot_factor(h: History, rivals: Rivals, decay: float) -> np.ndarray:
    """[K, D] expected decay^(slot - 1) of an impression at each day's bid under the fitted rival field."""
    k_n, n_days = h.bid.shape
    out = np.ones((k_n, n_days))
    ki, di = np.nonzero(np.nan_to_num(h.bid) > 0)
    if ki.size == 0:
        return out
    pairs, inverse = np.unique(np.column_stack([ki, np.round(h.bid[ki, di], 2)]), axis=0, return_inverse=True)
    t = rivals.terms_at(pairs[:, 0].astype(np.int64), pairs[:, 1], decay)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(t.p_impression > 0, t.click_rate / t.p_impression, 1.0)
    out[ki, di] = f[inverse.ravel()]
    return out


def _expected_ad_orders(h: History, k: int, ok: np.ndarray) -> np.ndarray:
    """First stage of the instrumental-variable fit: a day's expected ad orders from what moves them
    from outside the shopper's choice, its bid level and the share of the day its campaign was served
    (orders per served search averaged within each bid level). A day's realized orders carry noise the
    organic count does not share, which would bias a regression on them toward zero."""
    s, served, orders = h.searches[k, ok], h.served[k, ok], h.orders[k, ok]
    level = np.round(h.bid[k, ok], 2)
    out = np.zeros(s.size)
    for b in np.unique(level):
        sel = level == b
        rate = orders[sel].sum() / max(float((s[sel] * served[sel]).sum()), 1e-9)
        out[sel] = rate * s[sel] * served[sel]
    return out


def _incrementality(h: History, aov: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per keyword, organic orders = organic_rate x searches - cannibalization x expected ad orders (two-stage
    least squares: bid changes and budget caps are the instruments). Each campaign's pooled fit is combined
    with the marketplace prior for a campaign of its organic sales per search (cannibalization_prior), and
    each keyword's own fit shrunk toward its campaign's (empirical Bayes). Also returns each estimate's weight
    on the campaign's part (what a campaign's keywords share of the error)."""
    k_n = len(h.keywords)
    s = h.searches
    c_hat, c_se = np.full(k_n, np.nan), np.full(k_n, np.inf)
    rows_by_campaign: dict[str, list[tuple[np.ndarray, np.ndarray, int]]] = defaultdict(list)
    for k in range(k_n):
        ok = (
            np.isfinite(s[k])
            & np.isfinite(h.organic[k])
            & np.isfinite(h.orders[k])
            & (np.nan_to_num(h.bid[k]) > 0)
        )
        if ok.sum() < 10:
            continue
        o = h.organic[k, ok] / aov[k]
        x = np.column_stack([s[k, ok], -_expected_ad_orders(h, k, ok)])
        rows_by_campaign[h.campaign_of[k]].append((x, o, k))
        beta, se = _wls(x, o)
        if beta is not None:
            c_hat[k], c_se[k] = beta[1], CANNIBALIZATION_SE_SCALE * se[1]
    pooled_c = np.full(k_n, np.nan)
    pooled_se = np.full(k_n, np.inf)
    for items in rows_by_campaign.values():
        fit, fit_se = _campaign_fit([(x, o) for x, o, _ in items])
        if fit is not None:
            for _, _, k in items:
                pooled_c[k], pooled_se[k] = fit, CANNIBALIZATION_SE_SCALE * fit_se
    # the campaign's prior: the marketplace's relation to its organic sales per search (or the plain prior)
    prior_mean, prior_sd = np.full(k_n, CANNIBALIZATION_PRIOR), np.full(k_n, CANNIBALIZATION_PRIOR_SD)
    for c, log_rate in campaign_organic_per_search(h, aov).items():
        rows = [k for k in range(k_n) if h.campaign_of[k] == c]
        prior_mean[rows], prior_sd[rows] = cannibalization_prior(log_rate)
    camp_prec = np.where(np.isfinite(pooled_c), 1 / np.maximum(pooled_se, 1e-6) ** 2, 0.0)
    prior_prec = 1 / prior_sd**2
    camp_mean = (np.nan_to_num(pooled_c) * camp_prec + prior_mean * prior_prec) / (camp_prec + prior_prec)
    camp_var = 1 / (camp_prec + prior_prec)
    # a keyword around its campaign: the campaign's mean, uncertain by its own posterior and the keywords' spread
    kw_prior_var = camp_var + CANNIBALIZATION_TAU**2
    precision = np.where(np.isfinite(c_hat), 1 / np.maximum(c_se, 1e-6) ** 2, 0.0)
    post_var = 1 / (precision + 1 / kw_prior_var)
    cann = np.clip((np.nan_to_num(c_hat) * precision + camp_mean / kw_prior_var) * post_var, 0.0, 0.98)
    cann_se = np.sqrt(post_var)
    # the share of the keyword's posterior variance that is its campaign's (shared by the campaign's keywords)
    shared = np.clip(camp_var * (post_var / kw_prior_var) ** 2 / post_var, 0.0, 1.0)
    # organic rate given the shrunk cannibalization (mean organic orders plus those the ads took)
    rate = np.zeros(k_n)
    for k in range(k_n):
        ok = np.isfinite(s[k]) & np.isfinite(h.organic[k]) & np.isfinite(h.orders[k])
        if ok.any():
            rate[k] = float((h.organic[k, ok] / aov[k] + cann[k] * h.orders[k, ok]).sum() / s[k, ok].sum())
    return cann, cann_se, np.clip(rate, 0.0, 0.9), shared


def _campaign_fit(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float | None, float]:
    """One cannibalization for a campaign's keywords, each keyword its own organic rate (2SLS as above):
    the estimate and its standard error, None where the history cannot fit it."""
    n_k = len(items)
    x = np.zeros((sum(i[0].shape[0] for i in items), n_k + 1))
    y = np.concatenate([i[1] for i in items])
    r = 0
    for j, (xi, _) in enumerate(items):
        x[r : r + xi.shape[0], j] = xi[:, 0]
        x[r : r + xi.shape[0], n_k] = xi[:, 1]
        r += xi.shape[0]
    beta, se = _wls(x, y)
    return (None, math.inf) if beta is None else (float(beta[n_k]), float(se[n_k]))


def campaign_organic_per_search(h: History, aov: np.ndarray) -> dict[str, float]:
    """Per campaign, the log of its organic orders per search over the history (where organic sales are
    reported): the marketplace prior's covariate."""
    s = h.searches
    out = {}
    for c in dict.fromkeys(h.campaign_of):
        organic = searches = 0.0
        for k in (k for k in range(len(h.keywords)) if h.campaign_of[k] == c):
            ok = np.isfinite(s[k]) & np.isfinite(h.organic[k])
            organic += float(h.organic[k, ok].sum() / aov[k])
            searches += float(s[k, ok].sum())
        if searches > 0:
            out[c] = math.log((organic + 0.5) / searches)
    return out


def cannibalization_prior(log_organic_per_search: float) -> tuple[float, float]:
    """The marketplace prior of a campaign's cannibalization given its organic orders per search: mean and
    standard deviation (the fitted line's uncertainty and the campaigns' spread around it)."""
    x = np.array([1.0, log_organic_per_search])
    mean = float(np.clip(x @ PRIOR_LINE, 0.0, 1.0))
    return mean, float(math.sqrt(x @ PRIOR_LINE_COV @ x + PRIOR_SPREAD**2))


@dataclass
class CampaignEvidence:
    """What one campaign's history says about its cannibalization: its pooled fit (nan where the history
    cannot fit one) with the fit's own standard error, and the prior's covariate."""

    estimate: float
    se: float
    log_organic_per_search: float


def campaign_evidence(h: History) -> dict[str, CampaignEvidence]:
    """Every campaign's evidence (where organic sales are reported), as _incrementality reads it."""
    aov, _ = order_values(h)
    s = h.searches
    rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for k in range(len(h.keywords)):
        ok = (
            np.isfinite(s[k])
            & np.isfinite(h.organic[k])
            & np.isfinite(h.orders[k])
            & (np.nan_to_num(h.bid[k]) > 0)
        )
        if ok.sum() >= 10:
            x = np.column_stack([s[k, ok], -_expected_ad_orders(h, k, ok)])
            rows[h.campaign_of[k]].append((x, h.organic[k, ok] / aov[k]))
    out = {}
    for c, log_rate in campaign_organic_per_search(h, aov).items():
        fit, se = _campaign_fit(rows[c]) if rows.get(c) else (None, math.inf)
        out[c] = CampaignEvidence(math.nan if fit is None else fit, se, log_rate)
    return out


def fit_cannibalization_prior(evidence: list[CampaignEvidence]) -> dict[str, object]:
    """The marketplace prior from many accounts' campaign fits (no truth): fit ~ N(a + b x, (k se)^2 + s^2),
    with the line (a, b) weighted least squares, and the scale k of the fits' standard errors and the spread s
    of campaigns around the line by their profile likelihood (restricted: the line's own uncertainty counted).
    Returns the line, its covariance, k (the likelihood's mean) and s (the root mean square over it)."""
    ev = [e for e in evidence if math.isfinite(e.estimate) and math.isfinite(e.se)]
    x = np.array([[1.0, e.log_organic_per_search] for e in ev])
    y, se = np.array([e.estimate for e in ev]), np.array([e.se for e in ev])
    scales, spreads = np.linspace(1.0, 2.5, 61), np.linspace(0.0, 0.4, 161)

    def line(k: float, spread: float) -> tuple[np.ndarray, np.ndarray, float]:
        w = 1 / ((k * se) ** 2 + spread**2)
        a = (x.T * w) @ x
        beta = np.linalg.solve(a, (x.T * w) @ y)
        r = y - x @ beta
        nll = 0.5 * float(-np.log(w).sum() + (r**2 * w).sum() + np.linalg.slogdet(a)[1])
        return beta, np.linalg.inv(a), nll

    nll = np.array([[line(k, t)[2] for t in spreads] for k in scales])
    post = np.exp(-(nll - nll.min()))
    post /= post.sum()
    k = float(post.sum(axis=1) @ scales)
    spread = float(math.sqrt(post.sum(axis=0) @ spreads**2))
    beta, cov, _ = line(k, spread)
    return {
        "line": beta.tolist(),
        "line_cov": cov.tolist(),
        "se_scale": k,
        "spread": spread,
        "campaigns": len(ev),
    }


def _wls(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Least squares with heteroskedasticity-robust (HC1) standard errors; None when x is rank-deficient."""
    n, p = x.shape
    if n <= p or np.linalg.matrix_rank(x) < p:
        return None, np.full(p, np.inf)
    xtx_inv = np.linalg.pinv(x.T @ x)
    beta = xtx_inv @ x.T @ y
    resid = y - x @ beta
    meat = (x * resid[:, None] ** 2).T @ x * n / (n - p)
    cov = xtx_inv @ meat @ xtx_inv
    return beta, np.sqrt(np.maximum(np.diag(cov), 1e-12))


# --- search terms -------------------------------------------------------------------------------------------


def fit_terms(adv: AdvertiserStore, h: History, cvr: np.ndarray) -> dict[str, list[SearchTerm]]:
    """Each keyword's queries as its search-term report shows them: share of clicks and relevance (the
    query's conversion rate over the keyword's, shrunk toward 1 by one pseudo-order)."""
    start, end = adv.history_period
    clicks: dict[tuple[str, str], float] = defaultdict(float)
    orders: dict[tuple[str, str], float] = defaultdict(float)
    for r in adv.search_term_days(start, end):
        clicks[(r.keyword_id, r.term)] += r.clicks
        orders[(r.keyword_id, r.term)] += r.orders
    cvr_of = {k.id: float(cvr[i]) for i, k in enumerate(h.keywords)}
    by_kw: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for (kw, term), c in clicks.items():
        if kw in cvr_of and c > 0:
            rel = (orders[(kw, term)] + 1.0) / (c * cvr_of[kw] + 1.0)
            by_kw[kw].append((term, c, float(np.clip(rel, 0.0, 2.0))))
    out = {}
    for kw, items in by_kw.items():
        total = sum(c for _, c, _ in items)
        out[kw] = [
            SearchTerm(keyword_id=kw, term=t, share=max(c / total, 1e-6), relevance=r) for t, c, r in items
        ]
    return out


# --- the model ----------------------------------------------------------------------------------------------


def default_view(adv: AdvertiserStore) -> View:
    """The platform view where the platform's auction log is there, the seller's otherwise."""
    return View.PLATFORM if adv.has_auction_log() else View.SELLER


def fit_market_model(
    adv: AdvertiserStore,
    view: View | str | None = None,
    *,
    seed: int = 0,
    n_draws: int = N_DRAWS,
    moves: np.ndarray | None = None,
) -> MarketModel:
    """Estimate every keyword's market from what `view` can observe (see the module doc). `moves` ([n, 2] log
    moves of demand and cost per click) replaces the history's own fortnight moves that the draws bootstrap
    (market_moves): for measuring other sources of the what-if ranges' market term (bench_advice --moves)."""
    view = default_view(adv) if view is None else View(view)
    h = load_history(adv)
    start, end = adv.history_period
    if not h.keywords:
        return MarketModel(view, {}, [{} for _ in range(n_draws)], {}, h.days.size)
    log = adv.auction_log() if view == View.PLATFORM else None
    obs = auction_observations(h)
    rivals = fit_rivals(h, obs, view, log)
    share_reported = bool(np.isfinite(h.share).any())
    if not share_reported:
        _impression_share_from_auction(h, rivals)
    demand = fit_demand(h)
    _fill_unseen_by_group(h, demand)
    first_day = int(h.days[0])
    public_past = [
        (first_day + (e.start - start).days, first_day + (e.end - start).days, e.name)
        for e in _public_events(adv, start, end)
    ]
    demand.event_lift = event_lifts(h, demand, public_past)
    resp = fit_response(h, rivals)
    decay = float(
        DECAY_GRID @ resp.decay_grid_prob
    )  # posterior mean (flat without positions: the grid's middle)
    drift = _drift(h, demand)
    moves = market_moves(h, demand) if moves is None else np.asarray(moves, dtype=float).reshape(-1, 2)
    future = _future_events(adv, demand, end)
    best = rivals.best()

    def market(
        k: int,
        g: int,
        decay_k: float,
        volume: float,
        ctr: float,
        cvr: float,
        aov: float,
        cann: float,
        mu_shift: float = 0.0,
    ) -> KeywordMarket:
        organic = max(float(resp.organic_rate[k]), 1.5 * cann * ctr * cvr)
        return KeywordMarket.model_construct(
            keyword_id=h.keywords[k].id,
            base_volume=max(volume, 0.0),
            weekly_amp=demand.weekly_amp,
            weekly_phase=demand.weekly_phase,
            yearly_amp=demand.yearly_amp,
            yearly_phase=demand.yearly_phase,
            n_rivals=float(rivals.n_rivals[k, g]),
            rival_bid_mu=float(rivals.mu[k, g] + mu_shift),
            rival_bid_sigma=float(rivals.sigma[k, g]),
            rival_quality_a=float(rivals.qa[k, g]),
            rival_quality_b=float(rivals.qb[k, g]),
            quality=float(rivals.quality[k, g]),
            ctr_top=float(np.clip(ctr, 1e-5, 0.95)),
            position_decay=decay_k,
            cvr=float(np.clip(cvr, 1e-5, 0.95)),
            aov=max(aov, 0.01),
            organic_rate=min(organic, 0.95),
            cannibalization=float(np.clip(cann, 0, 1)),
            n_slots=N_SLOTS,
            reserve=RESERVE,
            events=future,
        )

    cvr_mean = resp.cvr_a / (resp.cvr_a + resp.cvr_b)
    markets = {
        kw.id: market(
            k,
            int(best[k]),
            decay,
            float(demand.base_volume[k]),
            float(resp.ctr_top[k]),
            float(cvr_mean[k]),
            float(resp.aov[k]),
            float(resp.cannibalization[k]),
        )
        for k, kw in enumerate(h.keywords)
    }
    rng = np.random.default_rng([seed, 11])
    draws = []
    for _ in range(n_draws):
        decay_d = float(rng.choice(DECAY_GRID, p=resp.decay_grid_prob))
        # The market's move over the horizon, shared by the advertiser's keywords: one of the fortnight-to-
        # fortnight moves the history itself shows (demand over its seasonal fit and cost per click together,
        # in either direction), a bootstrap of the history's own backtest errors (see market_moves).
        j = int(rng.integers(moves.shape[0]))
        sign = 1.0 if rng.random() < 0.5 else -1.0
        market_move = sign * moves[j]
        # Incrementality's error is shared by a campaign's keywords: their estimates lean on one pooled fit
        # (an account's history barely identifies a keyword's own), so a campaign's incremental sales are as
        # uncertain as that fit. Drawn per keyword independently, a campaign's spread would shrink by
        # sqrt(keywords) and a budget move would look surer than the history makes it (#16: measured on
        # 39 campaigns, the campaign-mean error is 1.1 of this se, 2.5 of the independent draws' spread).
        cann_z = {c: rng.normal() for c in dict.fromkeys(h.campaign_of)}
        draw = {}
        for k, kw in enumerate(h.keywords):
            if kw.id not in markets:
                continue
            g = int(rng.choice(rivals.prob.shape[1], p=rivals.prob[k]))
            # and each keyword's own move, as far as the keywords' last fortnights spread around the market's
            own = rng.normal(0, 1, 2) / math.sqrt(2)
            volume = float(
                demand.base_volume[k]
                * math.exp(rng.normal(0, demand.log_se[k]) + own[0] * drift[0] + market_move[0])
            )
            ctr = float(resp.ctr_top[k] * rng.gamma(resp.ctr_clicks[k] + 1) / (resp.ctr_clicks[k] + 1))
            draw[kw.id] = market(
                k,
                g,
                decay_d,
                volume,
                ctr,
                float(rng.beta(resp.cvr_a[k], resp.cvr_b[k])),
                float(resp.aov[k] + rng.normal(0, resp.aov_se[k])),
                float(
                    resp.cannibalization[k]
                    + resp.cann_se[k]
                    * (
                        math.sqrt(resp.cann_shared[k]) * cann_z[h.campaign_of[k]]
                        + math.sqrt(1 - resp.cann_shared[k]) * rng.normal()
                    )
                ),
                float(own[1] * drift[1] + market_move[1]),
            )
        draws.append(draw)
    terms = fit_terms(adv, h, cvr_mean)
    model = MarketModel(
        view,
        markets,
        draws,
        terms,
        int(h.days.size),
        fit={
            "position_decay": decay,
            "naive_position_decay": naive_position_decay(h),
            "weekly_amp": demand.weekly_amp,
            "yearly_amp": demand.yearly_amp,
            "drift_volume": drift[0],
            "drift_cpc": drift[1],
            "market_move_volume_p90": float(np.quantile(np.abs(moves[:, 0]), 0.9)),
            "market_move_cpc_p90": float(np.quantile(np.abs(moves[:, 1]), 0.9)),
            "impression_share_reported": float(share_reported),
        },
    )
    by_group: dict[str, list[Keyword]] = defaultdict(list)
    for kw in adv.keywords():
        by_group[kw.ad_group_id].append(kw)
    model.keywords_by_group = dict(by_group)
    return model


def _impression_share_from_auction(h: History, rivals: Rivals) -> None:
    """Reports without impression share (imported accounts): each day's share of searches that showed the ad
    is the fitted auction's at that day's bid (times the share of the day its campaign was served)."""
    ki, di = np.nonzero((np.nan_to_num(h.bid) > 0) & (np.nan_to_num(h.impressions) > 0))
    if ki.size == 0:
        return
    t = rivals.terms_at(ki, h.bid[ki, di])
    h.share[ki, di] = np.clip(t.p_impression * h.served[ki, di], 0.02, 1.0)


def _drift(h: History, demand: Demand) -> tuple[float, float]:
    """How far a keyword's demand level and cost per click move in two weeks, from the history itself: the
    robust spread over keywords of the change between the last two fortnights (demand over its seasonal fit;
    cost per click where the bid stayed put). What-if draws move the market by as much over their horizon."""
    n = h.days.size
    if n < 28:
        return 0.1, 0.1
    s, expected = h.searches, demand.expected(h.days)
    last, prev = slice(n - 14, n), slice(n - 28, n - 14)
    vol, cpc = [], []
    for k in range(len(h.keywords)):
        a, b = s[k, last], s[k, prev]
        if np.isfinite(a).sum() >= 10 and np.isfinite(b).sum() >= 10:
            vol.append(math.log(np.nanmean(a / expected[k, last]) / np.nanmean(b / expected[k, prev])))
        bids = h.bid[k, prev.start :]
        clicks_a, clicks_b = np.nansum(h.clicks[k, last]), np.nansum(h.clicks[k, prev])
        if np.all(bids == bids[0]) and bids[0] > 0 and clicks_a >= 20 and clicks_b >= 20:
            cpc.append(
                math.log(np.nansum(h.spend[k, last]) / clicks_a)
                - math.log(np.nansum(h.spend[k, prev]) / clicks_b)
            )

    def spread(x: list[float]) -> float:
        return (
            float(np.clip(1.4826 * np.median(np.abs(np.asarray(x) - np.median(x))), 0.02, 0.5))
            if len(x) >= 3
            else 0.1
        )

    return spread(vol), spread(cpc)


def market_moves(h: History, demand: Demand, horizon: int = 14, step: int = 7) -> np.ndarray:
    """How far the whole market moved from one fortnight to the next, at every origin of the history (a
    backtest of the forecast that the last fortnight's market goes on): [origins, 2] log changes of the
    advertiser's demand over its seasonal fit (calendar events included: the lift of an event the history
    has not seen is a guess) and of its cost per click on keywords whose bid stayed put. What-if draws move
    the market by one of these, in either direction: the history's own evidence of how far a market moves
    over a horizon, which the model's posterior (fit on a market that stands still) does not hold."""
    n = h.days.size
    out = [(0.0, 0.0)]
    if n < 2 * horizon:
        return np.array(out)
    s, expected = h.searches, demand.expected(h.days)
    for t in range(n - (n - 2 * horizon) // step * step, n + 1, step):  # the last origin: the history's end
        last, prev = slice(t - horizon, t), slice(t - 2 * horizon, t - horizon)
        both = np.isfinite(s[:, last]).any(axis=1) & np.isfinite(s[:, prev]).any(axis=1)
        vol = 0.0
        if both.any():
            a, b = s[both][:, last], s[both][:, prev]
            ea = np.where(np.isfinite(a), expected[both][:, last], 0.0).sum()
            eb = np.where(np.isfinite(b), expected[both][:, prev], 0.0).sum()
            if ea > 0 and eb > 0 and np.nansum(a) > 0 and np.nansum(b) > 0:
                vol = math.log((np.nansum(a) / ea) / (np.nansum(b) / eb))
        bids = h.bid[:, prev.start : last.stop]
        still = np.all(bids == bids[:, :1], axis=1) & (np.nan_to_num(bids[:, 0]) > 0)
        cpc = 0.0
        if still.any():
            ca, cb = np.nansum(h.clicks[still][:, last]), np.nansum(h.clicks[still][:, prev])
            sa, sb = np.nansum(h.spend[still][:, last]), np.nansum(h.spend[still][:, prev])
            if ca >= 20 and cb >= 20 and sa > 0 and sb > 0:
                cpc = math.log(sa / ca) - math.log(sb / cb)
        out.append((vol, cpc))
    return np.array(out[1:])


def _fill_unseen_by_group(h: History, demand: Demand) -> None:
    """A keyword never shown (paused or outbid all along) gets its ad group's median level, a long tail's
    third of it."""
    seen = np.isfinite(h.searches).any(axis=1)
    groups = [k.ad_group_id for k in h.keywords]
    for k in np.flatnonzero(~seen):
        peers = [j for j in np.flatnonzero(seen) if groups[j] == groups[k]]
        if peers:
            demand.base_volume[k] = 0.35 * float(np.median(demand.base_volume[peers]))


def _future_events(adv: AdvertiserStore, demand: Demand, end: dt.date) -> list[MarketEvent]:
    """Public calendar events ahead (the simulator's horizon), with the lift seen on past ones: the same
    event's if it happened in the history, else the mean of the events that did."""
    first = adv.world_start
    ahead = [e for e in _public_events(adv, end + dt.timedelta(days=1), end + dt.timedelta(days=120))]
    mean_lift = float(np.mean(list(demand.event_lift.values()))) if demand.event_lift else 1.0
    return [
        MarketEvent(
            name=e.name,
            start=(e.start - first).days,
            end=(e.end - first).days,
            demand_mult=float(np.clip(demand.event_lift.get(e.name, mean_lift), 0.2, 5.0)),
        )
        for e in ahead
    ]
