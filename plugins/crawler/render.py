"""Rendering pages in headless Chromium, for pages drawn by JavaScript.

One :class:`Renderer` per worker process owns a thread that runs an asyncio loop, Playwright, one Chromium
and a small pool of browser contexts. A job's thread calls :meth:`Renderer.render` and waits for the
rendered DOM; up to ``contexts`` pages render at once, the rest wait for a context.

The browser reaches nothing by itself. Its main document is the body the crawler has already fetched (so
robots.txt, redirects, the status code and politeness are the plain crawl's), and every request the page
then makes is intercepted and handed to the caller's ``fetch`` (:class:`SubRequest` in,
:class:`SubResponse` out), which fetches it through the core's outbound policy in a thread of the
renderer. What is not intercepted cannot leave either: Chromium is started with a proxy that does not
exist and a host resolver that resolves nothing, WebSockets are answered by nobody, service workers are
blocked, navigations away from the page, pop-ups, frames' documents, images, media and fonts (unless
asked for) are refused.

A page is done when ``wait_for`` is in its DOM, or else when the network and the DOM have both been quiet
for ``quiet`` seconds, as the renderer sees its requests and as the page counts its own ``fetch()`` and
XHR calls (a page whose scripts keep fetching runs into its timeout, which says so). Contexts
(each with one page) are reused, emptied and their cookies cleared between pages, and replaced after
``recycle_pages`` pages or a failure; a browser
that crashed or was killed is started again for the next page, and the pages it was rendering fail with
a retryable :class:`RenderError`.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Playwright is the optional ``browser`` extra: imported when the first page renders
    from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route

#: Executables looked for on PATH when no ``browser_path`` is set: the headless shell first (Chromium's
#: headless-only build, what Playwright itself runs headless: about half the CPU and memory per page of the
#: full browser run headless), then the full browser.
BROWSER_NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable",
                 "chrome")
#: Chromium's flags: headless without a sandbox of its own (containers), nothing phoned home, and no way out
#: but our interception: a proxy nobody listens on (loopback included) and a resolver that finds no host.
BROWSER_ARGS = (
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
    "--disable-extensions", "--mute-audio", "--disable-back-forward-cache",
    # The full browser run headless still makes two renderers per context for its address bar's pop-up.
    "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup",
    "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--host-resolver-rules=MAP * ~NOTFOUND",
)
#: Resource types a page may load without being asked to; ``render_resources`` adds to them.
LOADED_TYPES = frozenset({"document", "script", "stylesheet", "xhr", "fetch", "other"})
#: Resource types ``render_resources`` may add.
OPTIONAL_TYPES = ("image", "media", "font")
LAUNCH_TIMEOUT = 30.0
CLOSE_TIMEOUT = 5.0
#: Runs before the page's own scripts: counts the page's fetch() and XHR calls until they end, and records
#: when the DOM or those requests last changed. The page's count has no delay, where the intercepted
#: requests reach the renderer some time after a script made them (on a busy machine, longer than the
#: quiet time), so a page is not taken for quiet between its script's fetch() and the request's arrival.
ACTIVITY_SCRIPT = """(() => {
  const w = window;
  w.__quaeroPending = 0;
  w.__quaeroChanged = performance.now();
  const touch = () => { w.__quaeroChanged = performance.now(); };
  const fetch = w.fetch;
  if (fetch) {
    w.fetch = function (...args) {
      w.__quaeroPending++; touch();
      return fetch.apply(this, args).finally(() => { w.__quaeroPending--; touch(); });
    };
  }
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (...args) {
    w.__quaeroPending++; touch();
    this.addEventListener("loadend", () => { w.__quaeroPending--; touch(); }, {once: true});
    return send.apply(this, args);
  };
  new MutationObserver(touch)
    .observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
})();"""
#: The page's requests in flight, and milliseconds since the DOM or a request last changed.
PAGE_ACTIVITY = "[window.__quaeroPending || 0, performance.now() - (window.__quaeroChanged || 0)]"
#: How often the quiet test looks at a page whose network is busy (seconds).
BUSY_POLL = 0.05


class RenderError(Exception):
    """A page could not be rendered; ``retryable`` when trying again may succeed (the browser crashed)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class BrowserMissing(RenderError):
    """Playwright or Chromium is not installed (or ``browser_path`` is wrong): no page can be rendered."""


class Refused(Exception):
    """Raised by a ``fetch`` to refuse a sub-request; the message is what the page's log says."""


@dataclass(frozen=True)
class SubRequest:
    """A request the page made: what the caller's ``fetch`` is asked to get."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    resource_type: str


@dataclass(frozen=True)
class SubResponse:
    """What the page is given for a :class:`SubRequest`."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class RenderRequest:
    """One page to render: its fetched main document and how to fetch the rest."""

    url: str
    body: bytes
    content_type: str
    fetch: Callable[[SubRequest], SubResponse]
    timeout: float
    quiet: float = 0.2
    wait_for: str | None = None
    resources: frozenset[str] = frozenset()


@dataclass
class Rendered:
    """The rendered DOM, and what the page asked for on the way."""

    html: str
    fetched: int = 0
    refused: list[str] = field(default_factory=list)
    blocked: int = 0
    seconds: float = 0.0


def find_browser(configured: str | None) -> str:
    """The Chromium executable: ``configured`` (a path, or a name on PATH), else the first of
    :data:`BROWSER_NAMES` on PATH; :class:`BrowserMissing` naming what to do when there is none."""
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise BrowserMissing(f"browser_path {configured!r} is not an executable: set [plugins.crawler] "
                                 f"browser_path (or QUAERO_PLUGIN_CRAWLER_BROWSER_PATH) to Chromium's path")
        return found
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    raise BrowserMissing("rendering pages needs Chromium, and none was found on PATH: install it (for example "
                         "apt-get install chromium) or set [plugins.crawler] browser_path")


class _Page:
    """The bookkeeping of one page while it renders: its requests in flight, when the network was last
    busy, and what was fetched, refused or blocked."""

    def __init__(self, request: RenderRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.loop = loop
        self.in_flight = 0
        self.last_activity = loop.time()
        self.served_main = False
        self.fetched = 0
        self.blocked = 0
        self.refused: list[str] = []
        self.busy_urls: list[str] = []

    def started(self, url: str) -> None:
        self.in_flight += 1
        self.last_activity = self.loop.time()
        self.busy_urls = [*self.busy_urls[-2:], url]

    def ended(self) -> None:
        self.in_flight -= 1
        self.last_activity = self.loop.time()


@dataclass
class _Context:
    """A browser context of the pool, with the one page it renders in."""

    context: BrowserContext
    browser: Browser
    page: Page
    pages: int = 0
    broken: bool = False


class Renderer:
    """Chromium for one worker process (see the module's docstring); thread-safe, started on first use."""

    def __init__(self, *, browser_path: str | None = None, contexts: int = 4, recycle_pages: int = 10) -> None:
        self.browser_path = browser_path
        self.contexts = contexts
        self.recycle_pages = recycle_pages
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._fetchers = concurrent.futures.ThreadPoolExecutor(max_workers=4 * contexts,
                                                               thread_name_prefix="render-fetch")
        # Made in the loop's thread, which is the only one to touch them:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._launching: asyncio.Lock | None = None
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[_Context] = []
        self._pages: dict[Page, _Page] = {}
        self.launches = 0

    # ---- the caller's side (any thread) -------------------------------------------------------------------

    def render(self, request: RenderRequest, *, cancelled: Callable[[], bool]) -> Rendered:
        """Render one page; :class:`RenderError` when it cannot be. Returns as soon as ``cancelled()`` is true
        (within a tenth of a second), with :class:`RenderError` (the caller raises its cancellation)."""
        loop = self._started()
        future = asyncio.run_coroutine_threadsafe(self._render(request), loop)
        while True:
            try:
                return future.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                if cancelled():
                    future.cancel()
                    raise RenderError("cancelled while rendering") from None
            except concurrent.futures.CancelledError:
                raise RenderError("cancelled while rendering") from None

    def close(self) -> None:
        """Close the browser and stop the loop (also at the process's exit)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=CLOSE_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=CLOSE_TIMEOUT)
        self._fetchers.shutdown(wait=False, cancel_futures=True)

    def browser_pid(self) -> int | None:
        """The process id of the running Chromium, if any (for tests and diagnostics)."""
        loop = self._loop
        if loop is None:
            return None
        return asyncio.run_coroutine_threadsafe(self._browser_pid(), loop).result(timeout=CLOSE_TIMEOUT)

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                try:
                    import playwright.async_api  # noqa: F401  (fail here, with the fix, not in the loop)
                except ImportError:
                    raise BrowserMissing("rendering pages needs Playwright: pip install 'quaero[browser]'") from None
                find_browser(self.browser_path)
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(target=self._run, args=(loop, ready), name="renderer", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
                atexit.register(self.close)
            return self._loop

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        self._launching = asyncio.Lock()
        self._slots = asyncio.Semaphore(self.contexts)
        loop.call_soon(ready.set)
        loop.run_forever()
        loop.close()

    # ---- the loop's side ----------------------------------------------------------------------------------

    async def _render(self, request: RenderRequest) -> Rendered:
        assert self._slots is not None
        await self._slots.acquire()
        holder: _Context | None = None
        state = _Page(request, asyncio.get_running_loop())
        try:
            holder = await self._context()
            started = time.monotonic()  # the page's time starts when a context is ready: not while Chromium starts
            page = holder.page
            self._pages[page] = state
            try:
                remaining = request.timeout - (time.monotonic() - started)
                await page.goto(request.url, wait_until="load", timeout=max(remaining, 0.001) * 1000)
                await self._settle(page, state, started)
                html = await page.content()
            except (RenderError, asyncio.CancelledError):
                holder.broken = True  # it may still be busy with this page: a fresh one for the next
                raise
            except Exception as exc:  # Playwright's errors: a timeout, a crashed page or browser
                holder.broken = True
                raise self._failure(exc, state, holder) from None
            finally:
                self._pages.pop(page, None)
        finally:
            # The context is made ready for the next page after this one's answer has gone (the slot is
            # taken until then).
            asyncio.ensure_future(self._give_back(holder))
        return Rendered(html, fetched=state.fetched, refused=state.refused, blocked=state.blocked,
                        seconds=time.monotonic() - started)

    def _failure(self, exc: Exception, state: _Page, holder: _Context) -> RenderError:
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not holder.browser.is_connected():
            return RenderError(f"the browser closed while rendering: {message}", retryable=True)
        if isinstance(exc, PlaywrightTimeout):
            return self._timeout(state)
        # A crashed renderer ("Target crashed", "Page closed"): a new page may well succeed.
        return RenderError(f"rendering failed: {message}", retryable=True)

    @staticmethod
    def _timeout(state: _Page) -> RenderError:
        request = state.request
        if request.wait_for:
            return RenderError(f"{request.wait_for!r} did not appear within render_timeout ({request.timeout:g} s): "
                               f"check the selector, or raise render_timeout")
        busy = f"{state.in_flight} request(s) in flight" if state.in_flight else "the network never went quiet"
        last = f" (last: {', '.join(state.busy_urls)})" if state.busy_urls else ""
        return RenderError(f"the page did not go quiet within render_timeout ({request.timeout:g} s): {busy}{last}; "
                           f"name a selector that marks its content with wait_for, or raise render_timeout")

    async def _settle(self, page: Page, state: _Page, started: float) -> None:
        """Wait for ``wait_for``, or for the network and the DOM to be quiet; :class:`RenderError` past the
        page's timeout."""
        request = state.request
        deadline = started + request.timeout
        if request.wait_for:
            remaining = deadline - time.monotonic()
            await page.wait_for_selector(request.wait_for, state="attached", timeout=max(remaining, 0.001) * 1000)
            return
        loop = asyncio.get_running_loop()
        while True:
            pause = BUSY_POLL
            if state.in_flight == 0:
                quiet_for = loop.time() - state.last_activity
                if quiet_for >= request.quiet:
                    pending, unchanged_ms = await page.evaluate(PAGE_ACTIVITY)
                    unchanged_for = float(unchanged_ms) / 1000
                    if not pending and unchanged_for >= request.quiet and state.in_flight == 0:
                        return
                    pause = BUSY_POLL if pending else request.quiet - min(unchanged_for, request.quiet)
                else:
                    pause = request.quiet - quiet_for
            if time.monotonic() + max(pause, 0.0) > deadline:
                raise self._timeout(state)
            await asyncio.sleep(max(pause, 0.005))

    async def _route(self, route: Route) -> None:
        """Every request of every page: the main document from the crawler's body, the rest fetched by the
        page's ``fetch`` or refused."""
        request = route.request
        try:
            page: Page | None = request.frame.page
        except Exception:  # a service worker's request has no frame (they are blocked anyway)
            page = None
        state = self._pages.get(page) if page is not None else None
        if page is None or state is None:  # a pop-up, or a page that is closing
            await route.abort("blockedbyclient")
            return
        kind = request.resource_type
        if kind == "document":
            # The first navigation of the page's main frame is the page (Chromium may spell its URL otherwise).
            if state.served_main or request.frame != page.main_frame:
                state.blocked += 1  # a navigation away, or a frame's document
                await route.abort("blockedbyclient")
                return
            state.served_main = True
            await route.fulfill(status=200, headers={"content-type": state.request.content_type},
                                body=state.request.body)
            return
        if kind not in LOADED_TYPES and kind not in state.request.resources:
            state.blocked += 1
            await route.abort("blockedbyclient")
            return
        state.started(request.url)
        try:
            sub = SubRequest(request.method, request.url, await request.all_headers(), request.post_data_buffer, kind)
            loop = asyncio.get_running_loop()
            try:
                response = await loop.run_in_executor(self._fetchers, state.request.fetch, sub)
            except Refused as exc:
                state.refused.append(str(exc))
                await route.abort("blockedbyclient")
                return
            except Exception:  # the network failed: the page sees a failed request, as in a browser
                await route.abort("failed")
                return
            state.fetched += 1
            await route.fulfill(status=response.status, headers=response.headers, body=response.body)
        except Exception:  # the page went away meanwhile
            pass
        finally:
            state.ended()

    async def _context(self) -> _Context:
        browser = await self._running_browser()
        while self._idle:
            holder = self._idle.pop()
            if holder.browser is browser and browser.is_connected():
                return holder
        context = await browser.new_context(service_workers="block", accept_downloads=False,
                                            viewport={"width": 1280, "height": 1024})
        try:
            await context.add_init_script(ACTIVITY_SCRIPT)
            await context.route("**/*", self._route)
            await context.route_web_socket("**/*", lambda socket: None)  # answered by nobody: never connected
            page = await context.new_page()
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.dismiss()))
        except BaseException:
            with contextlib.suppress(Exception):
                await context.close()
            raise
        return _Context(context, browser, page)

    async def _give_back(self, holder: _Context | None) -> None:
        """Make a context ready for its next page (or close it: broken, or done its pages), then free its slot."""
        assert self._slots is not None
        try:
            if holder is None:
                return
            holder.pages += 1
            if not holder.broken and holder.pages < self.recycle_pages and holder.browser.is_connected():
                try:
                    # Nothing of the page stays: its scripts stop, pop-ups close, cookies go.
                    await holder.page.goto("about:blank")
                    for other in holder.context.pages:
                        if other != holder.page:
                            await other.close()
                    await holder.context.clear_cookies()
                    self._idle.append(holder)
                    return
                except Exception:
                    pass
            with contextlib.suppress(Exception):
                await holder.context.close()
        finally:
            self._slots.release()

    async def _running_browser(self) -> Browser:
        assert self._launching is not None
        async with self._launching:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            from playwright.async_api import async_playwright

            executable = find_browser(self.browser_path)
            try:
                if self._playwright is None:
                    self._playwright = await async_playwright().start()
                self._browser = await self._playwright.chromium.launch(
                    executable_path=executable, args=list(BROWSER_ARGS), timeout=LAUNCH_TIMEOUT * 1000,
                    handle_sigint=False, handle_sigterm=False, handle_sighup=False)
            except Exception as exc:
                # Playwright's own driver may be what died: the next page starts it again too.
                playwright, self._playwright = self._playwright, None
                with contextlib.suppress(Exception):
                    if playwright is not None:
                        await playwright.stop()
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise RenderError(f"Chromium ({executable}) could not be started: {first}", retryable=True) from None
            self.launches += 1
            self._idle.clear()
            return self._browser

    async def _browser_pid(self) -> int | None:
        browser = self._browser
        if browser is None or not browser.is_connected():
            return None
        session = await browser.new_browser_cdp_session()
        try:
            info: Any = await session.send("SystemInfo.getProcessInfo")
        finally:
            await session.detach()
        return next((int(p["id"]) for p in info.get("processInfo", []) if p.get("type") == "browser"), None)

    async def _shutdown(self) -> None:
        with contextlib.suppress(Exception):
            if self._browser is not None:
                await self._browser.close()
        with contextlib.suppress(Exception):
            if self._playwright is not None:
                await self._playwright.stop()
        self._browser = self._playwright = None
