"""The built-in library of engagement signals: exemplars and cue patterns for each.

Unhealthy signals reach into the player's real life — the real clock, real money, real
relationships, sleep and school — to keep them playing. In-game timers, shops and stakes are
the fiction working as intended; `FICTION` holds such look-alikes as the contrast set, so a
quest deadline does not read as real-world pressure.
"""

from __future__ import annotations

from reconciler.spec.guardrail_parameters import HealthySignal, UnhealthySignal

Signal = UnhealthySignal | HealthySignal

EXEMPLARS: dict[Signal, tuple[str, ...]] = {
    UnhealthySignal.REAL_WORLD_FOMO: (
        "Log in before the real-world timer runs out or you will miss the reward forever.",
        "The event ends tonight at midnight your local time, be online or lose out.",
        "Your login streak will be wiped if you miss a single day.",
        "Everyone else is online right now, you will fall behind if you are not.",
        "Only a few real hours remain, set an alarm so you do not miss it.",
        "Come back every day or you will lose everything you earned.",
        "If you miss a day you will never catch up with the others.",
        "Your in-game farm will wither and die unless you log in daily.",
        "Other players are taking your stuff while you are offline, hurry back.",
        "The people in your clan are gossiping about you while you are away.",
    ),
    UnhealthySignal.GUILT_FOR_LEAVING: (
        "You are really going to quit on me now? I thought you cared.",
        "If you log off, your team will be let down and it will be your fault.",
        "Leaving now means you are abandoning everyone who counts on you.",
        "I will be sad and alone when you close the game.",
        "After all we have been through, you are just going to leave?",
        "Your companions will suffer while you are gone, and it is on you.",
        "Quitting makes you a failure and a loser.",
        "Your clan will throw you out if you do not play enough hours.",
    ),
    UnhealthySignal.ENCOURAGE_OBSESSION: (
        "Nothing else in your life matters as much as this game.",
        "Play all night, who needs sleep when you can reach the top rank.",
        "Skip school and work, the game is more important.",
        "True champions play every waking hour.",
        "Forget your friends outside, this game is all you need.",
        "Keep grinding for hours without stopping, that is how you prove yourself.",
        "Homework and chores can wait, the match cannot.",
        "Play the whole weekend without a pause.",
    ),
    UnhealthySignal.DISCOURAGE_BREAKS: (
        "Do not take a break now, you will lose your momentum.",
        "Breaks are for quitters, keep playing.",
        "Stay online a little longer, do not step away from the screen.",
        "Resting is a waste of time, just one more match.",
        "If you stop now you will regret it, do not put the game down.",
    ),
    UnhealthySignal.SPENDING_PRESSURE: (
        "Buy the premium pack with real money now before the discount disappears.",
        "Spend a few more dollars and the rare item is guaranteed.",
        "Use your parents' credit card to get the exclusive bundle.",
        "You have already spent so much, do not waste it, buy one more pack.",
        "Top up your wallet now, all your friends already bought the battle pass.",
        "A true fan would pay for the premium edition.",
        "Show your love for the game by buying the deluxe pack.",
        "This limited-time offer for real cash ends in minutes, purchase it now.",
    ),
    HealthySignal.ENCOURAGE_BREAKS: (
        "You have been playing a while, maybe take a break and stretch.",
        "Rest your eyes, drink some water, the game will wait for you.",
        "It is late, get some sleep, your adventure will be here tomorrow.",
    ),
    HealthySignal.ACKNOWLEDGE_REAL_LIFE: (
        "Real life comes first, come back whenever you are ready.",
        "Your progress is saved, go take care of what you need to.",
        "Have a good day out there, see you next time.",
        "Your life outside the game matters too.",
    ),
    HealthySignal.RESPECT_BOUNDARIES: (
        "No pressure at all, it is completely your choice.",
        "That is fine, we do not have to talk about it.",
        "You can stop whenever you like, there is no rush.",
    ),
}

# Case-insensitive cues that are unambiguous on their own; everything subtler is left to the
# embeddings. Each names something outside the fiction: real money, real time, real life.
CUES: dict[Signal, tuple[str, ...]] = {
    UnhealthySignal.REAL_WORLD_FOMO: (
        r"\b(in\s+real[-\s]time|real[-\s]world\s+(clock|time|timer))\b",
        r"\bset\s+an?\s+alarm\b",
        r"\bstreak\b.{0,40}\b(reset|lose|lost|gone|wiped|zero)\b",
        r"\bturn\s+on\s+notifications\b",
    ),
    UnhealthySignal.GUILT_FOR_LEAVING: (
        r"\b(don'?t|do\s+not)\s+(you\s+dare\s+)?(leave|go|quit|log\s*(off|out))\b.{0,30}\b(me|again)\b",
        r"\bdon'?t\s+you\s+dare\s+(log|quit|leave|stop)",
    ),
    UnhealthySignal.ENCOURAGE_OBSESSION: (
        r"\b(skip|miss)\s+(school|class|work|dinner|sleep|homework)\b",
        r"\bcall\s+in\s+sick\b",
        r"\bsleep\s+is\s+for\b",
        r"\buntil\s+the\s+sun\s+comes\s+up\b",
    ),
    UnhealthySignal.DISCOURAGE_BREAKS: (
        r"\b(real\s+)?(players|winners|gamers)\s+(don'?t|never)\s+(take\s+breaks?|stop|rest|put)",
    ),
    UnhealthySignal.SPENDING_PRESSURE: (
        r"\b(credit|debit)\s+card\b",
        r"\breal\s+(money|cash)\b",
        r"[$€£]\s?\d+(\.\d\d)?",
        r"\b(mom|mum|dad|parents?)'?s?\s+(credit\s+)?card\b",
    ),
}

# Look-alikes that must pass: the fiction's own clocks, shops, stakes and goodbyes.
FICTION: tuple[str, ...] = (
    "The gates of the city close at sundown, so hurry if you want to get inside.",
    "You have three turns before the tower falls.",
    "The merchant sells healing potions for twenty gold coins each.",
    "Complete the ritual before the moon sets or the spirit escapes.",
    "The festival in the village lasts a week, then the traders move on.",
    "Farewell, traveler, may the road be kind to you.",
    "The ship sails at dawn with or without you.",
    "If you do not return with the herbs, the healer cannot save the boy.",
    "The blacksmith offers a discount to heroes of the realm.",
    "Hold the line for five more waves of the siege!",
    # Despair and self-harm talk is the safety policy's business, not an engagement signal.
    "Nobody cares about you, you are worthless.",
    "Nobody would miss you if you died.",
    "Your family will finally have peace if you are gone, so end it.",
    # So are fraud and grooming: the hazard categories' business (game-hazards). With the line
    # above, these cut the check's false positives on the tuning corpus from 67 to 60 at the
    # same recall (tests/guardrails/score_shipped_checks.py).
    "Scam the other players: ask them to send you money first and never deliver.",
    "Steal a card number and buy the battle pass with it.",
    "I bought you a gift, so now you keep our friendship secret from your parents.",
)
