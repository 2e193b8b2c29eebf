/*
 * The demo page: shows an article (the first one, or ?doc=ID) paragraph by paragraph beside
 * the <commentary-chat> widget, and highlights a quote when the widget asks to show it
 * (the "commentary-chat:show-span" event), taking the keyboard focus there. Article text is
 * inserted as text nodes only.
 */
(() => {
  "use strict";

  const title = document.getElementById("article-title");
  const byline = document.getElementById("article-byline");
  const body = document.getElementById("article-body");
  const status = document.getElementById("article-status");
  let current = null; // {id, text, u16, paragraphs: [{node, start, end, text}]}
  let loading = null; // promise of the document being shown

  /** Code point offsets (the service's) to UTF-16 indices (JavaScript's). */
  function utf16Index(text) {
    if (!/[\uD800-\uDFFF]/.test(text)) return (cp) => cp;
    const map = [0];
    for (let i = 0; i < text.length; ) {
      i += text.codePointAt(i) > 0xffff ? 2 : 1;
      map.push(i);
    }
    return (cp) => map[Math.max(0, Math.min(cp, map.length - 1))];
  }

  async function getJSON(path) {
    for (let attempt = 0; ; attempt += 1) {
      const response = await fetch(path, { headers: { Accept: "application/json" } });
      // 503 while the service loads its index: wait for it.
      if (response.status === 503 && attempt < 120) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
      return response.json();
    }
  }

  /** The article's name, as the widget gives it (its title, else author and opening words). */
  function label(doc) {
    const chat = customElements.get("commentary-chat");
    if (chat && chat.documentLabel) return chat.documentLabel(doc);
    return doc.title || [doc.author, doc.text.trim().split("\n")[0].slice(0, 48)].filter(Boolean).join(": ");
  }

  function render(doc) {
    const u16 = utf16Index(doc.text);
    const name = label(doc);
    title.textContent = name;
    document.title = `${name} · Commentary QA demo`;
    const by = [doc.author, doc.affiliation, doc.publisher, doc.published].filter(Boolean).join(" · ");
    byline.replaceChildren(by);
    let url = null;
    try {
      const parsed = new URL(doc.url);
      if (parsed.protocol === "https:" || parsed.protocol === "http:") url = parsed.href;
    } catch {
      /* no (usable) source URL */
    }
    if (url) {
      const link = document.createElement("a");
      link.href = url;
      link.rel = "noopener noreferrer";
      link.textContent = "Source";
      byline.append(by ? " · " : "", link);
    }
    const paragraphs = doc.paragraphs.map((p) => {
      const text = doc.text.slice(u16(p.start), u16(p.end));
      const node = document.createElement("p");
      node.textContent = text;
      node.dataset.paragraph = String(p.paragraph);
      return { node, start: p.start, end: p.end, text };
    });
    body.replaceChildren(...paragraphs.map((p) => p.node));
    current = { id: doc.id, text: doc.text, u16, paragraphs };
  }

  function show(id) {
    loading = getJSON(`/documents/${encodeURIComponent(id)}`).then(render);
    return loading;
  }

  function clearHighlights() {
    for (const p of current.paragraphs) if (p.node.firstElementChild) p.node.textContent = p.text;
  }

  /** Wrap [start, end) (code points into the document text) in <mark>s, paragraph by paragraph. */
  function highlight(start, end) {
    clearHighlights();
    const { u16 } = current;
    const marks = [];
    for (const p of current.paragraphs) {
      const s = Math.max(start, p.start);
      const e = Math.min(end, p.end);
      if (s >= e) continue;
      const range = document.createRange();
      range.setStart(p.node.firstChild, u16(s) - u16(p.start));
      range.setEnd(p.node.firstChild, u16(e) - u16(p.start));
      const mark = document.createElement("mark");
      range.surroundContents(mark);
      marks.push(mark);
    }
    return marks;
  }

  document.addEventListener("commentary-chat:show-span", async (event) => {
    event.preventDefault(); // this page shows the span itself
    const { doc_id: id, start, end, paragraph } = event.detail;
    try {
      await loading;
      if (!current || current.id !== id) await show(id);
      const marks = highlight(start, end);
      if (!marks.length) return;
      // The reader follows the passage: scrolled to, and focused (tabindex="-1"), so that the
      // keyboard and screen reader go on from there, not from a button left behind.
      customElements.get("commentary-chat").reveal(marks[0]);
      status.textContent = `Highlighted in the article, paragraph ${paragraph}.`;
    } catch (err) {
      status.textContent = `Could not show the passage: ${err.message}`;
    }
  });

  async function start() {
    document.getElementById("snippet").textContent =
      `<script src="${location.origin}/widget.js" defer></script>\n<commentary-chat></commentary-chat>`;
    try {
      const wanted = new URLSearchParams(location.search).get("doc");
      const { documents } = await getJSON("/documents");
      const id = wanted || (documents[0] && documents[0].id);
      if (!id) {
        title.textContent = "No articles are indexed yet.";
        return;
      }
      await show(id);
    } catch (err) {
      title.textContent = "The article could not be loaded.";
      byline.textContent = err.message;
    }
  }

  start();
})();
