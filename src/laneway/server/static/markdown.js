// A tiny, safe markdown subset for model output: paragraphs, headings, lists, quotes,
// fenced code, `code`, **bold** and *italic*. Every piece of text becomes a text node
// (textContent); nothing the model writes is ever parsed as HTML, and no links or
// images are made, so no URL the model chooses is ever loaded.
"use strict";

const markdown = (() => {
  // Underscores are left alone: identifiers like __init__ are far more common in
  // model output than _emphasis_.
  const INLINE = /(`[^`\n]+`|\*\*[^*\n]+\*\*|\*[^*\s][^*\n]*\*)/;

  function inline(text, parent) {
    for (const part of text.split(INLINE)) {
      if (!part) continue;
      let node;
      if (part.length > 2 && part.startsWith("`") && part.endsWith("`")) {
        node = document.createElement("code");
        node.textContent = part.slice(1, -1);
      } else if (part.length > 4 && part.startsWith("**") && part.endsWith("**")) {
        node = document.createElement("strong");
        inline(part.slice(2, -2), node);
      } else if (part.length > 2 && part.startsWith("*") && part.endsWith("*")) {
        node = document.createElement("em");
        inline(part.slice(1, -1), node);
      } else {
        node = document.createTextNode(part);
      }
      parent.append(node);
    }
  }

  function block(tag, text) {
    const node = document.createElement(tag);
    inline(text, node);
    return node;
  }

  /** Render `text` into a DocumentFragment (an unclosed ``` fence renders as code so far). */
  function render(text) {
    const out = document.createDocumentFragment();
    const lines = text.split("\n");
    let para = [];
    let list = null;
    const flushPara = () => {
      if (para.length) out.append(block("p", para.join("\n")));
      para = [];
    };
    const flushList = () => {
      if (list) out.append(list);
      list = null;
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const fence = line.match(/^\s*```\s*([\w+-]*)\s*$/);
      if (fence) {
        flushPara();
        flushList();
        const code = [];
        for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]); i++) code.push(lines[i]);
        const pre = document.createElement("pre");
        const c = document.createElement("code");
        if (fence[1]) c.setAttribute("data-lang", fence[1]);
        c.textContent = code.join("\n");
        pre.append(c);
        out.append(pre);
        continue;
      }
      const heading = line.match(/^(#{1,6})\s+(.*)$/);
      const bullet = line.match(/^\s*[-*+]\s+(.*)$/);
      const numbered = line.match(/^\s*\d+[.)]\s+(.*)$/);
      const quote = line.match(/^>\s?(.*)$/);
      if (heading) {
        flushPara();
        flushList();
        out.append(block("h" + Math.min(6, heading[1].length + 2), heading[2]));
      } else if (bullet || numbered) {
        flushPara();
        const tag = bullet ? "ul" : "ol";
        if (!list || list.tagName.toLowerCase() !== tag) {
          flushList();
          list = document.createElement(tag);
        }
        list.append(block("li", (bullet || numbered)[1]));
      } else if (quote) {
        flushPara();
        flushList();
        out.append(block("blockquote", quote[1]));
      } else if (line.trim() === "") {
        flushPara();
        flushList();
      } else {
        flushList();
        para.push(line);
      }
    }
    flushPara();
    flushList();
    return out;
  }

  return { render };
})();
