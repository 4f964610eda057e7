"""Browser tests of the web interface: a live server and a Chromium page driven by Playwright.

A pytest plugin (``tests/conftest.py`` lists it in ``pytest_plugins``) with two fixtures:

``live_server``
    A fresh instance in the test's ``tmp_path`` with two accounts (``admin``, an admin, and
    ``alice``, a user; both with :data:`PASSWORD`), served by :class:`ServerThread` on a free port
    with the scheduler running, stopped at the end. A :class:`LiveServer`.
``browser_page``
    A Playwright page (sync API) of a fresh browser context, 1400x900, in the session's Chromium.
    ``browser_page.shot("login")`` saves ``test-artifacts/screenshots/<test>-01-login.png`` under
    the repository root; when the test fails, a last ``<test>-failure.png`` (with the page's HTML
    and the browser console beside it) is saved too.

Chromium is the system's (Debian package ``chromium``, installed by ``scripts/test-services.sh``),
never Playwright's own download: ``CRYOWEAVE_CHROMIUM`` names another binary. The browser tests
are skipped when ``CRYOWEAVE_TEST_BROWSER=0``, and skipped with the reason when Chromium or the
``playwright`` package is missing, except in CI (``CI=true``), where that fails them.

Example
-------
>>> def test_home(live_server, browser_page):  # doctest: +SKIP
...     browser_page.goto(live_server.url + "/")
...     browser_page.shot("home")
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: The repository root; screenshots go under it, in test-artifacts/ (ignored by git).
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "test-artifacts" / "screenshots"

DEFAULT_CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 900}
#: Playwright's own download cannot work on these machines; the system's Chromium runs with these.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: How long a Playwright action or wait may take before the test fails (ms).
ACTION_TIMEOUT_MS = 10_000

PASSWORD = "a long enough password"
ADMIN = "admin"
USER = "alice"

_reports = pytest.StashKey[dict[str, pytest.TestReport]]()


def chromium_path() -> str:
    return os.environ.get("CRYOWEAVE_CHROMIUM", DEFAULT_CHROMIUM)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    path = chromium_path()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return (f"Chromium not found at {path}: run `bash scripts/test-services.sh` (installs the Debian "
                "package chromium as root), set CRYOWEAVE_CHROMIUM, or skip with CRYOWEAVE_TEST_BROWSER=0")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        return f"the Python package playwright is missing ({err}): pip install -e '.[test]'"
    return None


# -- the live server --------------------------------------------------------------------------


@dataclass
class LiveServer:
    """A served instance: its URL, the :class:`~cryoweave.api.Instance`, and its two accounts."""

    url: str
    instance: Any
    projects_dir: Path
    server: Any
    admin: str = ADMIN
    user: str = USER
    password: str = PASSWORD


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A fresh instance with an admin and a user, served with its scheduler on a free port."""
    from cryoweave.api import Instance
    from cryoweave.server.serve import ServerThread
    from cryoweave.store import accounts

    inst = Instance(home=tmp_path / "home")
    accounts.add_user(inst.store, ADMIN, PASSWORD, "admin")
    accounts.add_user(inst.store, USER, PASSWORD, "user")
    projects_dir = tmp_path / "projects"
    projects_dir.mkdir()
    server = ServerThread(inst, port=0, projects_dir=projects_dir).start()
    try:
        yield LiveServer(url=server.url, instance=inst, projects_dir=projects_dir, server=server)
    finally:
        server.stop()
        inst.close()


# -- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """The session's Chromium (Playwright ``Browser``), launched at first use."""
    if os.environ.get("CRYOWEAVE_TEST_BROWSER", "1") == "0":
        pytest.skip("CRYOWEAVE_TEST_BROWSER=0 excludes the browser tests")
    if reason := browser_missing():
        if in_ci():
            pytest.fail(f"cannot run the browser tests in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=LAUNCH_ARGS)
        except Exception as exc:
            error = exc
        else:
            error = None
        if error is not None:  # failed outside the except block, so the report shows the reason once
            pytest.fail(f"cannot start Chromium ({chromium_path()}): {error}\n"
                        "(CRYOWEAVE_TEST_BROWSER=0 skips the browser tests)", pytrace=False)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Shots:
    """Numbered screenshots of one test: ``<test>-01-<step>.png``, ``<test>-02-<step>.png``..."""

    page: Any
    test_name: str
    count: int = 0
    taken: list[Path] = field(default_factory=list)

    def __call__(self, step: str, *, full_page: bool = False) -> Path:
        self.count += 1
        path = SCREENSHOT_DIR / f"{self.test_name}-{self.count:02d}-{_safe(step)}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path)
        return path


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "step"


@pytest.fixture
def browser_page(request: pytest.FixtureRequest, chromium: Any) -> Iterator[Any]:
    """A page of a fresh browser context (1400x900); ``page.shot(step)`` saves a screenshot.

    ``page.console`` lists the browser's console messages and page errors, ``page.shot.taken``
    the screenshots saved so far.
    """
    test_name = _safe(request.node.name)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOT_DIR.glob(f"{test_name}-*"):  # the last run's pictures of this test
        old.unlink()
    context = chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"console.{msg.type}: {msg.text}"))
    page.on("pageerror", lambda err: console.append(f"pageerror: {err}"))
    page.on("requestfailed", lambda req: console.append(f"requestfailed: {req.method} {req.url} {req.failure}"))
    page.on("response", lambda resp: resp.status >= 400 and console.append(
        f"http {resp.status}: {resp.request.method} {resp.url}"))
    page.shot = Shots(page, test_name)
    page.console = console
    try:
        yield page
    finally:
        report = request.node.stash.get(_reports, {}).get("call")
        if report is not None and report.failed:
            _save_failure(page, test_name, console)
        context.close()


def _save_failure(page: Any, test_name: str, console: list[str]) -> None:
    base = SCREENSHOT_DIR / f"{test_name}-failure"
    try:
        page.screenshot(path=f"{base}.png", full_page=True)
        Path(f"{base}.html").write_text(page.content())
    except Exception as exc:  # a crashed page must not hide the test's own failure
        console.append(f"(no failure screenshot: {exc})")
    Path(f"{base}-console.log").write_text("\n".join([f"url: {page.url}", *console]) + "\n")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the item, so that ``browser_page`` knows whether the test failed."""
    report = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


# -- helpers of the walkthroughs ----------------------------------------------------------------


def sel(name: str) -> str:
    """A CSS selector for ``data-testid=name`` (names hold dots, so quoted)."""
    return f'[data-testid="{name}"]'


def hook(page: Any, name: str, *, timeout_ms: int = ACTION_TIMEOUT_MS) -> Any:
    """The (first) element with ``data-testid=name``, once visible; a missing hook fails naming it."""
    from playwright.sync_api import Error as PlaywrightError

    locator = page.locator(sel(name)).first
    try:
        locator.wait_for(state="visible", timeout=timeout_ms)
    except PlaywrightError:
        pytest.fail(f"the page shows no element data-testid={name!r} within {timeout_ms / 1000:g} s "
                    f"(at {page.url}; docs/server.md lists the hooks)", pytrace=False)
    return locator


def log_in(page: Any, server: LiveServer, username: str | None = None) -> None:
    """Log in through the form at ``#/login``."""
    page.goto(server.url + "/#/login")
    hook(page, "login-username").fill(username or server.admin)
    hook(page, "login-password").fill(server.password)
    hook(page, "login-submit").click()
    hook(page, "logout")
