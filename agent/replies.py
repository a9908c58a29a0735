"""Replies to a waiting proposal, read by their words: a plain yes, a plain no, or a word that makes a reply anything
but a yes. The graph reads short replies by these phrases first; the embedded backend's model and router read the
rest, and a reply holding a word of no is never a yes."""

from __future__ import annotations

import re

_YES = re.compile(
    r"^\W*(yes|yep|yeah|yea|ya|yup|ok|okay|k|kk|sure|confirm(ed)?|go ahead|do it|apply( it)?|approved?|"
    r"sounds good|let'?s do it|please do|go for it)\b[\w\s,!.']{0,40}$",
    re.I,
)
_NO_WORDS = r"no|nope|nah|cancel|don'?t|do not|stop|never ?mind|leave it|reject(ed)?|hold off|scrap (it|that)"
_NO = re.compile(rf"^\W*({_NO_WORDS})\b[\w\s,!.']{{0,40}}$", re.I)


_LEAD_IN = re.compile(r"^\W*(please|pls|plz|kindly|actually|hmm+|um+|well)\b[\s,]*", re.I)
# Words that make a reply anything but a plain yes (the no-words, and a few that only hold it back): a model's
# "confirm" of a reply holding one is not acted on
# ("I decline this change for now" was once applied: the model and the router both read it as a yes)
_VETO = re.compile(
    rf"\b({_NO_WORDS}|cancel\w*|reject\w*|declin\w*|refus\w*|den(y|ied)|pass(ing)? on|skip\w*|scrap|rather not|"
    r"not (now|yet|today|sure|convinced|right now)|won'?t|shouldn'?t|wait|hold on|undo|revert|instead|"
    r"forget it|second thoughts?|changed? my mind)\b",
    re.I,
)


# Words of assent: a reply that starts with a yes is a plain yes only when nothing else follows
_ASSENT = frozenset(
    {
        "yes",
        "yep",
        "yeah",
        "yea",
        "ya",
        "yup",
        "ok",
        "okay",
        "k",
        "kk",
        "sure",
        "confirm",
        "confirmed",
        "go",
        "ahead",
        "do",
        "it",
        "apply",
        "applied",
        "approve",
        "approved",
        "sounds",
        "good",
        "great",
        "fine",
        "perfect",
        "right",
        "looks",
        "that",
        "that's",
        "it's",
        "this",
        "is",
        "please",
        "pls",
        "plz",
        "thanks",
        "thank",
        "you",
        "thx",
        "now",
        "then",
        "and",
        "let's",
        "lets",
        "for",
        "the",
        "change",
        "go-ahead",
        "with",
        "all",
        "set",
        "cool",
        "alright",
        "proceed",
        "i",
        "agree",
        "me",
        "by",
        "works",
        "love",
        # what a chat reply carries beside its yes: laughter, praise, haste, a friendly word ("ok ok do it lol")
        "lol",
        "haha",
        "hehe",
        "yay",
        "nice",
        "awesome",
        "excellent",
        "just",
        "asap",
        "quick",
        "quickly",
        "mate",
        "buddy",
        "ty",
        "cheers",
        "totally",
        "definitely",
        "absolutely",
    }
)


def phrase_decision(message: str) -> str | None:
    """Short replies that plainly confirm or reject ("yes, go ahead", "please cancel the proposed change");
    anything else moves on."""
    text = _LEAD_IN.sub("", message.strip())
    if "?" in text or len(text) > 60:
        return None
    if _YES.match(text) and not _VETO.search(text):
        # only words of assent may follow: "ok now show me my keywords" is a new request, not a yes
        return "confirm" if set(re.findall(r"[a-z']+", text.lower())) <= _ASSENT else None
    return "reject" if _NO.match(text) else None


def vetoed(message: str) -> bool:
    """Whether a reply holds a word that makes it anything but a plain yes ("cancel", "don't", "wait")."""
    return _VETO.search(message) is not None
