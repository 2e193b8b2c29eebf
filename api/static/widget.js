/*
 * <commentary-chat>: ask questions about commentary articles; every answer is an exact quote.
 * No dependencies, no build step. Embed it with one script tag:
 *
 *   <script src="https://qa.example.org/widget.js" defer></script>
 *   <commentary-chat></commentary-chat>
 *
 * Attributes
 *   endpoint  the service's base URL (default: where this script was loaded from). The widget
 *             sends requests to that origin only, without cookies, and follows no redirects.
 *   doc-ids   optional, comma-separated document ids: only search these articles.
 *   heading   optional title of the chat box (default "Ask about this article").
 *
 * Event
 *   "commentary-chat:show-span" (bubbles, composed, cancelable) when the reader asks to see a
 *   quote in the article: detail = {doc_id, paragraph, start, end, text}; start/end are Unicode
 *   code point offsets into the document text (GET {endpoint}/documents/{doc_id}). A page that
 *   shows the span calls event.preventDefault(); otherwise, when the document has a source URL,
 *   the link opens it with a text fragment (#:~:text=...) that highlights the quote there.
 *   A page that shows the span must also move the keyboard focus to it, or the reader is left
 *   on a button far from what was shown (on a phone, off-screen):
 *     customElements.get("commentary-chat").reveal(markElement)
 *   makes the element focusable (tabindex="-1"), scrolls it into view and focuses it.
 *
 * Static helpers (customElements.get("commentary-chat").NAME)
 *   reveal(element)        as above.
 *   documentLabel(doc)     how an article is named to the reader: its title, else its author and
 *                          its opening words ("Gwendolyn Sasse: An end to Russia’s war…"), never
 *                          its id.
 *   textFragmentUrl(url, quote)
 *
 * Who says it: under the answer, "Said by Friedrich Merz, reported by Gwendolyn Sasse" (a
 * statement the article's author reports) or "Said by Gwendolyn Sasse, the author" (the
 * author's own voice), from the response's `speaker` and `voice`; the same for the highlighted
 * sentences of each passage (one line when they share a speaker, else one per sentence, named by
 * its opening words). Shown as words, not colour, and said in the live region after the answer.
 * Nothing is added for a quote whose `speaker` is null.
 *
 * Questions asked while an answer is loading wait their turn (at most MAX_QUEUED of them); the
 * reader is told so, on screen and in the live region.
 *
 * Text from the service is only ever inserted as text nodes (highlights are <mark> elements
 * made with createElement): never as HTML. The conversation is kept in sessionStorage.
 */
(() => {
  "use strict";

  const TAG = "commentary-chat";
  if (customElements.get(TAG)) return;

  const SCRIPT_URL = document.currentScript && document.currentScript.src;
  const DEFAULT_ENDPOINT = SCRIPT_URL ? new URL(".", SCRIPT_URL).href : location.href;
  const SHOW_EVENT = "commentary-chat:show-span";
  const MAX_HISTORY = 5;
  const TIMEOUT_MS = 60000;
  const STORE_KEY = "commentary-chat:v1:";
  const MAX_QUEUED = 3; // questions that may wait while an answer loads
  const LABEL_CHARS = 48; // the opening words that name an untitled article

  const CSS = `
:host { all: initial; display: block; box-sizing: border-box; width: 100%; max-width: 40rem;
  --accent: #0b5cad; --mark: #ffe27a; --muted: #57606a; --line: #d0d7de;
  /* Focus ring: at least 4.5:1 against every background it is drawn on (#fff, #f6f8fa,
   * #f3f4f6, #fff1f0); WCAG 1.4.11 asks for 3:1. */
  --focus: #1a6dd1; }
:host([hidden]) { display: none; }
*, *::before, *::after { box-sizing: border-box; }
.chat { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1f2328; text-align: start; display: flex; flex-direction: column; height: var(--commentary-chat-height, 36rem);
  max-height: 92vh; border: 1px solid var(--line); border-radius: 12px; background: #fff;
  overflow: hidden; }
header { display: flex; align-items: center; justify-content: space-between; gap: .5rem;
  padding: .55rem .8rem; border-bottom: 1px solid var(--line); background: #f6f8fa; }
h2 { margin: 0; font-size: 1rem; font-weight: 600; min-width: 0; }
header button { white-space: nowrap; }
.log { position: relative; flex: 1; overflow-y: auto; overscroll-behavior: contain; margin: 0;
  padding: .75rem; list-style: none; display: flex; flex-direction: column; gap: .9rem; }
.empty { margin: auto 0; color: var(--muted); text-align: center; }
.turn { display: flex; flex-direction: column; gap: .4rem; }
.bubble { margin: 0; padding: .55rem .75rem; border-radius: 10px; overflow-wrap: anywhere; }
.question { align-self: flex-end; max-width: 85%; background: var(--accent); color: #fff;
  border-bottom-right-radius: 3px; white-space: pre-wrap; }
.reply { align-self: stretch; background: #f3f4f6; border-bottom-left-radius: 3px; }
.reply p { margin: 0 0 .35rem; }
.error { background: #fff1f0; border: 1px solid #f5c2c0; }
.pending, .queued { color: var(--muted); }
.pending::after { content: ""; display: inline-block; width: 1.2em; text-align: left;
  animation: dots 1.2s steps(4, end) infinite; }
@keyframes dots { 0% { content: ""; } 25% { content: "."; } 50% { content: ".."; }
  75% { content: "..."; } }
blockquote { margin: .3rem 0; padding: .1rem 0 .1rem .6rem; border-left: 3px solid #b6bcc4;
  white-space: pre-wrap; }
mark { background: var(--mark); color: inherit; border-radius: 2px; padding: 0 .05em; }
.source { font-size: .85rem; color: var(--muted); }
.searched { margin: 0 0 .35rem; font-size: .85rem; color: var(--muted); font-style: italic; }
.source cite { font-style: normal; font-weight: 600; color: #1f2328; }
.actions { display: flex; flex-wrap: wrap; gap: .4rem; margin-top: .35rem; }
button, .show { font: inherit; font-size: .85rem; cursor: pointer; border-radius: 6px;
  border: 1px solid var(--line); background: #fff; color: var(--accent); padding: .25rem .6rem;
  text-decoration: none; display: inline-block; }
button:hover, .show:hover { background: #eef4fb; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 1px; }
details { margin-top: .45rem; }
summary { cursor: pointer; color: var(--accent); font-size: .9rem; }
.passages { margin: .4rem 0 0; padding: 0; list-style: none; display: flex;
  flex-direction: column; gap: .6rem; }
.passages > li { border-top: 1px solid var(--line); padding-top: .45rem; }
/* Who says a quote: words (never colour alone), #1f2328/#57606a on the reply's #f3f4f6. */
.said-by { margin: .1rem 0 .35rem; padding-left: calc(.6rem + 3px); /* under the quote's text */
  font-size: .9rem; color: var(--muted); }
ul.said-by { list-style: none; display: flex; flex-direction: column; gap: .15rem; }
.said-by .who { color: #1f2328; font-weight: 600; }
form { display: flex; gap: .4rem; padding: .6rem; border-top: 1px solid var(--line); }
input { flex: 1; min-width: 0; font: inherit; padding: .45rem .6rem; border-radius: 8px;
  border: 1px solid #8c959f; color: inherit; background: #fff; }
form button { font-size: .95rem; background: var(--accent); color: #fff;
  border-color: var(--accent); padding: .45rem .9rem; }
form button:hover { background: #094a8c; }
.notice { margin: 0; padding: .45rem .8rem; border-top: 1px solid var(--line); background: #fff8e1;
  font-size: .9rem; }
.notice:empty { display: none; }
.sr-only { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
@media (prefers-reduced-motion: reduce) { .pending::after { animation: none; content: "..."; } }
/* A short viewport (a landscape phone, or 400% zoom: 1280x1024 shows 320x256 CSS px): a box of
 * fixed height would leave the conversation a sliver between the header and the question box.
 * The widget then grows with the conversation and scrolls with the page, as a whole. */
@media (max-height: 30rem) {
  .chat { height: auto; max-height: none; }
  .log { flex: none; overflow: visible; }
}
`;

  // ---------------------------------------------------------------------------- helpers

  let sharedSheet = null;

  /** Styles inside the shadow root, without an inline <style> where the browser allows it
   * (a constructed stylesheet needs no 'unsafe-inline' in the page's CSP). */
  function adoptStyles(root) {
    if ("adoptedStyleSheets" in root && "replaceSync" in CSSStyleSheet.prototype) {
      if (!sharedSheet) {
        sharedSheet = new CSSStyleSheet();
        sharedSheet.replaceSync(CSS);
      }
      root.adoptedStyleSheets = [sharedSheet];
    } else {
      const style = document.createElement("style");
      style.textContent = CSS;
      root.append(style);
    }
  }

  /** An element with attributes and children; strings become text nodes, never HTML. */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  /** Maps the service's offsets (Unicode code points) to JavaScript string (UTF-16) indices. */
  function utf16Index(text) {
    if (!/[\uD800-\uDFFF]/.test(text)) return (cp) => cp;
    const map = [0];
    for (let i = 0; i < text.length; ) {
      i += text.codePointAt(i) > 0xffff ? 2 : 1;
      map.push(i);
    }
    return (cp) => map[Math.max(0, Math.min(cp, map.length - 1))];
  }

  /** Text from `from` to `to` (UTF-16 indices) with the given ranges wrapped in <mark>. */
  function highlighted(text, from, to, marks) {
    const out = document.createDocumentFragment();
    let pos = from;
    for (const [s, e] of marks.slice().sort((a, b) => a[0] - b[0])) {
      const start = Math.max(s, pos);
      const end = Math.min(e, to);
      if (start >= end) continue;
      out.append(text.slice(pos, start), h("mark", null, text.slice(start, end)));
      pos = end;
    }
    out.append(text.slice(pos, to));
    return out;
  }

  /** An http(s) URL, or null for anything else (javascript:, data:, garbage). */
  function safeHttpUrl(value) {
    try {
      const url = new URL(value);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch {
      return null;
    }
  }

  /** `url` with a text fragment that makes the browser highlight `quote` on that page:
   * the whole quote when short, else its first and last words (textStart,textEnd). */
  function textFragmentUrl(url, quote) {
    const words = quote.trim().split(/\s+/).filter(Boolean);
    if (!words.length) return url;
    // encodeURIComponent leaves "-" alone; the directive syntax needs it (and "&", ",") encoded.
    const enc = (s) => encodeURIComponent(s).replace(/-/g, "%2D");
    const directive =
      words.length <= 8
        ? enc(words.join(" "))
        : `${enc(words.slice(0, 4).join(" "))},${enc(words.slice(-4).join(" "))}`;
    return `${url}${url.includes("#") ? "" : "#"}:~:text=${directive}`;
  }

  /** The opening words of `text` (its first line), cut at a word boundary after at most
   * LABEL_CHARS characters, with an ellipsis when cut. */
  function openingWords(text) {
    const line = String(text || "").trim().split("\n")[0].trim();
    if ([...line].length <= LABEL_CHARS) return line;
    let out = "";
    for (const word of line.split(/\s+/)) {
      const next = out ? `${out} ${word}` : word;
      if (out && [...next].length > LABEL_CHARS) break;
      out = next;
    }
    return `${out.replace(/[\s,;:.\u2013\u2014-]+$/u, "")}…`;
  }

  /** How an article is named to the reader: its title; without one, its author and opening
   * words ("Gwendolyn Sasse: An end to Russia’s war against Ukraine is still…"); never its id. */
  function documentLabel(doc) {
    const title = String(doc.title || "").trim();
    if (title) return title;
    const author = String(doc.author || "").trim();
    const opening = openingWords(doc.text);
    if (author && opening) return `${author}: ${opening}`;
    return author || opening || "Untitled article";
  }

  /** The article in a button's name: “Title”, else "the article by Author", else its opening. */
  function articleName(doc) {
    const title = String(doc.title || "").trim();
    if (title) return `“${title}”`;
    const author = String(doc.author || "").trim();
    return author ? `the article by ${author}` : `“${openingWords(doc.text) || "an untitled article"}”`;
  }

  /** Who says a quote, as words after "Said by": "Friedrich Merz, reported by Gwendolyn Sasse"
   * (voice "reported"), "Gwendolyn Sasse, the author" (voice "author"; "the author" when the
   * article names none), or the bare name; null when the quote carries no speaker. The names
   * are text nodes in <span class="who">. */
  function saidBy(quote, doc) {
    const speaker = quote && quote.speaker;
    const name = speaker && String(speaker.name || "").trim();
    if (!name) return null;
    const out = document.createDocumentFragment();
    const who = (text) => h("span", { class: "who" }, text);
    if (quote.voice === "author") {
      if (String(doc.author || "").trim()) out.append(who(name), ", the author");
      else out.append("the author");
    } else {
      out.append(who(name));
      const by = String(speaker.reported_by || "").trim();
      if (quote.voice === "reported" && by) out.append(", reported by ", who(by));
    }
    return out;
  }

  /** saidBy as a plain string (the live region's words), or "". */
  function saidByText(quote, doc) {
    const said = saidBy(quote, doc);
    return said ? said.textContent : "";
  }

  /** The answer's speaker line: <p class="said-by">Said by …</p>, or null. */
  // Why there is no answer, for a reader: the speaker the articles don't report saying
  // anything about the question (the response's `speaker`), or that the article doesn't say.
  function notSaid(response) {
    return response.speaker
      ? `The articles don't report ${response.speaker} saying anything about this.`
      : "The article doesn't say.";
  }

  function speakerLine(quote, doc) {
    const said = saidBy(quote, doc);
    return said ? h("p", { class: "said-by" }, "Said by ", said) : null;
  }

  /** Who says a passage's highlighted sentences: one line when they all have one speaker, else
   * one line per attributed sentence, in reading order, named by its opening words; null when
   * none is attributed. */
  function passageSpeakers(quotes, doc) {
    const attributed = quotes.filter((q) => saidByText(q, doc));
    if (!attributed.length) return null;
    const lines = new Set(attributed.map((q) => saidByText(q, doc)));
    if (lines.size === 1 && attributed.length === quotes.length) return speakerLine(attributed[0], doc);
    return h("ul", { class: "said-by" }, ...attributed.slice().sort((a, b) => a.start - b.start).map((q) =>
      h("li", null, `“${openingWords(q.text)}” said by `, saidBy(q, doc))));
  }

  const QUOTES = new WeakMap(); // a "Show in article" control -> the quote it shows

  /** Two "Show in article" controls in one reply that would share a name (two passages of one
   * paragraph) get the opening words of their quotes added, so that each name is its own. */
  function uniqueNames(reply) {
    const byName = new Map();
    for (const el of reply.querySelectorAll(".show[aria-label]")) {
      const name = el.getAttribute("aria-label");
      byName.set(name, [...(byName.get(name) || []), el]);
    }
    for (const [name, els] of byName) {
      if (els.length < 2) continue;
      for (const el of els) el.setAttribute("aria-label", `${name}, “${openingWords(QUOTES.get(el))}”`);
    }
    return reply;
  }

  /** Takes the keyboard focus to `element` (a passage a page highlighted): makes it focusable
   * without putting it in the tab order, scrolls it into view and focuses it. */
  function reveal(element) {
    if (!element || typeof element.focus !== "function") return;
    if (!element.hasAttribute("tabindex") && element.tabIndex < 0) element.setAttribute("tabindex", "-1");
    const smooth = !matchMedia("(prefers-reduced-motion: reduce)").matches;
    element.scrollIntoView({ block: "center", behavior: smooth ? "smooth" : "auto" });
    element.focus({ preventScroll: true });
  }

  class ChatError extends Error {
    constructor(kind, { status = 0, detail = "", retryAfter = null } = {}) {
      super(kind);
      Object.assign(this, { kind, status, detail, retryAfter });
    }

    get readable() {
      if (this.kind === "config") return `The chat is not set up correctly: ${this.detail}`;
      if (this.kind === "network") return "Couldn't reach the service. Check your connection, then retry.";
      if (this.kind === "timeout") return "The service took too long to answer. Please retry.";
      if (this.status === 429) {
        const wait = /^\d+$/.test(this.retryAfter || "") ? ` about ${this.retryAfter} seconds` : " a moment";
        return `Too many questions at once. Please wait${wait}, then retry.`;
      }
      if (this.status >= 500) {
        return `The service is unavailable right now (HTTP ${this.status}). Please retry in a moment.`;
      }
      return `The question could not be answered (HTTP ${this.status})${this.detail ? `: ${this.detail}` : "."}`;
    }
  }

  // ---------------------------------------------------------------------------- the element

  class CommentaryChat extends HTMLElement {
    constructor() {
      super();
      this.turns = []; // {question, history, state: "pending"|"answered"|"error", response?, error?}
      this.docs = new Map(); // doc id -> promise of {doc, u16}
      this.views = new WeakMap(); // turn -> its <li>
      this.busy = false;
      this.queue = []; // turns waiting for the one loading
      this.root = this.attachShadow({ mode: "open" });
      adoptStyles(this.root);
    }

    static textFragmentUrl(url, quote) {
      return textFragmentUrl(url, quote);
    }

    static documentLabel(doc) {
      return documentLabel(doc);
    }

    static reveal(element) {
      reveal(element);
    }

    connectedCallback() {
      if (this.log) return;
      this.log = h("ol", { class: "log", "aria-label": "Conversation" });
      this.status = h("p", { class: "sr-only", role: "status", "aria-live": "polite" });
      this.notice = h("p", { class: "notice" }); // shown; the status region says it aloud
      this.input = h("input", {
        id: "question", type: "text", autocomplete: "off", enterkeyhint: "send",
        maxlength: "1000", placeholder: "Ask a question about the article",
      });
      this.send = h("button", { type: "submit" }, "Ask");
      this.clear = h("button", { type: "button", onclick: () => this.reset() }, "New conversation");
      const form = h(
        "form", { "aria-label": "Ask a question", onsubmit: (e) => { e.preventDefault(); this.submit(); } },
        h("label", { class: "sr-only", for: "question" }, "Your question"), this.input, this.send,
      );
      const title = this.getAttribute("heading") || "Ask about this article";
      this.root.append(
        h("section", { class: "chat", "aria-labelledby": "title" },
          h("header", null, h("h2", { id: "title" }, title), this.clear),
          this.log, this.status, this.notice, form),
      );
      this.restore();
    }

    // ---------------------------------------------------------------- the service

    endpoint() {
      const raw = this.getAttribute("endpoint") || DEFAULT_ENDPOINT;
      let url;
      try {
        url = new URL(raw, location.href);
      } catch {
        throw new ChatError("config", { detail: `endpoint ${JSON.stringify(raw)} is not a URL` });
      }
      if (url.protocol !== "https:" && url.protocol !== "http:") {
        throw new ChatError("config", { detail: "the endpoint must be an http(s) URL" });
      }
      url.search = "";
      url.hash = "";
      if (!url.pathname.endsWith("/")) url.pathname += "/";
      return url;
    }

    /** JSON from `path` under the endpoint; refuses any URL outside the endpoint's origin. */
    async request(path, init = {}) {
      const base = this.endpoint();
      const url = new URL(path, base);
      if (url.origin !== base.origin) throw new ChatError("config", { detail: "refused a request off the endpoint" });
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
      try {
        const response = await fetch(url, {
          ...init, mode: "cors", credentials: "omit", redirect: "error", signal: abort.signal,
          headers: { Accept: "application/json", ...init.headers },
        });
        const body = await response.json().catch(() => null);
        if (!response.ok) {
          throw new ChatError("http", {
            status: response.status,
            detail: (body && body.error && body.error.message) || "",
            retryAfter: response.headers.get("Retry-After"),
          });
        }
        return body;
      } catch (err) {
        if (err instanceof ChatError) throw err;
        throw new ChatError(abort.signal.aborted ? "timeout" : "network");
      } finally {
        clearTimeout(timer);
      }
    }

    /** The document (text, paragraph spans, metadata), fetched once per id. */
    document(id) {
      if (!this.docs.has(id)) {
        const load = this.request(`documents/${encodeURIComponent(id)}`).then((doc) => ({
          doc, u16: utf16Index(doc.text),
        }));
        load.catch(() => this.docs.delete(id));
        this.docs.set(id, load);
      }
      return this.docs.get(id);
    }

    docIds() {
      const ids = (this.getAttribute("doc-ids") || "").split(",").map((s) => s.trim()).filter(Boolean);
      return ids.length ? ids : null;
    }

    // ---------------------------------------------------------------- the conversation

    /** Asks the question in the box: at once, or after the answer being loaded (queued);
     * when too many already wait, refuses in words, shown and announced, and keeps the text. */
    submit() {
      const question = this.input.value.trim();
      if (!question) return;
      if (this.busy && this.queue.length >= MAX_QUEUED) {
        this.tell(`Please wait: ${this.queue.length} questions are already waiting for the answer being loaded. Your question is still in the box; send it again once an answer arrives.`);
        return;
      }
      this.tell("");
      const history = this.turns.map((t) => t.question).slice(-MAX_HISTORY);
      const turn = { question, history, state: "pending" };
      this.turns.push(turn);
      this.input.value = "";
      this.renderTurn(turn, true);
      if (this.busy) this.enqueue(turn);
      else this.run(turn);
    }

    /** Keeps `turn` to be asked once the answer being loaded has arrived. */
    enqueue(turn) {
      Object.assign(turn, { state: "queued", response: undefined, error: undefined });
      this.queue.push(turn);
      this.save();
      this.renderReply(turn, null, { live: true });
      const ahead = this.queue.length === 1 ? "the answer being loaded" : "the answers before it";
      this.announce(`Your question will be asked after ${ahead}: ${turn.question}`);
    }

    async run(turn, { chained = false } = {}) {
      this.setBusy(true);
      Object.assign(turn, { state: "pending", response: undefined, error: undefined });
      this.save();
      // A queued question starts as the answer before it arrives: let that be seen and heard.
      const last = turn === this.turns[this.turns.length - 1];
      this.renderReply(turn, null, { live: true, follow: last && !chained });
      if (!chained) this.announce("Looking for an answer…");
      let docs = null;
      try {
        const body = { question: turn.question };
        if (turn.history.length) body.history = turn.history;
        const ids = this.docIds();
        if (ids) body.doc_ids = ids;
        const response = await this.request("ask", {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        });
        docs = await this.documentsFor(response);
        Object.assign(turn, { state: "answered", response });
      } catch (err) {
        const error = err instanceof ChatError ? err : new ChatError("network");
        Object.assign(turn, { state: "error", error: { message: error.readable } });
      }
      this.save();
      this.renderReply(turn, docs, { live: true, follow: true });
      this.announce(this.summary(turn, docs));
      const next = this.queue.shift();
      if (next) this.run(next, { chained: true });
      else this.setBusy(false);
    }

    async documentsFor(response) {
      const ids = new Set(response.passages.map((p) => p.doc_id));
      if (response.answer) ids.add(response.answer.doc_id);
      const entries = await Promise.all([...ids].map(async (id) => [id, await this.document(id)]));
      return new Map(entries);
    }

    retry(turn) {
      this.input.focus();
      if (this.busy) this.enqueue(turn);
      else this.run(turn);
    }

    reset() {
      if (this.busy) return;
      this.tell("");
      this.queue = [];
      this.turns = [];
      this.save();
      this.log.replaceChildren(this.emptyNote());
      this.announce("New conversation.");
      this.input.focus();
    }

    setBusy(busy) {
      this.busy = busy;
      this.clear.disabled = busy;
      this.log.setAttribute("aria-busy", String(busy));
    }

    announce(text) {
      this.status.textContent = text;
    }

    /** A note under the conversation, shown and announced ("" removes it). */
    tell(text) {
      this.notice.textContent = text;
      if (text) this.announce(text);
    }

    storageKey() {
      let base = "";
      try {
        base = this.endpoint().href;
      } catch {
        /* a broken endpoint is reported when asking */
      }
      return `${STORE_KEY}${base}|${this.id}`;
    }

    save() {
      const turns = this.turns.map(({ question, history, state, response, error }) => ({
        question, history, state, response, error,
      }));
      try {
        sessionStorage.setItem(this.storageKey(), JSON.stringify({ turns }));
      } catch {
        /* storage full or disabled: the conversation just won't survive a reload */
      }
    }

    async restore() {
      let saved = null;
      try {
        saved = JSON.parse(sessionStorage.getItem(this.storageKey()) || "null");
      } catch {
        saved = null;
      }
      this.turns = (saved && Array.isArray(saved.turns) ? saved.turns : []).filter(
        (t) => t && typeof t.question === "string" && Array.isArray(t.history),
      );
      if (!this.turns.length) {
        this.log.replaceChildren(this.emptyNote());
        return;
      }
      for (const turn of this.turns) {
        if (turn.state === "pending" || turn.state === "queued") {
          Object.assign(turn, { state: "error", error: { message: "The page was reloaded before the answer arrived." } });
        }
        this.renderTurn(turn);
      }
      for (const turn of this.turns) {
        if (turn.state !== "answered") continue;
        try {
          this.renderReply(turn, await this.documentsFor(turn.response));
        } catch (err) {
          turn.state = "error";
          turn.error = { message: err instanceof ChatError ? err.readable : "Couldn't show this answer." };
          delete turn.response;
          this.renderReply(turn, null);
        }
      }
      this.save();
    }

    // ---------------------------------------------------------------- rendering

    emptyNote() {
      return h("li", { class: "empty" }, "Ask a question. Answers are exact quotes from the article.");
    }

    /** Brings a new turn's top into view: in the log; or, where the widget grows with the page
     * (a short viewport), in the page, while the reader is in the widget (`live`). */
    follow(li, live) {
      if (getComputedStyle(this.log).overflowY !== "visible") {
        this.log.scrollTop = li.offsetTop - 8;
      } else if (live && this.root.activeElement) {
        li.scrollIntoView({ block: "start" });
      }
    }

    renderTurn(turn, live = false) {
      const empty = this.log.querySelector(".empty");
      if (empty) empty.remove();
      const li = h("li", { class: "turn" },
        h("p", { class: "bubble question" }, h("span", { class: "sr-only" }, "You asked: "), turn.question),
        h("div", { class: "bubble reply pending" }, "Loading"));
      this.views.set(turn, li);
      this.log.append(li);
      this.follow(li, live);
    }

    renderReply(turn, docs, { live = false, follow = turn === this.turns[this.turns.length - 1] } = {}) {
      const li = this.views.get(turn);
      if (!li) return;
      let reply;
      if (turn.state === "pending") {
        reply = h("div", { class: "bubble reply pending" }, "Looking for an answer");
      } else if (turn.state === "queued") {
        reply = h("div", { class: "bubble reply queued" }, "Waiting: this question will be asked once the answer above has arrived.");
      } else if (turn.state === "error") {
        reply = h("div", { class: "bubble reply error" },
          h("p", null, turn.error.message),
          h("div", { class: "actions" }, h("button", { type: "button", class: "retry", onclick: () => this.retry(turn) }, "Retry")));
      } else if (!docs) {
        reply = h("div", { class: "bubble reply pending" }, "Loading");
      } else if (turn.response.abstained || !turn.response.answer) {
        reply = this.abstention(turn.response, docs);
      } else {
        reply = this.answer(turn.response, docs);
      }
      li.lastElementChild.replaceWith(reply);
      if (follow) this.follow(li, live);
    }

    answer(response, docs) {
      const a = response.answer;
      const { doc, u16 } = docs.get(a.doc_id);
      const para = doc.paragraphs.find((p) => p.paragraph === a.paragraph);
      const s = u16(a.start);
      const e = u16(a.end);
      const exact = doc.text.slice(s, e) === a.text;
      const quote = exact && para && para.start <= a.start && a.end <= para.end
        ? highlighted(doc.text, u16(para.start), u16(para.end), [[s, e]])
        : h("mark", null, a.text); // the document changed since: show the quote alone
      const others = response.passages.filter((p) => !(p.doc_id === a.doc_id && p.start <= a.start && a.end <= p.end));
      return uniqueNames(h("div", { class: "bubble reply answer" },
        this.searchedNote(response),
        h("p", { class: "sr-only" }, "Answer:"),
        h("blockquote", { class: "quote" }, quote),
        speakerLine(a, doc),
        this.source(doc, a),
        h("div", { class: "actions" }, this.showLink(doc, a)),
        others.length ? this.passageList(`Other passages (${others.length})`, others, docs) : null));
    }

    // The service corrected misspelled words before searching: say what it searched for.
    searchedNote(response) {
      return response.searched_as
        ? h("p", { class: "searched" }, "Searched for: ", h("q", null, response.searched_as))
        : null;
    }

    abstention(response, docs) {
      const n = response.passages.length;
      return uniqueNames(h("div", { class: "bubble reply abstain" },
        this.searchedNote(response),
        h("p", null, `${notSaid(response)}${n ? " These passages come closest:" : " No passage comes close."}`),
        n ? this.passageList(`Nearest passages (${n})`, response.passages, docs) : null));
    }

    passageList(label, passages, docs) {
      return h("details", { class: "more" }, h("summary", null, label),
        h("ol", { class: "passages" }, ...passages.map((p) => {
          const { doc, u16 } = docs.get(p.doc_id);
          const marks = p.quotes.map((q) => [u16(q.start), u16(q.end)]);
          const best = p.quotes[0] || p;
          const span = { doc_id: p.doc_id, paragraph: p.paragraph, start: best.start, end: best.end, text: best.text };
          return h("li", null,
            h("blockquote", null, highlighted(doc.text, u16(p.start), u16(p.end), marks)),
            passageSpeakers(p.quotes, doc),
            this.source(doc, span),
            h("div", { class: "actions" }, this.showLink(doc, span)));
        })));
    }

    source(doc, span) {
      // Without a title, the label already starts with the author's name.
      const byline = String(doc.title || "").trim() && doc.author ? ` by ${doc.author}` : "";
      return h("p", { class: "source" },
        h("cite", null, documentLabel(doc)), byline,
        ` · paragraph ${span.paragraph}, characters ${span.start}–${span.end}`);
    }

    /** "Show in article": a link to the source with a text fragment when there is a source
     * URL (followed only when the page does not show the span itself), else a button. */
    showLink(doc, span) {
      const detail = { doc_id: span.doc_id, paragraph: span.paragraph, start: span.start, end: span.end, text: span.text };
      const onclick = (event) => {
        const shown = !this.dispatchEvent(new CustomEvent(SHOW_EVENT, { bubbles: true, composed: true, cancelable: true, detail }));
        if (shown) event.preventDefault();
      };
      // The visible words start the accessible name (WCAG 2.5.3), which says which passage.
      const name = `Show in article: paragraph ${span.paragraph} of ${articleName(doc)}`;
      const url = safeHttpUrl(doc.url);
      const link = url
        ? h("a", { class: "show", href: textFragmentUrl(url, span.text), target: "_blank", rel: "noopener noreferrer", "aria-label": name, onclick }, "Show in article")
        : h("button", { type: "button", class: "show", "aria-label": name, onclick }, "Show in article");
      QUOTES.set(link, span.text);
      return link;
    }

    summary(turn, docs) {
      if (turn.state === "error") return turn.error.message;
      const r = turn.response;
      if (r.abstained || !r.answer) return `${notSaid(r)} ${r.passages.length} nearest passages offered.`;
      const doc = docs.get(r.answer.doc_id).doc;
      const answer = `Answer from ${documentLabel(doc)}, paragraph ${r.answer.paragraph}: ${r.answer.text}`;
      const said = saidByText(r.answer, doc);
      if (!said) return answer;
      const stop = /[.!?…]["'”’)\]]*\s*$/u.test(r.answer.text) ? "" : ".";
      return `${answer}${stop} Said by ${said}.`;
    }
  }

  customElements.define(TAG, CommentaryChat);
})();
