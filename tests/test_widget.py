"""The chat widget (``api/static/widget.js``) and its demo page (``GET /``), driven by Playwright
in Debian's headless Chromium against a real uvicorn server.

The server indexes the three real SQuAD 2.0 Wikipedia articles of the conftest; questions are
real SQuAD-style questions whose answering paragraph was checked by running the pipeline. The
card's own question needs the seed article, which is not in this checkout: its test runs only
when ``data/`` holds it.

Needs ``pip install playwright`` and ``apt-get install chromium`` (never ``playwright install``):
the tests skip without them, except under CI, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from test_api_support import (
    ADMIN_TOKEN,
    REPO,
    REPO_DATA,
    LiveServer,
    prepare_dirs,
)

from api.schemas import CARD_QUESTION
from api.web import CONTENT_SECURITY_POLICY
from rag.load import load_data_dir
from rag.settings import Settings
from rag.types import Document

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000  # an answer on a loaded 2-CPU machine; expect() returns as soon as it holds
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

NORMANS_QUESTION = "Who were the Normans?"
NORMANS_ANSWER = (  # two sentences: the cross-encoder reads the pair as the better answer
    "The Normans (Norman: Nourmands; French: Normands; Latin: Normanni) were the people who in "
    "the 10th and 11th centuries gave their name to Normandy, a region in France. They were "
    'descended from Norse ("Norman" comes from "Norseman") raiders and pirates from Denmark, '
    "Iceland and Norway who, under their leader Rollo, agreed to swear fealty to King Charles "
    "III of West Francia."
)
HERVE_QUESTION = "When did Herve serve as a Byzantine general?"
HERVE_ANSWER = "One of the first Norman mercenaries to serve as a Byzantine general was Hervé"
#: A follow-up that only makes sense after the first question (alone, the service abstains).
PRESIDING_QUESTION = "Who is the current Presiding Officer of the Scottish Parliament?"
FOLLOW_UP = "And what is she responsible for?"
FOLLOW_UP_ANSWER = "the Presiding Officer is responsible for ensuring that the Parliament"
OFF_TOPIC = "How do I change a flat tyre on a bicycle?"
ABSTENTION = "The article doesn't say"

#: An article that tries to inject markup, with astral characters before and inside its answer.
HOSTILE_ID = "hostile-test"
HOSTILE_ANSWER = (
    "The lighthouse keeper said the storm of 1987 <script>window.__pwned = 1</script> destroyed "
    "the old wooden pier of Quillbury 🌊 in a single night."
)
HOSTILE_TEXT = (
    "Harbour notes 🎉🐟 from Quillbury, by the harbour master 🐙.\n\n"
    f"{HOSTILE_ANSWER}\n\n"
    'Readers sent pictures <img src=x onerror="window.__pwned = 2"> of the new stone pier and a '
    'link <a href="javascript:window.__pwned = 3">javascript:window.__pwned = 3</a> to the town '
    "archive.\n"
)
HOSTILE_META = {
    "title": 'Quillbury <img src=x onerror="window.__pwned = 4">',
    "author": "<b>The harbour master</b>",
    "url": "javascript:window.__pwned = 5",
}
HOSTILE_QUESTION = "What destroyed the old pier of Quillbury?"

#: Records CSP violations (wherever they happen, shadow roots included) before any page script.
WATCH_SCRIPT = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
}, true);
"""

# ------------------------------------------------------------------------------ fixtures


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason, allow_module_level=True)


try:
    from playwright.sync_api import (
        Browser,
        Locator,
        Page,
        Playwright,
        Route,
        expect,
        sync_playwright,
    )
except ImportError:  # pragma: no cover - depends on the machine
    _missing("playwright is not installed: pip install playwright")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    squad_data_dir: Path,
    squad_settings: Settings,
    squad_corpus: object,
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("widget")
    data, index = prepare_dirs(root, squad_data_dir, squad_settings.index_dir)
    srv = LiveServer(
        root,
        data,
        index,
        settings={"RAG_ADMIN_TOKEN": ADMIN_TOKEN, "RAG_ASK_RATE_LIMIT": "10000/minute"},
        keep_port=True,
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        _missing(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        yield launch(pw)


def launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


@dataclass
class Tab:
    """A page in a fresh browser context, and what it did: CSP violations, uncaught errors,
    console errors and the URLs it requested."""

    page: Page
    base_url: str
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def open(self, path: str = "/") -> Tab:
        self.page.goto(self.base_url + path)
        expect(self.page.locator("#article-body p").first).to_be_visible()
        return self

    @property
    def chat(self) -> Locator:
        return self.page.locator("commentary-chat")

    @property
    def input(self) -> Locator:
        return self.chat.locator("input")

    def ask(self, question: str) -> Locator:
        """Type the question, press Enter; the new turn's reply bubble (once it is not loading)."""
        turns = self.chat.locator(".turn")
        n = turns.count()
        self.input.fill(question)
        self.input.press("Enter")
        reply = turns.nth(n).locator(".reply")
        expect(turns.nth(n).locator(".question")).to_contain_text(question)
        expect(reply).not_to_have_class("bubble reply pending")
        return reply

    def csp_violations(self) -> list[str]:
        found: list[str] = self.page.evaluate("window.__csp || []")
        return found + [c for c in self.console if "Content Security Policy" in c]

    def pwned(self) -> Any:
        return self.page.evaluate("window.__pwned")

    def shadow_focus(self) -> str | None:
        """What has focus inside the widget: an element's id, or its text."""
        return self.page.evaluate(
            """() => {
              const host = document.activeElement;
              const el = host && host.shadowRoot && host.shadowRoot.activeElement;
              return el ? (el.id || el.textContent.trim()) : null;
            }"""
        )


@pytest.fixture
def tab(browser: Browser, server: LiveServer) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.add_init_script(WATCH_SCRIPT)
    t = Tab(page, server.base_url)
    page.on("pageerror", lambda exc: t.errors.append(str(exc)))
    page.on("console", lambda msg: t.console.append(f"{msg.type}: {msg.text}"))
    page.on("request", lambda req: t.requests.append(req.url))
    yield t
    try:
        assert not t.errors, t.errors
        assert not t.csp_violations(), t.csp_violations()
    finally:
        context.close()


def put_document(server: LiveServer, doc_id: str, body: dict[str, Any]) -> None:
    with server.client() as client:
        response = client.put(f"/documents/{doc_id}", json=body, headers=AUTH, timeout=120)
    assert response.status_code in (200, 201), response.text


def delete_document(server: LiveServer, doc_id: str) -> None:
    with server.client() as client:
        client.delete(f"/documents/{doc_id}", headers=AUTH, timeout=120)


# ------------------------------------------------------------------------------ the page


def test_demo_page_and_widget_are_served_with_security_headers(server: LiveServer) -> None:
    with server.client() as client:
        page = client.get("/")
        script = client.get("/widget.js")
        demo = client.get("/static/demo.js")
        schema = client.get("/openapi.json").json()
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert "<commentary-chat" in page.text and "<style" not in page.text
    assert "<script>" not in page.text  # external scripts only
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["x-content-type-options"] == "nosniff"
    for js in (script.text, demo.text):  # and Trusted Types would refuse them at run time
        assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "eval(" not in js
    assert "/widget.js" not in schema["paths"] and "/" not in schema["paths"]


def test_answer_is_highlighted_in_the_widget_and_in_the_article(tab: Tab) -> None:
    tab.open()
    reply = tab.ask(NORMANS_QUESTION)
    expect(reply.locator(".quote mark")).to_have_text(NORMANS_ANSWER)
    # The mark sits inside its paragraph: the quote shows the whole of paragraph 1.
    expect(reply.locator(".quote")).to_contain_text("The distinct cultural and ethnic identity")
    expect(reply.locator(":scope > .source")).to_have_text(
        "Normans · paragraph 1, characters 0–374"
    )
    expect(tab.chat.locator("[role=status]")).to_contain_text(NORMANS_ANSWER)
    assert tab.shadow_focus() == "question", "focus stays in the input"

    # Other passages are there, folded.
    others = reply.locator("details")
    expect(others.locator("summary")).to_contain_text("Other passages")
    expect(others.locator(".passages")).to_be_hidden()
    others.locator("summary").click()
    expect(others.locator(".passages li").first).to_be_visible()

    reply.locator(":scope > .actions .show").click()
    article_mark = tab.page.locator("#article-body mark")
    expect(article_mark).to_have_text(NORMANS_ANSWER)
    expect(article_mark).to_be_in_viewport()
    expect(tab.page.locator("#article-title")).to_have_text("Normans")
    expect(tab.page.locator("#article-body p").first.locator("mark")).to_have_count(1)

    origins = {urlsplit(u)[:2] for u in tab.requests}
    assert origins == {urlsplit(tab.base_url)[:2]}, "the widget talks only to its endpoint"


@pytest.fixture
def seed() -> Document:
    seeds = [d for d in load_data_dir(REPO_DATA) if d.meta.author == "Gwendolyn Sasse"]
    if not seeds:
        pytest.skip("the seed article (Gwendolyn Sasse, Carnegie Europe) is not in data/ yet")
    return seeds[0]


def test_card_question_with_the_seed_article(seed: Document, tab: Tab, server: LiveServer) -> None:
    put_document(server, seed.id, {"text": seed.text, **vars(seed.meta)})
    try:
        tab.open(f"/?doc={seed.id}")
        tab.chat.evaluate(f"el => el.setAttribute('doc-ids', {json.dumps(seed.id)})")
        reply = tab.ask(CARD_QUESTION)
        expect(reply.locator(".quote mark")).to_contain_text("Merz")
        expect(reply.locator(":scope > .source")).to_contain_text("Gwendolyn Sasse")
        reply.locator(":scope > .actions .show").click()
        expect(tab.page.locator("#article-body mark").first).to_contain_text("Merz")
        expect(tab.page.locator("#article-body mark").first).to_be_in_viewport()
    finally:
        delete_document(server, seed.id)


def test_a_corrected_question_says_what_was_searched(tab: Tab) -> None:
    tab.open()
    reply = tab.ask("Who were the Normmans?")
    expect(reply.locator(".searched")).to_have_text("Searched for: Who were the Normans?")
    expect(reply.locator(".quote mark")).to_contain_text("Normans")
    plain = tab.ask(NORMANS_QUESTION)
    expect(plain.locator(".quote mark")).to_have_text(NORMANS_ANSWER)
    expect(plain.locator(".searched")).to_have_count(0)


def test_off_topic_question_abstains_with_nearest_passages(tab: Tab) -> None:
    tab.open()
    reply = tab.ask(OFF_TOPIC)
    expect(reply).to_contain_text(ABSTENTION)
    expect(reply.locator("mark").first).to_be_hidden()  # passages are offered, folded
    expect(reply.locator("summary")).to_contain_text("Nearest passages")
    reply.locator("summary").click()
    expect(reply.locator(".passages li").first).to_be_visible()
    expect(reply.locator(".passages li").first.locator(".source")).to_contain_text("paragraph")
    expect(tab.chat.locator("[role=status]")).to_contain_text(ABSTENTION)


def test_follow_up_uses_the_conversation_and_survives_a_reload(tab: Tab) -> None:
    tab.open()
    first = tab.ask(PRESIDING_QUESTION)
    expect(first.locator(":scope > .source")).to_contain_text("Scottish Parliament · paragraph 9")

    tab.page.reload()  # the conversation is kept in sessionStorage
    expect(tab.chat.locator(".turn")).to_have_count(1)
    expect(tab.chat.locator(".turn .question")).to_contain_text(PRESIDING_QUESTION)
    expect(tab.chat.locator(".turn .quote mark")).to_contain_text("Presiding Officer")

    with tab.page.expect_request(lambda r: r.url.endswith("/ask")) as request:
        reply = tab.ask(FOLLOW_UP)
    sent = request.value.post_data_json
    assert sent == {"question": FOLLOW_UP, "history": [PRESIDING_QUESTION]}
    expect(reply.locator(".quote mark")).to_contain_text(FOLLOW_UP_ANSWER)
    expect(reply.locator(":scope > .source")).to_contain_text("Scottish Parliament · paragraph 10")


def test_markup_in_an_article_is_shown_as_text(tab: Tab, server: LiveServer) -> None:
    put_document(server, HOSTILE_ID, {"text": HOSTILE_TEXT, **HOSTILE_META})
    try:
        tab.open(f"/?doc={HOSTILE_ID}")
        page = tab.page
        expect(page.locator("#article-title")).to_have_text(HOSTILE_META["title"])
        paragraphs = page.locator("#article-body p")
        expect(paragraphs).to_have_text([p for p in HOSTILE_TEXT.strip().split("\n\n")])

        reply = tab.ask(HOSTILE_QUESTION)
        # Astral characters come before the span: the code point offsets were mapped right.
        expect(reply.locator(".quote mark")).to_have_text(HOSTILE_ANSWER)
        expect(reply.locator(":scope > .source cite")).to_have_text(HOSTILE_META["title"])
        expect(reply.locator(":scope > .source")).to_contain_text(HOSTILE_META["author"])
        # The source URL is javascript:, so there is no link, only the in-page button.
        expect(reply.locator(":scope > .actions button.show")).to_have_count(1)
        reply.locator(":scope > .actions .show").click()
        expect(page.locator("#article-body mark")).to_have_text(HOSTILE_ANSWER)

        reply.locator("details summary").click()
        expect(reply.locator(".passages")).to_contain_text('<img src=x onerror="window.__pwned')
        for where in ("#article-body", "commentary-chat"):
            for tag in ("script", "img", "a", "b"):
                expect(page.locator(f"{where} {tag}")).to_have_count(0)
        expect(page.locator("[href^='javascript' i]")).to_have_count(0)
        assert tab.pwned() is None
    finally:
        delete_document(server, HOSTILE_ID)


def test_source_link_carries_a_text_fragment(tab: Tab) -> None:
    tab.open()

    def with_url(route: Any) -> None:
        doc = route.fetch().json()
        route.fulfill(json={**doc, "url": "https://en.wikipedia.org/wiki/Normans"})

    tab.page.route("**/documents/squad2-Normans", with_url)
    reply = tab.ask(NORMANS_QUESTION)
    link = reply.locator(":scope > .actions a.show")
    expect(link).to_have_attribute(
        "href",
        "https://en.wikipedia.org/wiki/Normans#:~:text="
        "The%20Normans%20(Norman%3A%20Nourmands%3B,III%20of%20West%20Francia.",
    )
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    # The demo page handles the event, so the link does not navigate away.
    link.click()
    expect(tab.page.locator("#article-body mark")).to_have_text(NORMANS_ANSWER)
    assert tab.page.url.startswith(tab.base_url)

    fragment = tab.page.evaluate(
        """() => {
          const chat = customElements.get("commentary-chat");
          return [
            chat.textFragmentUrl("https://x.test/a", "Merz - yes, A & B"),
            chat.textFragmentUrl("https://x.test/a#top", "one"),
          ];
        }"""
    )
    assert fragment == [
        "https://x.test/a#:~:text=Merz%20%2D%20yes%2C%20A%20%26%20B",
        "https://x.test/a#top:~:text=one",
    ]


def test_keyboard_only(tab: Tab) -> None:
    tab.open()
    page = tab.page
    for _ in range(10):  # from the top of the page, Tab reaches the question field
        if tab.shadow_focus() == "question":
            break
        page.keyboard.press("Tab")
    assert tab.shadow_focus() == "question"
    page.keyboard.type(NORMANS_QUESTION)
    page.keyboard.press("Enter")
    reply = tab.chat.locator(".turn .reply")
    expect(reply.locator(".quote mark")).to_have_text(NORMANS_ANSWER)
    assert tab.shadow_focus() == "question"

    def focus_back_to(text: str) -> None:
        for _ in range(10):
            if (tab.shadow_focus() or "").startswith(text):
                return
            page.keyboard.press("Shift+Tab")
        raise AssertionError(f"Shift+Tab never reached {text!r} (at {tab.shadow_focus()!r})")

    focus_back_to("Other passages")
    page.keyboard.press("Enter")
    expect(reply.locator(".passages li").first).to_be_visible()
    focus_back_to("Show in article")
    page.keyboard.press("Enter")
    expect(page.locator("#article-body mark")).to_have_text(NORMANS_ANSWER)
    expect(page.locator("#article-body mark")).to_be_in_viewport()


def test_usable_at_360_px(browser: Browser, server: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    try:
        tab = Tab(context.new_page(), server.base_url).open()
        reply = tab.ask(NORMANS_QUESTION)
        expect(reply.locator(".quote mark")).to_be_visible()
        assert tab.page.evaluate("document.documentElement.scrollWidth") <= 360
        for part in (tab.chat, tab.input, reply):
            box = part.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360, box
    finally:
        context.close()


def test_host_page_css_does_not_reach_into_the_widget(browser: Browser, server: LiveServer) -> None:
    # A page with its own (hostile) styles; CSP is bypassed only to inject them.
    context = browser.new_context(bypass_csp=True)
    try:
        tab = Tab(context.new_page(), server.base_url).open()
        tab.page.add_style_tag(
            content="input, button, mark, p, ol, li, blockquote, form { display: none !important; "
            "color: red !important; } * { font-size: 40px !important; }"
        )
        reply = tab.ask(NORMANS_QUESTION)
        expect(reply.locator(".quote mark")).to_be_visible()
        expect(tab.input).to_be_visible()
        style = reply.locator(".quote mark").evaluate(
            "m => [getComputedStyle(m).backgroundColor, getComputedStyle(m).display]"
        )
        assert style == ["rgb(255, 226, 122)", "inline"]
    finally:
        context.close()


def test_loading_state_then_errors_with_a_retry(tab: Tab) -> None:
    tab.open()
    page = tab.page
    held: list[Route] = []
    page.route(
        "**/ask", lambda route: held.append(route)
    )  # the request waits until the test answers it
    tab.input.fill(NORMANS_QUESTION)
    tab.input.press("Enter")
    reply = tab.chat.locator(".turn .reply")
    expect(reply).to_have_class("bubble reply pending")
    expect(reply).to_have_text("Looking for an answer")
    expect(tab.chat.locator(".log")).to_have_attribute("aria-busy", "true")
    expect(tab.chat.locator("[role=status]")).to_have_text("Looking for an answer…")
    for _ in range(500):  # the route handler runs while Playwright processes events
        if held:
            break
        page.wait_for_timeout(20)
    assert len(held) == 1
    held[0].fulfill(
        status=429,
        headers={"Retry-After": "7"},
        json={"error": {"code": "rate_limited", "message": "slow down"}},
    )
    page.unroute("**/ask")
    expect(reply).to_contain_text("Please wait about 7 seconds, then retry.")
    expect(tab.chat.locator(".log")).to_have_attribute("aria-busy", "false")
    assert tab.shadow_focus() == "question"

    page.route(
        "**/ask",
        lambda route: route.fulfill(
            status=503, json={"error": {"code": "not_ready", "message": "loading"}}
        ),
    )
    reply.locator("button.retry").click()
    expect(reply).to_contain_text("unavailable right now (HTTP 503)")
    page.unroute("**/ask")

    page.route("**/ask", lambda route: route.abort("connectionrefused"))
    reply.locator("button.retry").click()
    expect(reply).to_contain_text("Couldn't reach the service")
    page.unroute("**/ask")

    reply.locator("button.retry").click()
    expect(reply.locator(".quote mark")).to_have_text(NORMANS_ANSWER)
    expect(tab.chat.locator(".turn")).to_have_count(1)
    assert tab.shadow_focus() == "question", "Retry puts the focus back in the input"


def test_endpoint_must_be_http(tab: Tab) -> None:
    tab.open()
    tab.chat.evaluate("el => el.setAttribute('endpoint', 'javascript:alert(1)')")
    before = len(tab.requests)
    reply = tab.ask(NORMANS_QUESTION)
    expect(reply).to_contain_text("the endpoint must be an http(s) URL")
    assert tab.requests[before:] == []


def test_screenshot(tab: Tab, tmp_path: Path) -> None:
    """The demo page with an answer: saved to docs/widget.png when UPDATE_SCREENSHOT=1."""
    tab.open()
    reply = tab.ask(NORMANS_QUESTION)
    reply.locator(":scope > .actions .show").click()
    expect(tab.page.locator("#article-body mark")).to_be_in_viewport()
    tab.page.evaluate("document.activeElement && document.activeElement.blur()")
    shot = tmp_path / "widget.png"
    tab.page.screenshot(path=shot)
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, REPO / "docs" / "widget.png")


def test_server_stopped_mid_conversation_then_retry(tab: Tab, server: LiveServer) -> None:
    """Last: it stops and restarts the module's server (on the same port)."""
    tab.open()
    first = tab.ask(NORMANS_QUESTION)
    expect(first.locator(".quote mark")).to_have_text(NORMANS_ANSWER)

    server.stop()
    reply = tab.ask(HERVE_QUESTION)
    expect(reply).to_contain_text("Couldn't reach the service")
    expect(first.locator(".quote mark")).to_have_text(NORMANS_ANSWER)  # nothing lost

    server.start()
    assert httpx.get(f"{server.base_url}/readyz", timeout=10).status_code == 200
    reply.locator("button.retry").click()
    expect(reply.locator(".quote mark")).to_contain_text(HERVE_ANSWER)
    expect(tab.chat.locator(".turn")).to_have_count(2)
