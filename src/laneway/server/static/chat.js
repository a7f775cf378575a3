// The chat page: sends a turn to POST /v1/chat/stream and renders the answer as it
// streams in. The page keeps the history and sends it with each turn; a stopped or
// failed answer is not added to it (as in laneway's Conversation).
"use strict";

(() => {
  const { el, headers, readSSE, errorMessage, fmt } = laneway;
  const $ = (id) => document.getElementById(id);
  const messages = $("messages");
  const input = $("input");
  const sendButton = $("send");
  const stopButton = $("stop");
  const status = $("status");
  let history = [];
  let controller = null;

  function scrollDown() {
    messages.scrollTop = messages.scrollHeight;
  }

  function addBubble(role, text) {
    const empty = $("empty");
    if (empty) empty.remove();
    const content = el("div", { class: "content" });
    const bubble = el("article", { class: "msg " + role, "data-role": role },
      el("div", { class: "who", text: role === "user" ? "you" : "assistant" }), content);
    if (role === "user") content.textContent = text;
    messages.append(bubble);
    scrollDown();
    return { bubble, content };
  }

  function usageLine(done) {
    const u = done.usage || {};
    const parts = [
      "ttft " + fmt.ms(done.ttft_ms),
      (done.tokens_per_s === null || done.tokens_per_s === undefined
        ? "–" : Number(done.tokens_per_s).toFixed(1)) + " tok/s",
      fmt.int(u.input_tokens) + " in / " + fmt.int(u.output_tokens) + " out tokens",
      fmt.usd(done.cost_usd),
    ];
    if (done.stop_reason && done.stop_reason !== "end_turn") parts.push(done.stop_reason);
    parts.push(done.model);
    return parts.join(" · ") + (done.note ? "\n" + done.note : "");
  }

  function setBusy(busy) {
    sendButton.disabled = busy;
    stopButton.disabled = !busy;
    status.textContent = busy ? "streaming…" : "";
  }

  async function send(text) {
    const user = addBubble("user", text);
    const { bubble, content } = addBubble("assistant", "");
    bubble.dataset.state = "waiting";
    bubble.dataset.deltas = "0";
    const meta = el("div", { class: "meta" });
    bubble.append(meta);
    const body = { message: text, history };
    const system = $("system").value.trim();
    const model = $("model").value.trim();
    const maxTokens = parseInt($("max-tokens").value, 10);
    if (system) body.system = system;
    if (model) body.model = model;
    if (maxTokens > 0) body.max_tokens = maxTokens;

    let answer = "";
    let pending = false;
    const render = () => {
      pending = false;
      content.replaceChildren(markdown.render(answer));
      scrollDown();
    };
    controller = new AbortController();
    setBusy(true);
    try {
      const response = await fetch("/v1/chat/stream", {
        method: "POST", signal: controller.signal,
        headers: headers({ "Content-Type": "application/json", "Accept": "text/event-stream" }),
        body: JSON.stringify(body),
      });
      if (!response.ok) throw new Error(await errorMessage(response));
      let finished = false;
      for await (const ev of readSSE(response)) {
        const data = JSON.parse(ev.data);
        if (ev.event === "error") {
          const err = data.error || {};
          throw new Error((err.type || "error") + ": " + (err.message || ""));
        }
        if (data.done) {
          answer = data.text !== undefined ? data.text : answer;
          render();
          meta.textContent = usageLine(data);
          bubble.dataset.state = "done";
          history = history.concat([{ role: "user", content: text },
                                    { role: "assistant", content: answer }]);
          finished = true;
        } else if (typeof data.text === "string") {
          answer += data.text;
          bubble.dataset.state = "streaming";
          bubble.dataset.deltas = String(Number(bubble.dataset.deltas) + 1);
          if (!pending) {
            pending = true;
            requestAnimationFrame(render);
          }
        }
      }
      if (!finished) throw new Error("the stream ended early");
    } catch (err) {
      render();
      if (err.name === "AbortError") {
        bubble.dataset.state = "stopped";
        meta.textContent = "stopped (not kept in the conversation)";
      } else {
        bubble.dataset.state = "error";
        meta.textContent = String(err.message || err);
        meta.classList.add("error");
      }
      user.bubble.classList.add("unanswered");
    } finally {
      controller = null;
      setBusy(false);
      input.focus();
    }
  }

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || controller) return;
    input.value = "";
    send(text);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  stopButton.addEventListener("click", () => {
    if (controller) controller.abort();
  });
  $("reset").addEventListener("click", () => {
    if (controller) controller.abort();
    history = [];
    messages.replaceChildren(el("p", { class: "hint", id: "empty", text: "New conversation." }));
    input.focus();
  });
  input.focus();
})();
