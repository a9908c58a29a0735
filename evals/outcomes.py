"""Advice quality by simulated outcome: what following the agent's recommendation would earn, against the best
change an oracle finds by searching the simulator.

The judge keeps the truth: both sides run on the true markets (truth.sqlite, which the advisor's tools never read:
they run on a market model estimated from the reports) of the world variant where the case runs (the shifted
market's moves included), on the simulator's exact
expected values (`n_sims=0`, no Monte Carlo noise) over the first `HORIZON_DAYS` future days, each change
in its campaign (the campaign's keywords share its budget). The gain of a change is its incremental profit
(incremental sales x margin - spend) minus the status quo's. The oracle searches a grid:

- best_bid: bids of one keyword, 0.05 to 3x the highest value per click (and multiples of today's bid), or
  pausing it;
- best_single_bid: the same for every live keyword, the best one;
- best_single_budget: 0.5x to 4x the daily budget of every live campaign, or pausing it, the best one;
- best_single_change: the better of the two.

Pausing is in the grids because the agent can propose it: a keyword or campaign that loses money at every
bid or budget is best stopped, and an oracle without that move would be beaten by advice it cannot rank.

The objective is the advertiser's incremental profit whatever the user's words: for "lower my ACoS" the
teacher only proposes bid cuts (which do not raise ACoS) and picks the most profitable; for "should I raise a
budget" it proposes the most profitable budget move, a cut where cutting earns more than any raise, and
says so (agent/expert.py).

The score is gain / oracle gain, clipped to [-1, 1]; when the oracle finds nothing worth more than EPS
dollars, keeping things as they are scores 1 and a losing change scores below 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from evals.scenario import OracleKind
from tools.auction.simulate import market_arrays, simulate_days
from tools.market.data_model import Campaign, Keyword, KeywordMarket, Status
from tools.market.store import AdvertiserStore, MarketStore
from tools.market.truth import TruthStore

HORIZON_DAYS = 14
EPS = 1.0  # dollars over the horizon: below this a gain is noise-free but not worth a change
BID_MULTIPLES = (0.5, 0.8, 1.2, 1.5, 2.0)
BUDGET_MULTIPLES = (0.5, 0.75, 0.9, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0)
GRID_POINTS = 40


class Change(BaseModel):
    action: str  # set_bid | set_budget | pause | enable | add_keywords | add_negatives
    entity: str
    value: float | None = None


class AdviceScore(BaseModel):
    oracle: str
    gain: float | None  # None: the change can't be simulated (new keywords, negatives)
    oracle_gain: float
    oracle_change: Change | None
    fraction: float | None
    change: Change | None


@dataclass
class Account:
    """One advertiser as the simulator sees it today."""

    days: np.ndarray
    keywords: dict[str, Keyword]
    campaign_of: dict[str, str]
    markets: dict[str, KeywordMarket]
    margins: dict[str, float]
    campaigns: dict[str, Campaign]
    by_campaign: dict[str, list[str]] = field(default_factory=dict)
    _base: dict[str, float] = field(default_factory=dict)

    def live(self, keyword_id: str) -> bool:
        kw = self.keywords[keyword_id]
        return (
            kw.status == Status.ENABLED
            and self.campaigns[self.campaign_of[keyword_id]].status == Status.ENABLED
        )

    def bids(self, campaign_id: str) -> np.ndarray:
        return np.array(
            [self.keywords[k].bid if self.live(k) else 0.0 for k in self.by_campaign[campaign_id]]
        )

    def profits(self, campaign_id: str, bids: np.ndarray, budgets: np.ndarray) -> np.ndarray:
        """Expected incremental profit of the campaign over the horizon for G settings at once: bids [G, K]
        and budgets [G]. Days are independent in the simulator (pacing is per day), so the G settings run
        as G x D rows of one call."""
        kws = self.by_campaign[campaign_id]
        g = bids.shape[0]
        if not kws:
            return np.zeros(g)
        n_days = self.days.size
        res = simulate_days(
            market_arrays([self.markets[k] for k in kws]),
            np.repeat(bids, n_days, axis=0),
            np.zeros(len(kws), dtype=np.int64),
            np.repeat(budgets, n_days)[:, None],
            np.tile(self.days, g),
            seed=0,
            expected=True,
        )
        margins = np.array([self.margins[k] for k in kws])
        per_row = (res.incremental_sales * margins - res.spend).sum(axis=1)
        return per_row.reshape(g, n_days).sum(axis=1)

    def profit(self, campaign_id: str, bids: np.ndarray, budget: float) -> float:
        return float(self.profits(campaign_id, bids[None, :], np.array([budget]))[0])

    def base(self, campaign_id: str) -> float:
        if campaign_id not in self._base:
            self._base[campaign_id] = self.profit(
                campaign_id, self.bids(campaign_id), self.campaigns[campaign_id].daily_budget
            )
        return self._base[campaign_id]


def account_on(adv: AdvertiserStore, markets: dict[str, KeywordMarket], days: np.ndarray) -> Account:
    """The advertiser's current bids, budgets and margins on the given markets (the truth's, or a model's)."""
    groups = {g.id: g for g in adv.ad_groups()}
    products = {p.id: p for p in adv.products()}
    keywords = {k.id: k for k in adv.keywords()}
    campaigns = {c.id: c for c in adv.campaigns()}
    default_margin = float(np.mean([p.margin for p in products.values()])) if products else 0.3
    margins = {}
    for k in keywords.values():
        ms = [products[p].margin for p in groups[k.ad_group_id].product_ids if p in products]
        margins[k.id] = float(np.mean(ms)) if ms else default_margin
    campaign_of = {k.id: groups[k.ad_group_id].campaign_id for k in keywords.values()}
    by_campaign: dict[str, list[str]] = {c: [] for c in campaigns}
    for kw_id in keywords:
        if kw_id in markets:
            by_campaign[campaign_of[kw_id]].append(kw_id)
    return Account(days, keywords, campaign_of, markets, margins, campaigns, by_campaign)


def load_account(path: Path, advertiser_id: str) -> Account:
    """The advertiser as the truth sees it today: its current bids, budgets and negatives (world file) on the
    true markets (truth file, which the advisor's tools never read)."""
    with MarketStore.open(path) as store, TruthStore.open(path) as truth:
        adv = store.scoped(advertiser_id)
        return account_on(adv, truth.keyword_markets(adv), np.arange(store.days, store.days + HORIZON_DAYS))


def change_gain(acct: Account, change: Change) -> float | None:
    """Expected incremental profit of the change minus the status quo's, over the horizon."""
    if change.action == "set_bid" and change.entity in acct.keywords and change.value is not None:
        cmp = acct.campaign_of[change.entity]
        if change.entity not in acct.markets or not acct.live(change.entity):
            return 0.0  # a bid on a paused keyword changes nothing until it is enabled
        bids = acct.bids(cmp)
        bids[acct.by_campaign[cmp].index(change.entity)] = change.value
        return acct.profit(cmp, bids, acct.campaigns[cmp].daily_budget) - acct.base(cmp)
    if change.action == "set_budget" and change.entity in acct.campaigns and change.value is not None:
        return acct.profit(change.entity, acct.bids(change.entity), change.value) - acct.base(change.entity)
    if change.action in ("pause", "enable"):
        if change.entity in acct.campaigns:
            cmp = change.entity
            if change.action == "pause":
                bids = np.zeros(len(acct.by_campaign[cmp]))
            else:
                bids = np.array(
                    [
                        acct.keywords[k].bid if acct.keywords[k].status == Status.ENABLED else 0.0
                        for k in acct.by_campaign[cmp]
                    ]
                )
        elif change.entity in acct.keywords and change.entity in acct.markets:
            cmp = acct.campaign_of[change.entity]
            if acct.campaigns[cmp].status != Status.ENABLED:
                return 0.0
            bids = acct.bids(cmp)
            i = acct.by_campaign[cmp].index(change.entity)
            bids[i] = 0.0 if change.action == "pause" else acct.keywords[change.entity].bid
        else:
            return None
        return acct.profit(cmp, bids, acct.campaigns[cmp].daily_budget) - acct.base(cmp)
    return None


def _bid_grid(acct: Account, keyword_id: str) -> np.ndarray:
    m = acct.markets[keyword_id]
    bid = acct.keywords[keyword_id].bid
    top = max(3.0 * m.cvr * m.aov, 2.0 * bid, 0.1)
    grid = np.concatenate([np.geomspace(0.05, top, GRID_POINTS), bid * np.array(BID_MULTIPLES)])
    return np.concatenate([[0.0], np.unique(np.round(grid[(grid >= 0.05) & (grid <= 100)], 2))])  # 0: pause


def _change(action: str, entity: str, value: float) -> Change:
    """A grid point as the agent would propose it: 0 is pausing."""
    return (
        Change(action="pause", entity=entity)
        if value == 0
        else Change(action=action, entity=entity, value=value)
    )


def _best_bid(acct: Account, keyword_id: str) -> tuple[float, Change | None]:
    """The best bid of one live keyword in its campaign (one simulator call for the whole grid)."""
    cmp = acct.campaign_of[keyword_id]
    grid = _bid_grid(acct, keyword_id)
    bids = np.tile(acct.bids(cmp), (grid.size, 1))
    bids[:, acct.by_campaign[cmp].index(keyword_id)] = grid
    gains = acct.profits(cmp, bids, np.full(grid.size, acct.campaigns[cmp].daily_budget)) - acct.base(cmp)
    i = int(np.argmax(gains))
    return (float(gains[i]), _change("set_bid", keyword_id, float(grid[i]))) if gains[i] > 0 else (0.0, None)


def _best_budget(acct: Account, campaign_id: str) -> tuple[float, Change | None]:
    budgets = np.round(
        acct.campaigns[campaign_id].daily_budget * np.array((0.0, *BUDGET_MULTIPLES)), 2
    )  # 0: pause
    bids = np.tile(acct.bids(campaign_id), (budgets.size, 1))
    gains = acct.profits(campaign_id, bids, budgets) - acct.base(campaign_id)
    i = int(np.argmax(gains))
    return (
        (float(gains[i]), _change("set_budget", campaign_id, float(budgets[i])))
        if gains[i] > 0
        else (0.0, None)
    )


def oracle(acct: Account, kind: OracleKind, keyword: str | None = None) -> tuple[float, Change | None]:
    """The best gain (>= 0: keeping things as they are is always allowed) and the change that earns it."""
    if kind == OracleKind.BEST_BID:
        if keyword is None or keyword not in acct.markets or not acct.live(keyword):
            return 0.0, None
        return _best_bid(acct, keyword)
    found: list[tuple[float, Change | None]] = [(0.0, None)]
    if kind in (OracleKind.BEST_SINGLE_BID, OracleKind.BEST_SINGLE_CHANGE):
        found += [_best_bid(acct, k) for k in acct.keywords if k in acct.markets and acct.live(k)]
    if kind in (OracleKind.BEST_SINGLE_BUDGET, OracleKind.BEST_SINGLE_CHANGE):
        found += [
            _best_budget(acct, c)
            for c, camp in acct.campaigns.items()
            if camp.status == Status.ENABLED and acct.by_campaign[c]
        ]
    return max(found, key=lambda x: x[0])


def fraction(gain: float, oracle_gain: float) -> float:
    if oracle_gain <= EPS:
        return 1.0 if gain >= -EPS else float(np.clip(gain / max(EPS, abs(oracle_gain)), -1.0, 0.0))
    return float(np.clip(gain / oracle_gain, -1.0, 1.0))


class OutcomeJudge:
    """Scores advice per (world variant, advertiser); oracle searches are cached (they are the slow part)."""

    def __init__(self) -> None:
        self._accounts: dict[tuple[Path, str], Account] = {}
        self._oracles: dict[tuple[Path, str, str, str | None], tuple[float, Change | None]] = {}

    def account(self, path: Path, advertiser_id: str) -> Account:
        key = (path, advertiser_id)
        if key not in self._accounts:
            self._accounts[key] = load_account(path, advertiser_id)
        return self._accounts[key]

    def score(
        self,
        path: Path,
        advertiser_id: str,
        kind: OracleKind,
        change: Change | None,
        keyword: str | None = None,
    ) -> AdviceScore:
        acct = self.account(path, advertiser_id)
        key = (path, advertiser_id, kind.value, keyword)
        if key not in self._oracles:
            self._oracles[key] = oracle(acct, kind, keyword)
        best_gain, best = self._oracles[key]
        gain = 0.0 if change is None else change_gain(acct, change)
        return AdviceScore(
            oracle=kind.value,
            gain=gain,
            oracle_gain=best_gain,
            oracle_change=best,
            fraction=None if gain is None else fraction(gain, best_gain),
            change=change,
        )
