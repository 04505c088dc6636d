"""The one exception tree every swaysim error belongs to.

A runner under test must be able to tell *swaysim's* complaints (a view
conflict, an injected fault, a bad argument) apart from its own bugs, so
everything raised on purpose derives from :class:`SwaysimError`.
"""

from __future__ import annotations


class SwaysimError(Exception):
    """Base class of every error swaysim raises on purpose."""


class InvalidArgumentError(SwaysimError, ValueError):
    """An argument, plan or configuration value is invalid.

    Raised at construction or call time, before any view is entered, with a
    message naming the argument, its value and what is allowed.
    """


class ViewError(SwaysimError):
    """Base class of misuse of the view contract."""


class ViewConflictError(ViewError):
    """Entering a view would break exclusivity.

    Raised at once under ``exclusivity="strict"`` when another view is live;
    the message names both views and both tasks.
    """


class NestedViewError(ViewConflictError):
    """A task that already holds a view tried to enter another one.

    On an exclusive backend that would deadlock (the task waits for itself),
    so it is an immediate error under every policy.
    """


class StaleViewError(ViewError):
    """A view was used after its ``async with`` block exited."""


class MissingResponseError(SwaysimError, KeyError):
    """The dummy backend has no canned response for the request.

    Also a :class:`KeyError`, as the seed's dummy raised one, so code written
    against the synchronous dummy keeps catching it.
    """

    def __str__(self) -> str:
        # KeyError's str() quotes its argument; this message is a sentence.
        return str(self.args[0]) if self.args else ""
