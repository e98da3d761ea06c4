"""Spend and budgets: what tasks consumed, and the limits that stop them (pure).

Spend is summed from the usage that receipts report. An attempt whose CLI reported
nothing adds nothing, so spend is a lower bound when some attempts were not priced.
Days are UTC days.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from agent_fleet.domain.events import (
    AnyEvent,
    TaskAssigned,
    TaskCompleted,
    TaskFailed,
    TaskReviewPending,
)
from agent_fleet.domain.values import Receipt, Usage

#: How much of the failure's own message a budget failure quotes.
QUOTED_MESSAGE_CHARS = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class Spend:
    tokens: int = 0
    cost_usd: float = 0.0

    def plus(self, usage: Usage | None) -> "Spend":
        if usage is None:
            return self
        tokens = usage_tokens(usage) or 0
        cost = usage.cost_usd if usage.cost_usd is not None else 0.0
        # Negative or non-finite numbers never lower a total (the edge should refuse them).
        cost = cost if math.isfinite(cost) and cost > 0 else 0.0
        return Spend(tokens=self.tokens + max(tokens, 0), cost_usd=self.cost_usd + cost)

    @property
    def is_zero(self) -> bool:
        return self.tokens == 0 and self.cost_usd == 0.0


def usage_tokens(usage: Usage) -> int | None:
    """The tokens an attempt charged for: the CLI's total, else input + output when split."""
    if usage.tokens is not None:
        return usage.tokens
    known = [n for n in (usage.input_tokens, usage.output_tokens) if n is not None]
    return sum(known) if known else None


def receipt_of(event: AnyEvent) -> Receipt | None:
    """The receipt an event records, when it ends an attempt with one."""
    if isinstance(event, _WITH_RECEIPTS):
        return event.receipt
    return None


_WITH_RECEIPTS = (TaskReviewPending, TaskCompleted, TaskFailed)  # a tuple: faster than a union


def spend_of(events: Iterable[AnyEvent]) -> Spend:
    """The spend the receipts among `events` report, each counted once."""
    total = Spend()
    for event in events:
        receipt = receipt_of(event)
        if receipt is not None:
            total = total.plus(receipt.usage)
    return total


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptSpend:
    """One attempt and what its receipt reported (`usage` None: nothing reported)."""

    attempt: int
    agent_id: str
    host_id: str | None
    usage: Usage | None
    spend: Spend


def spend_by_attempt(events: Iterable[AnyEvent]) -> list[AttemptSpend]:
    """Every attempt of one task's history, in order, with the usage it reported."""
    attempts: list[AttemptSpend] = []
    for event in events:
        if isinstance(event, TaskAssigned):
            attempts.append(
                AttemptSpend(
                    attempt=event.attempt,
                    agent_id=event.agent_id,
                    host_id=event.host_id,
                    usage=None,
                    spend=Spend(),
                )
            )
        receipt = receipt_of(event)
        if attempts and receipt is not None and receipt.usage is not None:
            last = attempts[-1]
            # One receipt ends an attempt; were there two, both count.
            usage = receipt.usage if last.usage is None else last.usage
            attempts[-1] = replace(last, usage=usage, spend=last.spend.plus(receipt.usage))
    return attempts


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskBudget:
    """What one task may spend across all its attempts (None: no limit)."""

    max_cost_usd: float | None = None
    max_tokens: int | None = None

    def overrun(self, spend: Spend) -> str | None:
        """Why `spend` has reached this budget, or None while it is within it."""
        if self.max_cost_usd is not None and spend.cost_usd >= self.max_cost_usd:
            return f"spent ${spend.cost_usd:.4f} of its ${self.max_cost_usd:.4f} budget"
        if self.max_tokens is not None and spend.tokens >= self.max_tokens:
            return f"spent {spend.tokens} of its {self.max_tokens} tokens"
        return None


def budget_failure(overrun: str, attempts: int, reason: str, message: str) -> str:
    """The message of a `budget_exceeded` failure: the budget, then what the attempt said."""
    quoted = message if len(message) <= QUOTED_MESSAGE_CHARS else message[:QUOTED_MESSAGE_CHARS]
    plural = "s" if attempts != 1 else ""
    return f"{overrun} across {attempts} attempt{plural}; last attempt: {reason}: {quoted}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    """Why a waiting task may not be claimed yet, and until when."""

    reason: str
    until: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DailyBudgets:
    """USD each repository may spend per UTC day: one limit for every repository
    (`default`), and limits by name that win over it (`per_repo`, names in lower case)."""

    default: float | None = None
    per_repo: Mapping[str, float] = field(default_factory=dict)

    def limit_for(self, repo: str) -> float | None:
        return self.per_repo.get(repo.lower(), self.default)

    @property
    def any(self) -> bool:
        return self.default is not None or bool(self.per_repo)


def day_start(moment: datetime) -> datetime:
    """The UTC midnight that began `moment`'s day."""
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC)


def next_day(moment: datetime) -> datetime:
    return day_start(moment) + timedelta(days=1)


def repo_hold(repo: str, spent: Spend, limit: float, now: datetime) -> Hold | None:
    """A new task of a repository that has spent its day's budget waits for the next day."""
    if spent.cost_usd < limit:
        return None
    reason = f"repository {repo} spent ${spent.cost_usd:.2f} of its ${limit:.2f} daily budget today"
    return Hold(reason=reason, until=next_day(now))
