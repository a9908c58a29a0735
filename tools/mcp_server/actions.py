"""Write actions in two steps: propose (dry-run diff + simulated impact + token) and apply (needs the token).

A proposal lives in a process-wide registry for `PROPOSAL_TTL_S` seconds, bound to the advertiser
and store it was made for, so a later session of the same process (the chat server opens one per
turn) can apply it. Apply checks every value still equals its `before` (else: propose again), skips
changes already in place, and remembers the token, so applying twice changes nothing the second
time. Every write goes through the store, one transaction each, with an audit record.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tools.errors import AdguideError, InvalidInputError, check_range
from tools.market.data_model import MatchType, Status
from tools.mcp_server.context import ToolContext, check_member
from tools.mcp_server.results import new_value
from tools.mcp_server.schemas import Action, ApplyIn, ApplyOut, Change, Impact, ProposeIn, ProposeOut

PROPOSAL_TTL_S = 600
MAX_BID = 100.0
MAX_BUDGET = 1_000_000.0


class ConfirmationError(AdguideError):
    """A missing, expired, foreign or stale confirmation token."""


@dataclass
class Proposal:
    token: str
    store_key: str
    advertiser_id: str
    action: Action
    target: str
    changes: list[Change]
    expires_at: float
    applied: ApplyOut | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_registry: dict[str, Proposal] = {}
_registry_lock = threading.Lock()


def _remember(p: Proposal) -> None:
    now = time.time()
    with _registry_lock:
        for token in [t for t, old in _registry.items() if old.expires_at < now - PROPOSAL_TTL_S]:
            del _registry[token]  # applied tokens are kept one more TTL so a retry still sees them
        _registry[p.token] = p


def _no_value(args: ProposeIn) -> None:
    if args.value is not None:
        raise InvalidInputError(
            f"value is not used by {args.action.value}",
            field="value",
            allowed="only with set_bid or set_budget",
        )


def _need_keywords(args: ProposeIn) -> list[Any]:
    if not args.keywords:
        raise InvalidInputError(
            f"{args.action.value} needs keywords", field="keywords", allowed="1 to 50 {text, match_type}"
        )
    return args.keywords


def with_absolute_value(ctx: ToolContext, args: ProposeIn) -> ProposeIn:
    """A relative change ("a fifth less", "20 cents less") as the value it means today; unknown ids are left for
    plan_changes."""
    if args.relative_change is None and args.change_by is None:
        return args
    if args.action == Action.SET_BID:
        current = {k.id: k.bid for k in ctx.adv.keywords()}.get(args.id)
    else:
        current = {c.id: c.daily_budget for c in ctx.adv.campaigns()}.get(args.id)
    if current is None:
        return args  # plan_changes reports the unknown id
    return args.model_copy(
        update={"relative_change": None, "change_by": None, "value": new_value(current, args)}
    )


def plan_changes(ctx: ToolContext, args: ProposeIn) -> list[Change]:
    """The diff a proposal would write, validated against the advertiser's current state."""
    adv, me = ctx.adv, ctx.advertiser_id
    value = 0.0
    if args.action in (Action.SET_BID, Action.SET_BUDGET):
        if args.relative_change is not None or args.change_by is not None:
            own = (
                {k.id for k in adv.keywords()}
                if args.action == Action.SET_BID
                else {c.id for c in adv.campaigns()}
            )
            check_member("keyword" if args.action == Action.SET_BID else "campaign", args.id, own, me, "id")
            args = with_absolute_value(ctx, args)
        if args.value is None:
            raise InvalidInputError(
                f"{args.action.value} needs value",
                field="value",
                allowed="a number > 0, or relative_change or change_by",
            )
        if args.keywords:
            raise InvalidInputError("keywords are only for add_*", field="keywords", allowed="leave out")
        value = float(args.value)
    else:
        _no_value(args)
    if args.action == Action.SET_BID:
        kws = {k.id: k for k in adv.keywords()}
        check_member("keyword", args.id, set(kws), me, "id")
        check_range("value", value, gt=0, le=MAX_BID)
        return [
            Change(
                id=args.id,
                field="bid",
                before=kws[args.id].bid,
                after=round(value, 2),
                name=kws[args.id].text,
            )
        ]
    if args.action == Action.SET_BUDGET:
        camps = {c.id: c for c in adv.campaigns()}
        check_member("campaign", args.id, set(camps), me, "id")
        check_range("value", value, gt=0, le=MAX_BUDGET)
        return [
            Change(
                id=args.id,
                field="daily_budget",
                before=camps[args.id].daily_budget,
                after=round(value, 2),
                name=camps[args.id].name,
            )
        ]
    if args.action in (Action.PAUSE, Action.ENABLE):
        if args.keywords:
            raise InvalidInputError("keywords are only for add_*", field="keywords", allowed="leave out")
        status = Status.PAUSED if args.action == Action.PAUSE else Status.ENABLED
        entities: dict[str, Any] = {c.id: c for c in adv.campaigns()} | {k.id: k for k in adv.keywords()}
        check_member("campaign or keyword", args.id, set(entities), me, "id")
        current = entities[args.id].status
        if current == status:
            raise InvalidInputError(
                f"{args.id} is already {status.value}", field="action", allowed="the other status"
            )
        entity = entities[args.id]
        return [
            Change(
                id=args.id,
                field="status",
                before=current.value,
                after=status.value,
                name=getattr(entity, "name", None) or getattr(entity, "text", None),
            )
        ]
    # add_keywords / add_negatives
    wanted = _need_keywords(args)
    groups = {g.id: g for g in adv.ad_groups()}
    check_member("ad group", args.id, set(groups), me, "id")
    if args.action == Action.ADD_KEYWORDS:
        existing = {(k.text.lower(), k.match_type) for k in adv.keywords(ad_group_id=args.id)}
        default_bid = groups[args.id].default_bid
        new = []
        for kw in wanted:
            if (kw.text.lower(), kw.match_type) in existing:
                continue
            existing.add((kw.text.lower(), kw.match_type))
            bid = round(kw.bid if kw.bid is not None else default_bid, 2)
            new.append({"text": kw.text, "match_type": kw.match_type.value, "bid": bid})
        field_name = "keyword"
    else:
        existing = {(n.text.lower(), n.match_type) for n in adv.negatives(ad_group_id=args.id)}
        new = []
        for kw in wanted:
            if kw.bid is not None:
                raise InvalidInputError("negatives take no bid", field="keywords.bid", allowed="leave out")
            if (kw.text.lower(), kw.match_type) not in existing:
                existing.add((kw.text.lower(), kw.match_type))
                new.append({"text": kw.text, "match_type": kw.match_type.value})
        field_name = "negative"
    if not new:
        raise InvalidInputError(
            f"every keyword given is already in ad group {args.id}", field="keywords", allowed="new keywords"
        )
    return [
        Change(id=args.id, field=field_name, before=None, after=item, name=groups[args.id].name)
        for item in new
    ]


def propose(ctx: ToolContext, args: ProposeIn, store_key: str, impact: Impact | None) -> ProposeOut:
    changes = plan_changes(ctx, args)
    token = "cf_" + secrets.token_hex(5)
    _remember(
        Proposal(
            token=token,
            store_key=store_key,
            advertiser_id=ctx.advertiser_id,
            action=args.action,
            target=args.id,
            changes=changes,
            expires_at=time.time() + PROPOSAL_TTL_S,
        )
    )
    return ProposeOut(
        token=token,
        expires_in_s=PROPOSAL_TTL_S,
        action=args.action,
        changes=changes,
        impact=impact,
        note="Nothing changed yet. Show this to the user; call apply_change with the token only after they confirm.",
    )


def _current(ctx: ToolContext, change: Change) -> Any:
    adv = ctx.adv
    if change.field == "bid":
        return next(k.bid for k in adv.keywords() if k.id == change.id)
    if change.field == "daily_budget":
        return next(c.daily_budget for c in adv.campaigns() if c.id == change.id)
    if change.field == "status":
        entities: dict[str, Any] = {c.id: c for c in adv.campaigns()} | {k.id: k for k in adv.keywords()}
        return entities[change.id].status.value
    if change.field == "keyword":
        present = {(k.text.lower(), k.match_type.value) for k in adv.keywords(ad_group_id=change.id)}
    else:
        present = {(n.text.lower(), n.match_type.value) for n in adv.negatives(ad_group_id=change.id)}
    key = (change.after["text"].lower(), change.after["match_type"])
    return change.after if key in present else None


def apply(ctx: ToolContext, args: ApplyIn, store_key: str) -> ApplyOut:
    with _registry_lock:
        p = _registry.get(args.token)
    if p is None or p.advertiser_id != ctx.advertiser_id or p.store_key != store_key:
        raise ConfirmationError(
            "unknown or expired token: call propose_change again",
            field="token",
            allowed="a token from propose_change",
        )
    with p.lock:
        if p.applied is not None:
            return p.applied.model_copy(update={"already_applied": True})
        if time.time() > p.expires_at:
            raise ConfirmationError(
                "the token has expired: call propose_change again", field="token", allowed="a fresh token"
            )
        todo = []
        for change in p.changes:
            now = _current(ctx, change)
            if now == change.after:
                continue  # already in place (applied by someone else, or a retry)
            if now != change.before:
                raise ConfirmationError(
                    f"{change.id} {change.field} is now {now!r}, not {change.before!r} as proposed: propose again",
                    field="token",
                    allowed="a token from a fresh propose_change",
                )
            todo.append(change)
        seen = {r.id for r in ctx.adv.audit_log()}
        _write(ctx, p, todo)
        audit = [
            r.model_dump(mode="json", exclude={"advertiser_id"})
            for r in ctx.adv.audit_log()
            if r.id not in seen
        ]
        p.applied = ApplyOut(applied=bool(todo), already_applied=not todo, changes=todo, audit=audit)
        return p.applied


def _write(ctx: ToolContext, p: Proposal, todo: list[Change]) -> None:
    if not todo:
        return
    adv, actor = ctx.adv, ctx.actor
    if p.action == Action.SET_BID:
        adv.set_bid(p.target, todo[0].after, actor)
    elif p.action == Action.SET_BUDGET:
        adv.set_budget(p.target, todo[0].after, actor)
    elif p.action in (Action.PAUSE, Action.ENABLE):
        adv.set_status(p.target, Status(todo[0].after), actor)
    elif p.action == Action.ADD_KEYWORDS:
        adv.add_keywords(
            p.target,
            [(c.after["text"], MatchType(c.after["match_type"]), c.after["bid"]) for c in todo],
            actor,
        )
    else:
        adv.add_negatives(
            p.target, [(c.after["text"], MatchType(c.after["match_type"])) for c in todo], actor
        )


def apply_change(ctx: ToolContext, args: ApplyIn) -> ApplyOut:
    """The apply_change tool."""
    return apply(ctx, args, str(ctx.store_key))
