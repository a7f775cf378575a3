// Shared by the pages: the token, DOM building (text nodes only), SSE parsing, formats.
"use strict";

const laneway = (() => {
  const token = new URLSearchParams(window.location.search).get("token");

  /** Request headers, with the bearer token when the page was opened with ?token=. */
  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (token) h["Authorization"] = "Bearer " + token;
    return h;
  }

  /** A same-origin URL carrying ?token= (for EventSource and links, which send no header). */
  function withToken(url) {
    const u = new URL(url, window.location.href);
    if (token) u.searchParams.set("token", token);
    return u.pathname + u.search;
  }

  /** An element whose children are elements or strings (always text nodes, never HTML). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (/html/i.test(key) || key.startsWith("on")) throw new Error("el(): refusing " + key);
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key === "role" || key.startsWith("aria-")) {
        node.setAttribute(key, value);
      } else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  /** Yield {event, data, id} for each server-sent event of a fetch() response body. */
  async function* readSSE(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let event = { event: "message", data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (event.data.length) {
            yield { event: event.event, data: event.data.join("\n"), id: event.id };
          }
          event = { event: "message", data: [], id: null };
          continue;
        }
        if (line.startsWith(":")) continue; // a comment (ping)
        const at = line.indexOf(":");
        const field = at < 0 ? line : line.slice(0, at);
        let val = at < 0 ? "" : line.slice(at + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "data") event.data.push(val);
        else if (field === "event") event.event = val;
        else if (field === "id") event.id = val;
      }
    }
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error.type + ": " + body.error.message;
    } catch (_) { /* not JSON */ }
    return "HTTP " + response.status;
  }

  const fmt = {
    int: (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US")),
    usd: (n) => (n === null || n === undefined ? "unknown"
      : "$" + Number(n).toFixed(n > 0 && n < 0.01 ? 6 : 4)),
    ms: (n) => (n === null || n === undefined ? "–" : Math.round(n) + " ms"),
    rate: (n) => (n === null || n === undefined ? "–" : Number(n).toFixed(1)),
    pct: (n) => (n === null || n === undefined ? "–" : Math.round(n) + "%"),
  };

  // Links between the pages keep the token.
  document.querySelectorAll("a[data-nav]").forEach((a) => {
    a.href = withToken(a.getAttribute("href"));
  });

  return { token, headers, withToken, el, readSSE, errorMessage, fmt };
})();
