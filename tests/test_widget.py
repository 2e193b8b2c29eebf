"""The chat widget (``api/static/widget.js``) and its demo page (``GET /``), driven by Playwright
in Debian's headless Chromium against a real uvicorn server.

The server indexes the three real SQuAD 2.0 Wikipedia articles of the conftest; questions are
real SQuAD-style questions whose answering paragraph was checked by running the pipeline. The
card's own question needs the seed article (``data/``): its tests skip when it is not there.

Needs ``pip install playwright`` and ``apt-get install chromium`` (never ``playwright install``):
the tests skip without them, except under CI, where they fail. The accessibility audit runs
axe-core in the page; axe-core comes from the PyPI package ``axe-playwright-python`` (the
``test`` extra), which ships ``axe.min.js``; only that file is used. ``AXE_CORE_JS=path`` runs
another build instead (e.g. npm's ``node_modules/axe-core/axe.min.js``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
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
from core.types import Document
from rag.load import load_data_dir
from rag.settings import Settings

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
QUEUED = "will be asked once the answer above has arrived"

#: The seed article has no title: it is named by its author and opening words, never its id.
SEED_LABEL = "Gwendolyn Sasse: An end to Russia’s war against Ukraine is still…"
#: The two Merz sentences of paragraph 5, the card question's answer.
MERZ_ANSWER = (
    "The German chancellor, Friedrich Merz, for the first time spoke about the possible "
    "involvement of German troops in securing a ceasefire. He added that they could only be "
    "stationed in Nato countries bordering Ukraine and that any such decision would require the "
    "approval of the German parliament."
)

#: Who says the card's answer (issue 18): Friedrich Merz, in a statement the author reports.
MERZ_SAID_BY = "Said by Friedrich Merz, reported by Gwendolyn Sasse"
#: A question about the author's own view, answered in her voice (paragraph 8).
AUTHOR_QUESTION = "What does the author think about the term coalition of the willing?"
AUTHOR_ANSWER = (
    "While the term “coalition of the willing” is unfortunate, as it brings back memories of the "
    "US-led engagement in Iraq, it clearly signals that we have moved into a period of ad hoc "
    "relations between states, outside existing international institutions and law."
)
AUTHOR_SAID_BY = "Said by Gwendolyn Sasse, the author"

#: WCAG 1.4.3: text needs 4.5:1 against its background.
MIN_TEXT_CONTRAST = 4.5
#: WCAG 1.4.11: a focus indicator needs 3:1 against the colours next to it.
MIN_FOCUS_CONTRAST = 3.0

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

    @property
    def status(self) -> Locator:
        """The widget's live region."""
        return self.chat.locator("[role=status]")

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

    def article_focus(self) -> dict[str, Any] | None:
        """The element of the page (not the widget) that has focus, if any."""
        return self.page.evaluate(
            """() => {
              const el = document.activeElement;
              if (!el || el === document.body || el.shadowRoot) return null;
              return {tag: el.tagName.toLowerCase(), tabindex: el.getAttribute("tabindex"),
                      text: el.textContent, focusVisible: el.matches(":focus-visible")};
            }"""
        )


def new_tab(browser: Browser, server: LiveServer, **context_options: Any) -> Tab:
    """A Tab in a new context (closed by the caller: ``tab.page.context.close()``) that records
    what the page did, like the ``tab`` fixture."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.add_init_script(WATCH_SCRIPT)
    t = Tab(page, server.base_url)
    page.on("pageerror", lambda exc: t.errors.append(str(exc)))
    page.on("console", lambda msg: t.console.append(f"{msg.type}: {msg.text}"))
    return t


def check_clean(t: Tab) -> None:
    assert not t.errors, t.errors
    assert not t.csp_violations(), t.csp_violations()


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


# ------------------------------------------------------------------------------ colour and axe

RGBA = tuple[float, float, float, float]


def parse_color(css: str) -> RGBA:
    """A computed CSS colour ("rgb(1, 2, 3)" or "rgba(1, 2, 3, 0.5)")."""
    m = re.fullmatch(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)", css)
    assert m, f"unexpected computed colour {css!r}"
    r, g, b, a = m.groups()
    return float(r), float(g), float(b), float(a) if a is not None else 1.0


def over(top: RGBA, below: RGBA) -> RGBA:
    """``top`` painted over the opaque ``below``."""
    a = top[3]
    r, g, b = (top[i] * a + below[i] * (1 - a) for i in range(3))
    return r, g, b, 1.0


def luminance(c: RGBA) -> float:
    def channel(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2])


def contrast(a: RGBA, b: RGBA) -> float:
    """The WCAG contrast ratio of two opaque colours."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


#: The focused element (inside shadow roots too): its outline, and the background colours of
#: its ancestors, innermost first, across shadow boundaries: what the ring is drawn on.
FOCUS_RING_SCRIPT = """() => {
  let el = document.activeElement;
  while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
  if (!el || el === document.body) return null;
  const up = (n) =>
    n.parentElement || (n.parentNode instanceof ShadowRoot ? n.parentNode.host : null);
  const layers = [];
  for (let n = up(el); n; n = up(n)) layers.push(getComputedStyle(n).backgroundColor);
  const cs = getComputedStyle(el);
  const inWidget = el.getRootNode() instanceof ShadowRoot;
  const name = el.getAttribute("aria-label") || el.id || el.textContent.trim().slice(0, 40);
  return {
    what: `${el.tagName.toLowerCase()} ${name}`,
    inWidget, focusVisible: el.matches(":focus-visible"), layers,
    outlineColor: cs.outlineColor, outlineStyle: cs.outlineStyle,
    outlineWidth: parseFloat(cs.outlineWidth),
  };
}"""


def focus_ring(page: Page) -> dict[str, Any] | None:
    """The focused element's ring: its colour, the background it is drawn on (the ancestors'
    backgrounds composited over the white canvas) and their contrast."""
    ring = page.evaluate(FOCUS_RING_SCRIPT)
    if ring is None:
        return None
    background: RGBA = (255, 255, 255, 1.0)
    for layer in reversed(ring["layers"]):
        background = over(parse_color(layer), background)
    colour = parse_color(ring["outlineColor"])
    ring["background"] = "#{:02x}{:02x}{:02x}".format(*(round(v) for v in background[:3]))
    ring["contrast"] = contrast(over(colour, background), background)
    return ring


#: An element's text colour, and the background colours of it and its ancestors, innermost
#: first, across shadow boundaries: what the text is drawn on.
TEXT_COLOURS_SCRIPT = """(el) => {
  const up = (n) =>
    n.parentElement || (n.parentNode instanceof ShadowRoot ? n.parentNode.host : null);
  const layers = [];
  for (let n = el; n; n = up(n)) layers.push(getComputedStyle(n).backgroundColor);
  return {color: getComputedStyle(el).color, layers};
}"""


def text_contrast(element: Locator) -> float:
    """The contrast of ``element``'s computed text colour against the background it is drawn
    on (its own and its ancestors' backgrounds composited over the white canvas)."""
    found = element.evaluate(TEXT_COLOURS_SCRIPT)
    background: RGBA = (255, 255, 255, 1.0)
    for layer in reversed(found["layers"]):
        background = over(parse_color(layer), background)
    return contrast(over(parse_color(found["color"]), background), background)


@cache
def axe_source() -> str:
    """axe-core's browser build: from the ``axe-playwright-python`` package, or AXE_CORE_JS."""
    path = os.environ.get("AXE_CORE_JS")
    if path:
        return Path(path).read_text(encoding="utf-8")
    try:
        return (resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")
    except ModuleNotFoundError:
        reason = "axe-core is not installed: pip install -e '.[test]' (axe-playwright-python)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required in CI)")
        pytest.skip(reason)


def assert_no_axe_violations(page: Page, where: str) -> str:
    """Injects axe-core into the page (the page's CSP stays on) and runs every rule it runs by
    default over the whole document, the widget's shadow root included; fails listing each
    violation. Returns axe's version."""
    page.evaluate(axe_source())
    result = page.evaluate(
        """async () => {
          const r = await axe.run(document, {resultTypes: ["violations"]});
          return {version: axe.version, violations: r.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map((n) => `${JSON.stringify(n.target)}: ${n.failureSummary}`),
          }))};
        }"""
    )
    violations = result["violations"]
    report = "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"])
        for v in violations
    )
    assert not violations, f"axe-core {result['version']} ({where}):\n{report}"
    return str(result["version"])


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


def visible_text(tab: Tab) -> str:
    """Everything the page shows or says: its text, the widget's, and its title."""
    return str(
        tab.page.evaluate(
            """() => {
              const root = document.querySelector("commentary-chat").shadowRoot;
              const labels = [...root.querySelectorAll("[aria-label]")];
              return [document.title, document.body.innerText, root.textContent,
                      ...labels.map((e) => e.getAttribute("aria-label"))].join("\\n");
            }"""
        )
    )


def test_card_question_with_the_seed_article(seed: Document, tab: Tab, server: LiveServer) -> None:
    assert not seed.meta.title, "the seed article has no title: it is named, not shown by its id"
    put_document(server, seed.id, {"text": seed.text, **vars(seed.meta)})
    try:
        tab.open(f"/?doc={seed.id}")
        tab.chat.evaluate(f"el => el.setAttribute('doc-ids', {json.dumps(seed.id)})")
        expect(tab.page.locator("#article-title")).to_have_text(SEED_LABEL)
        expect(tab.page).to_have_title(f"{SEED_LABEL} · Commentary QA demo")
        reply = tab.ask(CARD_QUESTION)
        expect(reply.locator(".quote mark")).to_have_text(MERZ_ANSWER)
        # Named by author and opening words, once (no "by Gwendolyn Sasse" after it).
        expect(reply.locator(":scope > .source")).to_have_text(
            f"{SEED_LABEL} · paragraph 5, characters 2005–2300"
        )
        expect(reply.locator(":scope > .source cite")).to_have_text(SEED_LABEL)
        # Who says it (issue 18): under the quote, in words, and in what is announced.
        said = reply.locator(":scope > .said-by")
        expect(said).to_have_text(MERZ_SAID_BY)
        expect(said.locator(".who")).to_have_text(["Friedrich Merz", "Gwendolyn Sasse"])
        expect(tab.status).to_have_text(
            f"Answer from {SEED_LABEL}, paragraph 5: {MERZ_ANSWER} {MERZ_SAID_BY}."
        )
        assert_speaker_line_is_read_with_the_answer(tab, reply, MERZ_ANSWER, MERZ_SAID_BY)
        for part in (said, said.locator(".who").first):
            assert text_contrast(part) >= MIN_TEXT_CONTRAST, part
        show = reply.locator(":scope > .actions .show")
        expect(show).to_have_attribute(
            "aria-label", "Show in article: paragraph 5 of the article by Gwendolyn Sasse"
        )
        assert seed.id not in visible_text(tab), "the raw id is never shown as a name"
        show.click()
        expect(tab.page.locator("#article-body mark")).to_have_text(MERZ_ANSWER)
        expect(tab.page.locator("#article-body mark").first).to_be_in_viewport()
        expect(tab.page.locator("#article-body p[data-paragraph='5'] mark")).to_have_count(1)

        # The author's own view: attributed to her, as the author.
        author = tab.ask(AUTHOR_QUESTION)
        expect(author.locator(".quote mark")).to_have_text(AUTHOR_ANSWER)
        expect(author.locator(":scope > .said-by")).to_have_text(AUTHOR_SAID_BY)
        expect(author.locator(":scope > .said-by .who")).to_have_text("Gwendolyn Sasse")
        expect(tab.status).to_have_text(
            f"Answer from {SEED_LABEL}, paragraph 8: {AUTHOR_ANSWER} {AUTHOR_SAID_BY}."
        )
        assert_speaker_line_is_read_with_the_answer(tab, author, AUTHOR_ANSWER, AUTHOR_SAID_BY)
        # Its other passages are the author's too: one line each, under the passage.
        author.locator("details summary").click()
        passages = author.locator(".passages > li")
        expect(passages.first).to_be_visible()
        for passage in passages.all():
            expect(passage.locator(":scope > .said-by")).to_have_text(AUTHOR_SAID_BY)
            assert text_contrast(passage.locator(".said-by")) >= MIN_TEXT_CONTRAST

        # A quoted speaker asked about what they did not say: refused by name, shown and
        # announced, with his statements offered first.
        silent = tab.ask("What did Merz say about the Paris declaration?")
        refusal = "The articles don't report Friedrich Merz saying anything about this."
        expect(silent).to_contain_text(refusal)
        expect(tab.status).to_contain_text(refusal)
        expect(silent.locator(".quote")).to_have_count(0)

        # On a phone, and at 400% zoom (320x256 CSS px): the lines wrap, nothing scrolls sideways.
        for width, height in ((360, 740), (320, 256)):
            tab.page.set_viewport_size({"width": width, "height": height})
            assert tab.page.evaluate("document.documentElement.scrollWidth") <= width
            for line in (said, author.locator(":scope > .said-by")):
                line.scroll_into_view_if_needed()
                expect(line).to_be_in_viewport(ratio=1)
                box = line.bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        assert_no_axe_violations(tab.page, "seed article, 320x256")
    finally:
        delete_document(server, seed.id)


def ax_text(page: Page, role: str, name: str) -> str:
    """The text of Chromium's own accessibility tree (shadow roots included) under the node of
    this role and name, in reading order, a line per text node: what a screen reader reads,
    without what CSS or ARIA hides."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        cdp.detach()
    by_id = {node["nodeId"]: node for node in nodes}
    out: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("role", {}).get("value") == "StaticText" and not node.get("ignored"):
            out.append(node.get("name", {}).get("value", ""))
        for child in node.get("childIds", []):
            if child in by_id:
                walk(by_id[child])

    for node in nodes:
        if node.get("role", {}).get("value") == role and node.get("name", {}).get("value") == name:
            walk(node)
    assert out, f"no {role} {name!r} in the accessibility tree"
    return "\n".join(out)


def assert_speaker_line_is_read_with_the_answer(
    tab: Tab, reply: Locator, answer: str, said_by: str
) -> None:
    """The speaker line is in the accessibility tree (Playwright's and Chromium's) as a paragraph
    of its own, read right after the quote and before the source."""
    expect(reply).to_match_aria_snapshot(
        f"""
        - paragraph: "Answer:"
        - blockquote:
          - mark: {json.dumps(answer, ensure_ascii=False)}
        - paragraph: {json.dumps(said_by)}
        - paragraph: /paragraph \\d+, characters/
        """
    )
    text = ax_text(tab.page, "list", "Conversation")
    # The names are spans of their own: the tree holds "Said by ", "Friedrich Merz", ...
    heard = text.replace("\n", "")
    assert answer in heard and said_by in heard, text
    assert heard.rindex(said_by) > heard.rindex(answer), f"read before the quote:\n{text}"


UNTITLED_ID = "untitled-test"
UNTITLED_TEXT = (
    "Quillbury harbour reopened this spring after two years of repairs to its sea wall.\n\n"
    "The new lighthouse lamp, installed in March, can be seen from forty kilometres away.\n"
)
UNTITLED_LABEL = "Quillbury harbour reopened this spring after two…"


def test_an_article_without_title_or_author_is_named_by_its_opening_words(
    tab: Tab, server: LiveServer
) -> None:
    put_document(server, UNTITLED_ID, {"text": UNTITLED_TEXT})
    try:
        tab.open(f"/?doc={UNTITLED_ID}")
        tab.chat.evaluate(f"el => el.setAttribute('doc-ids', {json.dumps(UNTITLED_ID)})")
        expect(tab.page.locator("#article-title")).to_have_text(UNTITLED_LABEL)
        reply = tab.ask("How far away can the new lighthouse lamp be seen?")
        expect(reply.locator(".quote mark")).to_contain_text("forty kilometres")
        expect(reply.locator(":scope > .source")).to_have_text(
            re.compile(rf"^{re.escape(UNTITLED_LABEL)} · paragraph 2, characters \d+–\d+$")
        )
        expect(tab.status).to_contain_text(f"Answer from {UNTITLED_LABEL}, paragraph 2:")
        expect(reply.locator(":scope > .actions .show")).to_have_attribute(
            "aria-label", f"Show in article: paragraph 2 of “{UNTITLED_LABEL}”"
        )
        assert UNTITLED_ID not in visible_text(tab)
    finally:
        delete_document(server, UNTITLED_ID)


def quotes_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer and every passage quote of an /ask response body."""
    return [*filter(None, [body["answer"]]), *(q for p in body["passages"] for q in p["quotes"])]


def test_who_says_it_is_shown_only_where_the_response_says(tab: Tab) -> None:
    """With ``speaker`` null everywhere, the reply is as before issue 18: no line added, nothing
    more announced. A passage whose highlighted sentences have different speakers, or some
    none, names each attributed sentence by its opening words; a passage whose sentences share
    one speaker gets one line. An article without an author speaks as "the author"."""
    tab.open()
    page = tab.page
    bodies: list[dict[str, Any]] = []

    def rewritten(change: Any) -> Any:
        def handle(route: Route) -> None:
            body = route.fetch().json()
            for quote in quotes_of(body):
                quote["speaker"] = quote["voice"] = None
            change(body)
            bodies.append(body)
            route.fulfill(json=body)

        return handle

    page.route("**/ask", rewritten(lambda body: None))
    plain = tab.ask(NORMANS_QUESTION)
    expect(plain.locator(".quote mark")).to_have_text(NORMANS_ANSWER)
    expect(tab.status).to_have_text(f"Answer from Normans, paragraph 1: {NORMANS_ANSWER}")
    plain.locator("details summary").click()
    expect(plain.locator(".passages > li").first).to_be_visible()
    expect(plain.locator(".said-by")).to_have_count(0)
    assert "said by" not in plain.inner_text().lower()
    page.unroute("**/ask")

    rollo = {"name": "Rollo", "mention": None, "reported_by": "the author"}
    the_author = {"name": "the author", "mention": None, "reported_by": None}

    def mixed(body: dict[str, Any]) -> None:
        body["answer"].update(speaker=the_author, voice="author")
        for passage in body["passages"]:
            for n, quote in enumerate(passage["quotes"]):
                if n == 0:
                    quote.update(speaker=rollo, voice="reported")
                elif n > 1:
                    quote.update(speaker=the_author, voice="author")  # the second stays null

    page.route("**/ask", rewritten(mixed))
    reply = tab.ask(NORMANS_QUESTION)
    page.unroute("**/ask")
    expect(reply.locator(":scope > .said-by")).to_have_text("Said by the author")
    expect(tab.status).to_have_text(
        f"Answer from Normans, paragraph 1: {NORMANS_ANSWER} Said by the author."
    )
    answer = bodies[-1]["answer"]
    others = [
        p
        for p in bodies[-1]["passages"]
        if not (p["doc_id"] == answer["doc_id"] and p["start"] <= answer["start"])
        or answer["end"] > p["end"]
    ]
    assert any(len(p["quotes"]) > 1 for p in others), "no passage with several quotes to test"
    reply.locator("details summary").click()
    items = reply.locator(".passages > li")
    expect(items).to_have_count(len(others))
    for item, passage in zip(items.all(), others, strict=True):
        quotes = passage["quotes"]
        if len(quotes) == 1:
            expect(item.locator(":scope > p.said-by")).to_have_text(
                "Said by Rollo, reported by the author"
            )
            continue
        said = {0: "Rollo, reported by the author"} | {n: "the author" for n in range(2, 9)}
        expected = [
            (quote, said[n])
            for n, quote in sorted(enumerate(quotes), key=lambda nq: nq[1]["start"])
            if n != 1  # no speaker: not listed
        ]
        lines = item.locator(":scope > ul.said-by > li")
        expect(lines).to_have_count(len(expected))
        for line, (quote, who) in zip(lines.all(), expected, strict=True):
            opening = " ".join(quote["text"].split()[:3])
            expect(line).to_have_text(re.compile(rf"^“{re.escape(opening)}.*” said by {who}$"))
    listed = reply.locator("ul.said-by li").first
    expect(listed).to_be_visible()
    expect(listed).to_have_css("border-top-style", "none")  # not styled as a passage
    assert text_contrast(listed) >= MIN_TEXT_CONTRAST


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
    said_by = first.locator(":scope > .said-by").all_inner_texts()

    tab.page.reload()  # the conversation is kept in sessionStorage
    expect(tab.chat.locator(".turn")).to_have_count(1)
    expect(tab.chat.locator(".turn .question")).to_contain_text(PRESIDING_QUESTION)
    expect(tab.chat.locator(".turn .quote mark")).to_contain_text("Presiding Officer")
    # Who says it comes back with the answer.
    expect(tab.chat.locator(".turn .reply > .said-by")).to_have_text(said_by)

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
    # The focus went with the reader: on the passage, focusable but not in the tab order.
    expect(page.locator("#article-body mark")).to_be_focused()
    expect(page.locator("#article-body mark")).to_have_attribute("tabindex", "-1")
    focused = tab.article_focus()
    assert focused is not None and focused["focusVisible"], focused


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

    refuse_asks(page)
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


# ------------------------------------------------------------------------------ accessibility


def test_a_question_sent_while_an_answer_loads_waits_its_turn(tab: Tab) -> None:
    """Enter while an answer loads: the question is queued, shown and announced, and asked
    (with the conversation so far) once the answer arrives; past MAX_QUEUED waiting questions
    it is refused in words, and the text stays in the box. Never dropped in silence."""
    tab.open()
    page = tab.page
    asked: list[dict[str, Any]] = []
    held: list[Route] = []

    def hold_the_first(route: Route) -> None:
        asked.append(route.request.post_data_json)
        if held:
            route.continue_()
        else:
            held.append(route)  # the first answer loads until the test lets it go

    page.route("**/ask", hold_the_first)
    turns = tab.chat.locator(".turn")
    tab.input.fill(NORMANS_QUESTION)
    tab.input.press("Enter")
    expect(turns.nth(0).locator(".reply")).to_have_text("Looking for an answer")
    for _ in range(500):
        if held:
            break
        page.wait_for_timeout(20)
    assert len(held) == 1

    waiting = [PRESIDING_QUESTION, FOLLOW_UP, OFF_TOPIC]
    for n, question in enumerate(waiting, start=1):
        tab.input.fill(question)
        tab.input.press("Enter")
        expect(tab.input).to_have_value("")
        expect(turns).to_have_count(n + 1)
        expect(turns.nth(n).locator(".question")).to_contain_text(question)
        expect(turns.nth(n).locator(".reply")).to_contain_text(QUEUED)
        expect(turns.nth(n).locator(".reply")).to_be_visible()
        expect(tab.status).to_contain_text("Your question will be asked after")
        expect(tab.status).to_contain_text(question)

    # A fourth while three wait: refused, in words shown and announced; the text is kept.
    tab.input.fill(HERVE_QUESTION)
    tab.input.press("Enter")
    notice = tab.chat.locator(".notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Please wait: 3 questions are already waiting")
    expect(tab.status).to_have_text(notice.inner_text())
    expect(tab.input).to_have_value(HERVE_QUESTION)
    expect(turns).to_have_count(4)
    page.wait_for_timeout(300)
    assert [a["question"] for a in asked] == [NORMANS_QUESTION], "one question at a time"

    held[0].continue_()
    expect(turns.nth(0).locator(".quote mark")).to_have_text(NORMANS_ANSWER)
    expect(turns.nth(1).locator(".quote mark")).to_contain_text("Presiding Officer")
    expect(turns.nth(2).locator(".quote mark")).to_contain_text(FOLLOW_UP_ANSWER)
    expect(turns.nth(3).locator(".reply")).to_contain_text(ABSTENTION)
    expect(tab.status).to_contain_text(ABSTENTION)  # the last answer is announced
    expect(tab.chat.locator(".log")).to_have_attribute("aria-busy", "false")
    assert asked == [
        {"question": NORMANS_QUESTION},
        {"question": PRESIDING_QUESTION, "history": [NORMANS_QUESTION]},
        {"question": FOLLOW_UP, "history": [NORMANS_QUESTION, PRESIDING_QUESTION]},
        {"question": OFF_TOPIC, "history": [NORMANS_QUESTION, PRESIDING_QUESTION, FOLLOW_UP]},
    ]

    # The kept question goes once there is room; the notice goes with it.
    tab.input.press("Enter")
    expect(turns).to_have_count(5)
    expect(turns.nth(4).locator(".question")).to_contain_text(HERVE_QUESTION)
    expect(turns.nth(4).locator(".reply")).to_have_class(re.compile(r"\b(answer|abstain)\b"))
    expect(notice).to_be_hidden()
    page.unroute("**/ask")


def refuse_asks(page: Page) -> None:
    """Every /ask of this page answers 503 (not ready): an error reply with its Retry."""
    page.route(
        "**/ask",
        lambda route: route.fulfill(
            status=503, json={"error": {"code": "not_ready", "message": "loading"}}
        ),
    )


def test_focus_ring_has_3_to_1_contrast_wherever_it_is_drawn(tab: Tab) -> None:
    """Every control of the widget (header, error reply, answer, passages, question box) and the
    passage focused in the article: a visible ring whose computed colour has at least 3:1
    against the computed background it is drawn on (WCAG 1.4.11)."""
    tab.open()
    page = tab.page
    refuse_asks(page)
    failed = tab.ask(HERVE_QUESTION)  # an error reply, with its Retry button
    expect(failed.locator("button.retry")).to_be_visible()
    page.unroute("**/ask")
    reply = tab.ask(NORMANS_QUESTION)
    expect(reply.locator(".quote mark")).to_have_text(NORMANS_ANSWER)
    reply.locator("details summary").click()
    expect(reply.locator(".passages li").first).to_be_visible()

    rings: list[dict[str, Any]] = []
    tab.input.focus()
    rings.append(focus_ring(page) or {})
    page.keyboard.press("Tab")  # the Ask button
    rings.append(focus_ring(page) or {})
    tab.input.focus()
    for _ in range(30):  # back through the conversation to the header
        page.keyboard.press("Shift+Tab")
        ring = focus_ring(page)
        if ring is None or not ring["inWidget"]:
            break
        rings.append(ring)
    names = [r["what"] for r in rings]
    assert any(n.startswith("button New conversation") for n in names), names
    assert any(n.startswith("button Retry") for n in names), names
    assert any(n.startswith("summary Other passages") for n in names), names
    assert sum(n.startswith("button Show in article") for n in names) >= 3, names
    # white (form, log), header grey, reply grey, error pink
    assert_focus_rings(rings, {"#ffffff", "#f6f8fa", "#f3f4f6", "#fff1f0"})

    # Then into the article: Enter on "Show in article" focuses the highlighted passage,
    # drawn on the page's background.
    for _ in range(30):
        page.keyboard.press("Tab")
        if (tab.shadow_focus() or "").startswith("Show in article"):
            break
    page.keyboard.press("Enter")
    expect(page.locator("#article-body mark")).to_be_focused()
    article = focus_ring(page)
    assert article is not None and not article["inWidget"], article
    assert_focus_rings([article], {"#fbfaf7"})


def assert_focus_rings(rings: list[dict[str, Any]], backgrounds: set[str]) -> None:
    report = "\n".join(
        f"{r['what']!r}: {r['outlineStyle']} {r['outlineWidth']}px {r['outlineColor']} on "
        f"{r['background']}: {r['contrast']:.2f}:1"
        for r in rings
    )
    for r in rings:
        assert r["focusVisible"], f"no :focus-visible ring on {r['what']!r}\n{report}"
        assert r["outlineStyle"] == "solid" and r["outlineWidth"] >= 2, report
        assert r["contrast"] >= MIN_FOCUS_CONTRAST, f"{r['what']!r} below 3:1\n{report}"
    assert backgrounds <= {r["background"] for r in rings}, report


def test_show_in_article_takes_the_focus_to_the_passage_at_360_px(
    browser: Browser, server: LiveServer
) -> None:
    """On a phone the article is below the widget: the reader, and the focus, go to the
    highlighted passage (not left on a button scrolled off-screen)."""
    tab = new_tab(browser, server, viewport={"width": 360, "height": 740}, is_mobile=True)
    try:
        tab.open()
        reply = tab.ask(PRESIDING_QUESTION)  # paragraph 9: far down the page, below the widget
        show = reply.locator(":scope > .actions .show")
        show.click()
        mark = tab.page.locator("#article-body mark")
        expect(mark).to_contain_text("Presiding Officer")
        expect(mark).to_be_in_viewport()
        expect(mark).to_be_focused()
        expect(mark).to_have_attribute("tabindex", "-1")
        expect(show).not_to_be_in_viewport()  # where the focus would have been left
        expect(tab.page.locator("#article-status")).to_have_text(
            "Highlighted in the article, paragraph 9."
        )
        # Another passage: the focus follows again, to the new highlight.
        reply.locator("details summary").click()
        other = reply.locator(".passages li").first
        other.locator(".show").click()
        expect(mark.first).to_be_focused()
        expect(mark.first).to_be_in_viewport()
        check_clean(tab)
    finally:
        tab.page.context.close()


def test_conversation_usable_at_400_percent_zoom(browser: Browser, server: LiveServer) -> None:
    """1280x1024 at 400% zoom is a 320x256 CSS-pixel viewport: the conversation is not
    squeezed into a sliver between header and question box; it grows with the page, and the
    answer and question box can be reached and read."""
    tab = new_tab(browser, server, viewport={"width": 320, "height": 256}, device_scale_factor=4)
    page = tab.page
    try:
        tab.open()
        reply = tab.ask(NORMANS_QUESTION)
        expect(reply.locator(".quote mark")).to_have_text(NORMANS_ANSWER)
        # The new turn was brought into view (the reader was in the widget).
        expect(tab.chat.locator(".turn .question")).to_be_in_viewport()
        box = tab.chat.evaluate(
            """el => {
              const log = el.shadowRoot.querySelector(".log");
              const chat = el.shadowRoot.querySelector(".chat");
              return {log: log.clientHeight, logContent: log.scrollHeight,
                      chat: chat.clientHeight, chatContent: chat.scrollHeight,
                      pageWidth: document.documentElement.scrollWidth};
            }"""
        )
        viewport = 256
        assert box["pageWidth"] <= 320, box  # no horizontal scrolling (WCAG 1.4.10)
        assert box["chatContent"] <= box["chat"] + 1, f"the widget hides content: {box}"
        scrolls_whole = box["logContent"] <= box["log"] + 1
        assert scrolls_whole or box["log"] >= viewport / 2, (
            f"the conversation gets {box['log']}px of a {viewport}px viewport: {box}"
        )
        # Every part of the answer and the question box can be brought into view, wholly or
        # (the quote, taller than the viewport) as much of it as the viewport holds.
        for part in (
            reply.locator(".quote mark"),
            reply.locator(":scope > .source"),
            reply.locator(":scope > .actions .show"),
            reply.locator("details summary"),
            tab.input,
            tab.chat.locator("form button"),
        ):
            part.scroll_into_view_if_needed()
            height = (part.bounding_box() or {"height": 1.0})["height"]
            expect(part).to_be_in_viewport(ratio=0.95 * min(1.0, viewport / height))
        tab.input.fill(HERVE_QUESTION)
        tab.input.press("Enter")
        second = tab.chat.locator(".turn").nth(1).locator(".reply")
        expect(second.locator(".quote mark")).to_contain_text(HERVE_ANSWER)
        expect(second.locator(".quote mark")).to_be_in_viewport()
        assert_no_axe_violations(page, "320x256")
        check_clean(tab)
    finally:
        page.context.close()


def ax_names(page: Page, prefix: str) -> list[str]:
    """Chromium's own accessible names (its accessibility tree, shadow roots included) of the
    buttons and links whose name starts with ``prefix``."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        cdp.detach()
    names = []
    for node in nodes:
        role = node.get("role", {}).get("value")
        name = node.get("name", {}).get("value", "")
        if role in ("button", "link") and not node.get("ignored") and name.startswith(prefix):
            names.append(name)
    return names


def test_each_show_in_article_control_names_its_passage(tab: Tab) -> None:
    tab.open()
    reply = tab.ask(NORMANS_QUESTION)
    reply.locator("details summary").click()
    expect(reply.locator(".passages li").first).to_be_visible()
    sources = [reply.locator(":scope > .source"), *reply.locator(".passages .source").all()]
    assert len(sources) >= 3
    expected = []
    for source in sources:
        paragraph = re.search(r"paragraph (\d+)", source.inner_text())
        assert paragraph, source.inner_text()
        expected.append(f"Show in article: paragraph {paragraph.group(1)} of “Normans”")
    names = ax_names(tab.page, "Show in article")
    assert len(names) == len(sources), names
    assert len(set(names)) == len(names), f"two controls share a name: {names}"
    for want, got in zip(expected, names, strict=True):
        # a second passage of the same paragraph adds its opening words
        assert got == want or got.startswith(f"{want}, “"), (want, got)
    # The visible words start the name (WCAG 2.5.3, label in name).
    expect(reply.locator(".show").first).to_have_text("Show in article")


def test_no_axe_violations_after_an_answer(tab: Tab) -> None:
    """axe-core in Chromium, on the demo page with the widget after answers: an error with its
    Retry button, an answer with its passages unfolded, the passage shown in the article; on
    a desktop and a phone."""
    tab.open()
    page = tab.page
    refuse_asks(page)
    tab.ask(HERVE_QUESTION)
    page.unroute("**/ask")
    reply = tab.ask(NORMANS_QUESTION)
    expect(reply.locator(".quote mark")).to_have_text(NORMANS_ANSWER)
    reply.locator("details summary").click()
    expect(reply.locator(".passages li").first).to_be_visible()
    reply.locator(":scope > .actions .show").click()
    expect(page.locator("#article-body mark")).to_be_focused()
    version = assert_no_axe_violations(page, "1280x800")
    assert version.startswith("4."), version
    page.set_viewport_size({"width": 360, "height": 740})
    assert_no_axe_violations(page, "360x740")


def test_screenshot(seed: Document, tab: Tab, server: LiveServer, tmp_path: Path) -> None:
    """The demo page with the card question answered on the seed article, the two Merz
    sentences of paragraph 5 highlighted and attributed to him: saved to docs/widget.png when
    UPDATE_SCREENSHOT=1."""
    put_document(server, seed.id, {"text": seed.text, **vars(seed.meta)})
    try:
        tab.open(f"/?doc={seed.id}")
        tab.chat.evaluate(f"el => el.setAttribute('doc-ids', {json.dumps(seed.id)})")
        reply = tab.ask(CARD_QUESTION)
        expect(reply.locator(".quote mark")).to_have_text(MERZ_ANSWER)
        expect(reply.locator(":scope > .said-by")).to_have_text(MERZ_SAID_BY)
        reply.locator(":scope > .actions .show").click()
        mark = tab.page.locator("#article-body p[data-paragraph='5'] mark")
        expect(mark).to_have_text(MERZ_ANSWER)
        expect(mark).to_be_in_viewport(ratio=1)
        tab.page.evaluate("document.activeElement && document.activeElement.blur()")
        tab.page.wait_for_timeout(500)  # the smooth scroll settles
        shot = tmp_path / "widget.png"
        tab.page.screenshot(path=shot)
        assert shot.stat().st_size > 10_000
        if os.environ.get("UPDATE_SCREENSHOT") == "1":
            shutil.copyfile(shot, REPO / "docs" / "widget.png")
    finally:
        delete_document(server, seed.id)


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
