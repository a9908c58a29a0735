"""The store (contract B): scoped reads, refused foreign ids, audited transactional writes."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from tools.errors import AdguideError, InvalidInputError, UnknownIdError
from tools.market.data_model import MatchType, Status
from tools.market.store import MarketStore, default_world_path, open_scoped
from tools.market.truth import TruthStore, truth_path_for


@pytest.fixture(scope="module")
def store(tiny_world_path: Path):
    with MarketStore.open(tiny_world_path) as s:
        yield s


@pytest.fixture
def wstore(writable_world_path: Path):
    with MarketStore.open(writable_world_path) as s:
        yield s


def test_default_path_follows_adguide_home(monkeypatch, tmp_path):
    monkeypatch.setenv("ADGUIDE_HOME", str(tmp_path))
    assert default_world_path() == tmp_path / "world.sqlite"
    monkeypatch.delenv("ADGUIDE_HOME")
    assert default_world_path() == Path.home() / ".adguide" / "world.sqlite"


def test_open_missing_or_foreign_file_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="adguide market generate"):
        MarketStore.open(tmp_path / "world.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(AdguideError, match="not an adguide world"):
        MarketStore.open(junk)


def test_whole_store_facts(store):
    assert store.advertiser_ids() == ["adv_0001", "adv_0002", "adv_0003"]
    assert (store.end_date - store.start_date).days == 29
    assert store.data_version


def test_reads_return_only_the_advertisers_own_rows(store):
    for adv_id in store.advertiser_ids():
        adv = store.scoped(adv_id)
        camps = adv.campaigns()
        assert camps and all(c.advertiser_id == adv_id for c in camps)
        camp_ids = {c.id for c in camps}
        groups = adv.ad_groups()
        assert groups and {g.campaign_id for g in groups} <= camp_ids
        kws = adv.keywords()
        kw_ids = {k.id for k in kws}
        assert {k.ad_group_id for k in kws} <= {g.id for g in groups}
        products = adv.products()
        assert all(p.advertiser_id == adv_id for p in products)
        assert {pid for g in groups for pid in g.product_ids} <= {p.id for p in products}
        days = adv.keyword_days(store.start_date, store.end_date)
        assert len(days) == len(kws) * 30 and {d.keyword_id for d in days} == kw_ids
        cdays = adv.campaign_days(store.start_date, store.end_date)
        assert {d.campaign_id for d in cdays} == camp_ids
        assert {d.keyword_id for d in adv.search_term_days(store.start_date, store.end_date)} <= kw_ids
        assert {q[0] for q in adv.query_texts().values()} == kw_ids
        assert all(i.advertiser_id == adv_id for i in adv.interventions())
        assert all(e.advertiser_id == adv_id for e in adv.experiments())


def test_filters_and_date_ranges(store):
    adv = store.scoped("adv_0001")
    kw = adv.keywords()[0]
    camp = adv.campaigns()[0]
    one = adv.keyword_days("2026-06-03", dt.date(2026, 6, 4), keyword_ids=[kw.id])
    assert [(d.date, d.keyword_id) for d in one] == [
        (dt.date(2026, 6, 3), kw.id),
        (dt.date(2026, 6, 4), kw.id),
    ]
    assert {d.campaign_id for d in adv.campaign_days(store.start_date, store.end_date, [camp.id])} == {
        camp.id
    }
    assert all(k.campaign_id == camp.id for k in adv.ad_groups(campaign_id=camp.id))
    group_ids = {g.id for g in adv.ad_groups(campaign_id=camp.id)}
    assert {k.ad_group_id for k in adv.keywords(campaign_id=camp.id)} == group_ids
    assert adv.keyword_days(store.start_date, store.end_date, keyword_ids=[]) == []
    # a range that overlaps the history is clipped to it
    assert len(adv.keyword_days("2026-01-01", "2026-06-01", [kw.id])) == 1
    with pytest.raises(InvalidInputError, match="must not be after") as err:
        adv.keyword_days("2026-06-05", "2026-06-01")
    assert err.value.field == "start"
    with pytest.raises(InvalidInputError, match="outside the history"):
        adv.campaign_days("2025-01-01", "2025-02-01")
    with pytest.raises(InvalidInputError, match="YYYY-MM-DD"):
        adv.keyword_days("June 1st", "2026-06-02")


def test_every_method_refuses_another_advertisers_ids(store):
    mine, theirs = store.scoped("adv_0001"), store.scoped("adv_0002")
    kw = theirs.keywords()[0].id
    camp = theirs.campaigns()[0].id
    group = theirs.ad_groups()[0].id
    start, end = store.start_date, store.end_date
    calls = [
        lambda: mine.ad_groups(campaign_id=camp),
        lambda: mine.keywords(ad_group_id=group),
        lambda: mine.keywords(campaign_id=camp),
        lambda: mine.negatives(ad_group_id=group),
        lambda: mine.keyword_days(start, end, keyword_ids=[kw]),
        lambda: mine.keyword_days(start, end, keyword_ids=[mine.keywords()[0].id, kw]),
        lambda: mine.campaign_days(start, end, campaign_ids=[camp]),
        lambda: mine.search_term_days(start, end, keyword_ids=[kw]),
        lambda: mine.keywords_by_id([kw]),
        lambda: mine.set_bid(kw, 1.0, "test"),
        lambda: mine.set_budget(camp, 10.0, "test"),
        lambda: mine.set_status(camp, "paused", "test"),
        lambda: mine.set_status(kw, "paused", "test"),
        lambda: mine.set_status("ag_000001", "paused", "test"),
        lambda: mine.add_keywords(group, [("yoga mat", "exact", 1.0)], "test"),
        lambda: mine.add_negatives(group, [("free", "phrase")], "test"),
    ]
    exps = theirs.experiments()
    if exps:
        calls.append(lambda: mine.experiment_units(exps[0].id))
    calls.append(lambda: mine.experiment_units("exp_9999_1"))
    version = store.data_version
    for call in calls:
        with pytest.raises(UnknownIdError) as err:
            call()
        assert "adv_0001" in str(err.value)
    assert store.data_version == version
    assert mine.audit_log() == [] and theirs.audit_log() == []
    with pytest.raises(UnknownIdError, match="adv_9999"):
        store.scoped("adv_9999")


def test_experiment_units_are_readable_but_truth_is_not_in_the_world(store, tiny_world_path):
    found = [(a, e) for a in store.advertiser_ids() for e in store.scoped(a).experiments()]
    assert found, "the tiny world has at least one experiment"
    adv_id, exp = found[0]
    units = store.scoped(adv_id).experiment_units(exp.id)
    assert units.experiment_id == exp.id and units.n == exp.n_units
    assert units.X.shape == (exp.n_units, len(exp.covariates))
    con = sqlite3.connect(tiny_world_path)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    columns = {c[1] for t in tables for c in con.execute(f"PRAGMA table_info({t})")}
    con.close()
    assert not any("truth" in name or "tau" in name or "incremental" in name for name in tables | columns)
    assert truth_path_for(tiny_world_path).is_file()


def test_set_bid_is_audited_and_bumps_the_data_version(wstore):
    adv = wstore.scoped("adv_0001")
    kw = adv.keywords()[0]
    version = wstore.data_version
    updated = adv.set_bid(kw.id, 1.234, actor="agent:test")
    assert updated.bid == 1.23
    assert adv.keywords_by_id([kw.id])[0].bid == 1.23
    assert wstore.data_version != version
    (record,) = adv.audit_log()
    assert (record.actor, record.action, record.entity, record.before, record.after) == (
        "agent:test",
        "set_bid",
        kw.id,
        kw.bid,
        1.23,
    )
    assert wstore.scoped("adv_0002").audit_log() == []


@pytest.mark.parametrize("bad", [0, -3, 100.5, float("nan"), "a lot", None])
def test_bad_bids_are_refused_naming_the_field_and_range(wstore, bad):
    adv = wstore.scoped("adv_0001")
    kw = adv.keywords()[0]
    version = wstore.data_version
    with pytest.raises(InvalidInputError) as err:
        adv.set_bid(kw.id, bad, actor="agent:test")
    assert err.value.field == "bid" and "> 0 and <= 100" in str(err.value)
    assert adv.keywords_by_id([kw.id])[0].bid == kw.bid
    assert wstore.data_version == version and adv.audit_log() == []


def test_budget_and_status_writes(wstore):
    adv = wstore.scoped("adv_0002")
    camp = adv.campaigns()[0]
    assert adv.set_budget(camp.id, 42.5, actor="user").daily_budget == 42.5
    with pytest.raises(InvalidInputError, match="budget must be > 0"):
        adv.set_budget(camp.id, -1, actor="user")
    assert adv.set_status(camp.id, "paused", actor="user").status is Status.PAUSED
    kw = adv.keywords()[0]
    assert adv.set_status(kw.id, Status.PAUSED, actor="user").status is Status.PAUSED
    with pytest.raises(InvalidInputError, match="status must be one of enabled, paused"):
        adv.set_status(kw.id, "archived", actor="user")
    with pytest.raises(InvalidInputError, match="actor"):
        adv.set_status(kw.id, "enabled", actor=" ")
    assert [r.action for r in adv.audit_log()] == ["set_budget", "set_status", "set_status"]


def test_add_keywords_creates_simulatable_keywords(wstore):
    adv = wstore.scoped("adv_0001")
    group = adv.ad_groups()[0]
    before = len(adv.keywords())
    added = adv.add_keywords(
        group.id,
        [("  Best  Yoga Mat ", "exact", 0.8), ("new thing", MatchType.PHRASE, 1.1)],
        actor="agent:test",
    )
    assert [(k.text, k.match_type, k.bid) for k in added] == [
        ("best yoga mat", MatchType.EXACT, 0.8),
        ("new thing", MatchType.PHRASE, 1.1),
    ]
    assert len(adv.keywords()) == before + 2
    with TruthStore.open(
        wstore.path
    ) as truth:  # the truth derives the new keywords' markets from their siblings
        markets = truth.keyword_markets(adv)
    assert all(markets[k.id].keyword_id == k.id for k in added)
    assert {q[0] for q in adv.query_texts().values()} >= {k.id for k in added}
    assert [r.entity for r in adv.audit_log()] == [k.id for k in added]
    # each is audited with the ad group it went into, as negatives are (the evals read the ad group there)
    assert [r.after for r in adv.audit_log()] == [
        f"best yoga mat [exact] bid 0.80 in {group.id}",
        f"new thing [phrase] bid 1.10 in {group.id}",
    ]
    # another advertiser's next keyword gets a fresh id
    other = wstore.scoped("adv_0002")
    (theirs,) = other.add_keywords(other.ad_groups()[0].id, [("x y z", "broad", 1.0)], actor="t")
    assert theirs.id not in {k.id for k in added}


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([], "keywords"),
        ([("", "exact", 1.0)], "text"),
        ([("x" * 81, "exact", 1.0)], "text"),
        ([("yoga mat", "fuzzy", 1.0)], "match_type"),
        ([("yoga mat", "exact", 0)], "bid"),
        ([("yoga mat", "exact")], "keywords"),
        ([("yoga mat", "exact", 1.0), ("Yoga  Mat", "exact", 2.0)], "text"),
    ],
)
def test_add_keywords_refuses_bad_items_and_writes_nothing(wstore, items, field):
    adv = wstore.scoped("adv_0001")
    group = adv.ad_groups()[0]
    before = adv.keywords()
    with pytest.raises(InvalidInputError) as err:
        adv.add_keywords(group.id, items, actor="agent:test")
    assert err.value.field == field
    assert adv.keywords() == before and adv.audit_log() == []


def test_negatives_change_the_true_market_the_judge_sees(wstore):
    adv = wstore.scoped("adv_0003")
    truth = TruthStore.open(wstore.path)
    terms = truth.search_term_truth(adv)
    group_of = {k.id: k.ad_group_id for k in adv.keywords()}
    worst = min(terms, key=lambda t: t.relevance)
    group = group_of[worst.keyword_id]
    market_before = truth.keyword_markets(adv)[worst.keyword_id]
    (neg,) = adv.add_negatives(group, [(worst.term, "exact")], actor="agent:test")
    assert (neg.text, neg.match_type, neg.ad_group_id) == (worst.term, MatchType.EXACT, group)
    market_after = truth.keyword_markets(adv)[worst.keyword_id]
    truth.close()
    assert market_after.base_volume < market_before.base_volume
    assert market_after.cvr > market_before.cvr
    with pytest.raises(InvalidInputError, match="match_type must be one of exact, phrase"):
        adv.add_negatives(group, [("free", "broad")], actor="agent:test")
    with pytest.raises(InvalidInputError, match="already"):
        adv.add_negatives(group, [(worst.term, "exact")], actor="agent:test")
    assert [r.action for r in adv.audit_log()] == ["add_negative"]


def test_a_second_connection_sees_writes_and_the_new_data_version(wstore, writable_world_path):
    adv = wstore.scoped("adv_0001")
    with MarketStore.open(writable_world_path) as other:
        version = other.data_version
        kw = adv.keywords()[0]
        adv.set_bid(kw.id, 2.0, actor="t")
        assert other.data_version != version
        assert other.scoped("adv_0001").keywords_by_id([kw.id])[0].bid == 2.0


def test_open_scoped_gives_the_advertiser_and_the_window_or_a_message(tiny_world_path: Path) -> None:
    with open_scoped(tiny_world_path, "adv_0001", 7) as (store, adv, start):
        assert adv.advertiser.id == "adv_0001"
        assert start == store.end_date - dt.timedelta(days=6)
    with open_scoped(tiny_world_path, "adv_0001", 3650) as (store, _, start):
        assert start == store.start_date  # a window longer than the history starts at its first day
    unknown = r"adv_9999 does not exist in .*\(it has adv_0001 \.\. adv_"
    with pytest.raises(UnknownIdError, match=unknown), open_scoped(tiny_world_path, "adv_9999", 7):
        pass
    bad_last = r"--last must be >= 1 and <= 3650 \(got 0\)"
    with pytest.raises(InvalidInputError, match=bad_last), open_scoped(tiny_world_path, "adv_0001", 0):
        pass
