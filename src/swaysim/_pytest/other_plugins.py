"""Sharing a session with pytest-asyncio, pytest-trio and anyio's auto mode.

Each of those plugins claims coroutine tests for its own loop: the ones
carrying its mark, or, in its automatic mode (``asyncio_mode = "auto"``,
``trio_mode = true``, ``anyio_mode = "auto"``), every one. pytest-asyncio
turns such a test into an item of its own class that runs it on an asyncio
loop in real time; pytest-trio marks it ``trio`` and swaps its function for
a ``trio.run`` call. Left alone, either would run a swaysim-marked test on
its loop, in real time, and pass.

So a coroutine test whose closest async mark is ``swaysim`` is swaysim's
(:func:`claim`): after collection it becomes a :class:`SwaysimFunction`,
which hides the ``asyncio`` and ``trio`` marks those plugins look for (an
automatic mode's, or one on the class or module), and its async fixtures
go to anyio's runner before any other plugin sees them
(:func:`async_fixture_on_anyio`). A test marked both ``swaysim`` and
``asyncio`` or ``trio`` at the same level is a conflict: it fails at setup
with one line. Anything else that takes a swaysim item from anyio is caught
when the test is called (:func:`taken_over`).
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

    from _pytest.nodes import Node

MARKER: Final = "swaysim"
# The marks of the other plugins that run coroutine tests on their own loops,
# with the plugin and the setting that keeps it from claiming unmarked tests.
OTHER_MARKS: Final = {
    "asyncio": ("pytest-asyncio", "asyncio_mode = strict"),
    "trio": ("pytest-trio", "trio_mode = false"),
}


@dataclass(frozen=True)
class Claim:
    """swaysim's closest mark on a coroutine test, and another plugin's mark on the same level."""

    mark: pytest.Mark
    rival: str | None = None
    on_the_test: bool = True

    def conflict(self, name: str) -> str | None:
        """Why the test ``name`` cannot run, in one line, or None if it can."""
        if self.rival is None:
            return None
        plugin = OTHER_MARKS[self.rival][0]
        where = "the test itself" if self.on_the_test else "its class or module"
        return (
            f"@pytest.mark.{MARKER}: {name} is also marked @pytest.mark.{self.rival} on {where}, "
            f"so {plugin} would run it on its own loop: keep one of the two marks (swaysim's "
            "mark on a test overrides another plugin's mark on its class or module)"
        )


def _mark_depth(
    collector: pytest.Collector, obj: object, name: str
) -> tuple[int, pytest.Mark] | None:
    """How far from the test the closest ``name`` mark is (0: on the function itself)."""
    for mark in getattr(obj, "pytestmark", ()):
        if mark.name == name:
            return 0, mark
    for depth, node in enumerate(collector.iter_parents(), start=1):
        for mark in node.own_markers:
            if mark.name == name:
                return depth, mark
    return None


def _is_coroutine_test(obj: object) -> bool:
    """Whether a test function is an ``async def`` (also under ``@hypothesis.given``)."""
    hypothesis = getattr(obj, "hypothesis", None)
    return inspect.iscoroutinefunction(getattr(hypothesis, "inner_test", obj))


def claim(collector: pytest.Collector, obj: object) -> Claim | None:
    """swaysim's claim on the test function ``obj`` collected by ``collector``, if any.

    The closest mark wins: ``swaysim`` on a test beats ``asyncio`` or ``trio``
    on its class or module, and loses to one on the test when its own is
    further out; two on the same level are a conflict. The plugins'
    automatic modes are no marks: swaysim's mark always beats them.
    """
    if not _is_coroutine_test(obj):
        return None
    own = _mark_depth(collector, obj, MARKER)
    if own is None:
        return None
    depth, mark = own
    for rival in OTHER_MARKS:
        found = _mark_depth(collector, obj, rival)
        if found is None or found[0] > depth:
            continue
        if found[0] < depth:
            return None
        return Claim(mark, rival, on_the_test=depth == 0)
    return Claim(mark)


class SwaysimFunction(pytest.Function):
    """A coroutine test swaysim runs through anyio on its own loop and clock.

    The ``asyncio`` and ``trio`` marks are invisible to it, so pytest-asyncio
    and pytest-trio leave it alone.
    """

    conflict: str | None = None

    def iter_markers_with_node(self, name: str | None = None) -> Iterator[tuple[Node, pytest.Mark]]:
        for node, mark in super().iter_markers_with_node(name):
            if mark.name not in OTHER_MARKS:
                yield node, mark


def take_over(item: pytest.Function, found: Claim) -> SwaysimFunction:
    """``item`` as a plain :class:`SwaysimFunction`, whatever class another plugin gave it."""
    keywords = {key: value for key, value in item.keywords.items() if key not in OTHER_MARKS}
    taken = SwaysimFunction.from_parent(
        item.parent,
        name=item.name,
        callspec=getattr(item, "callspec", None),
        callobj=item.obj,
        fixtureinfo=item._fixtureinfo,
        keywords=keywords,
        originalname=item.originalname,
    )
    taken.own_markers = [mark for mark in item.own_markers if mark.name not in OTHER_MARKS]
    taken.conflict = found.conflict(item.name)
    return taken


def _defined_in(func: object) -> str:
    """The module whose code ``func`` is, even under ``functools.wraps`` (which copies
    the ``__module__`` of what it wraps)."""
    defined: object = getattr(func, "__globals__", {}).get("__name__")
    if not isinstance(defined, str):
        defined = getattr(func, "__module__", None)
    return defined if isinstance(defined, str) else "an unknown module"


def plugin_of(obj: object) -> str:
    """The distribution whose code ``obj`` is (``pytest-trio``), or its module's name."""
    from importlib.metadata import packages_distributions

    module = _defined_in(obj)
    top = module.partition(".")[0]
    names = packages_distributions().get(top)
    return names[0] if names else module


def _setting_of(plugin: str) -> str:
    for name, setting in OTHER_MARKS.values():
        if name == plugin:
            return f"set {setting}"
    return "turn off its handling of unmarked async tests"


def taken_over(item: pytest.Function, replacement: object) -> str:
    """The one-line failure for a swaysim test another plugin swapped for its own runner."""
    plugin = plugin_of(replacement)
    return (
        f"@pytest.mark.{MARKER}: {plugin} replaced {item.name} with its own runner before "
        f"swaysim could run it on its loop and clock; in {plugin}'s configuration, "
        f"{_setting_of(plugin)}, or keep swaysim-marked tests out of its reach"
    )


def _sync_wrapper_of_async(func: Any) -> Any:
    """The async fixture a plugin's synchronous wrapper ``func`` runs, or None.

    pytest-asyncio 0.x wraps async fixtures at collection, once for the whole
    session (1.x does it at setup, where swaysim's hook comes first).
    """
    if not _defined_in(func).startswith("pytest_asyncio."):
        return None
    inner = inspect.unwrap(func)
    if inner is func or not _is_async(inner):
        return None
    return inner


def registered_anyio_plugin(config: pytest.Config) -> ModuleType | None:
    """anyio's pytest plugin, if this session runs it (``-p no:anyio`` turns it off)."""
    from anyio import pytest_plugin

    return pytest_plugin if config.pluginmanager.is_registered(pytest_plugin) else None


def _is_async(func: object) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


@contextlib.contextmanager
def async_fixture_on_anyio(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Iterator[None]:
    """Hand an async fixture of a swaysim test to anyio's runner before other plugins see it.

    anyio's own ``pytest_fixture_setup`` wrapper does the handing; called
    here first, it turns the fixture into a synchronous one that
    pytest-asyncio (auto mode) and pytest-trio (trio mode) then ignore,
    whichever order the plugins were registered in. pytest-asyncio 0.x
    replaced async fixtures with its wrappers during collection: for a
    swaysim test, the function it wraps goes to anyio instead, with the
    arguments that function takes. pytest-trio's ``trio_fixture`` (its
    ``nursery`` too) only works inside pytest-trio's runner: a one-line failure.
    """
    func = fixturedef.func
    if getattr(func, "_force_trio_fixture", False):
        pytest.fail(
            f"@pytest.mark.{MARKER}: fixture {fixturedef.argname!r} is a pytest-trio "
            "trio_fixture, which only pytest-trio's own trio.run can set up; give "
            f"{request.node.name} a plain async @pytest.fixture instead (swaysim runs it on "
            "the test's loop)",
            pytrace=False,
        )
    wrapped = _sync_wrapper_of_async(func)
    anyio_plugin = registered_anyio_plugin(request.config)
    if not _is_async(func if wrapped is None else wrapped) or anyio_plugin is None:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        if wrapped is not None:
            accepted = inspect.signature(wrapped).parameters
            kept = tuple(name for name in fixturedef.argnames if name in accepted)
            patch.setattr(fixturedef, "func", wrapped)
            patch.setattr(fixturedef, "argnames", kept)
        anyio_hook = anyio_plugin.pytest_fixture_setup(fixturedef, request)
        next(anyio_hook)
        try:
            yield
        finally:
            anyio_hook.close()
