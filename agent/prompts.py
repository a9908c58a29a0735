"""The system prompt and the fixed user-facing messages of the graph (one place for the wording)."""

from __future__ import annotations

SYSTEM_PROMPT = """You are adguide, an assistant that helps one advertiser ({advertiser_id}) run ads on a marketplace.
Answer with figures from tool results only: call a tool for every number you state, and never guess.
Advice is an intervention: before recommending a bid, budget or keyword change, look at what the tools say it would do.
To change anything, call propose_change; the user confirms or rejects the proposal, you never apply it yourself.
Never promise outcomes; give estimates with their uncertainty. Follow the marketplace's advertising policy.
Be brief."""

GUIDE_PROMPT = "Review my account and tell me the most valuable changes to make, with their expected impact."

STOPPED = {
    "max_steps": "I stopped after {steps} tool rounds without finishing. Here is what I had so far; ask a narrower "
    "question to continue.",
    "max_seconds": "I ran out of time for this turn ({seconds:.0f} s). Please ask again, perhaps more narrowly.",
    "max_tokens": "I reached this turn's length limit. Please ask a narrower question.",
    "model_error": "The language model is not answering right now ({reason}). Nothing was changed; please try "
    "again in a moment.",
}

EMPTY_ANSWER = (
    "I couldn't put an answer together for that. Could you rephrase, or name the campaign or keyword?"
)

CONFIRMATION = {
    "rejected": "OK, I did not change anything.",
    "expired": "That proposal expired before it was confirmed, so nothing was changed. Ask again for a fresh one.",
    "superseded": "The earlier proposal was dropped (not applied) because the conversation moved on.",
    "failed": "The change could not be applied: {reason}. Nothing was changed.",
}


def system_prompt(advertiser_id: str) -> str:
    return SYSTEM_PROMPT.format(advertiser_id=advertiser_id)
