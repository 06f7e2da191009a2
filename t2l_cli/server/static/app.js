// The t2l page: make an adapter from a description, pick one from the registry, and chat with it next to the
// bare base model. It speaks only to this server's own API; text from the server is always set as textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { adapter: null, histories: { base: [], adapter: [] } };

function headers() {
  const key = localStorage.getItem("t2l-api-key");
  return Object.assign({ "Content-Type": "application/json" }, key ? { Authorization: `Bearer ${key}` } : {});
}

async function api(path, options = {}) {
  const response = await fetch(path, Object.assign({ headers: headers() }, options));
  if (response.status === 401) $("key-box").hidden = false;
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error ? body.error.message : `${response.status} ${response.statusText}`);
  }
  return response;
}

// -- adapters -------------------------------------------------------------------------------------------------

async function listAdapters() {
  const q = $("search").value.trim();
  const data = (await (await api(`/v1/adapters${q ? `?q=${encodeURIComponent(q)}` : ""}`)).json()).data;
  const list = $("adapters");
  list.replaceChildren(...data.map((a) => {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = a.name || a.id.slice(0, 8);
    item.append(name, document.createTextNode(a.description));
    item.dataset.id = a.id;
    item.classList.toggle("chosen", state.adapter && state.adapter.id === a.id);
    item.addEventListener("click", () => choose(a.id));
    return item;
  }));
}

async function choose(id) {
  const a = await (await api(`/v1/adapters/${id}`)).json();
  state.adapter = a;
  $("current").textContent = a.name || a.id.slice(0, 8);
  $("current").title = a.description;
  $("details").hidden = false;
  $("details-title").textContent = a.name || a.id.slice(0, 8);
  $("details-description").textContent = a.description;
  $("scores").replaceChildren(...a.scores.map((s) => {
    const row = document.createElement("tr");
    for (const text of [s.bench, s.metric, `${(100 * s.value).toFixed(1)}`, `n=${s.n}`, s.protocol]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  }));
  if (!a.scores.length) $("scores").textContent = "no scores yet (t2l eval)";
  $("download-file").href = `/v1/adapters/${a.id}/download`;
  $("download-peft").href = `/v1/adapters/${a.id}/download?format=peft`;
  $("card").textContent = a.card || "";
  resetChat();
  await listAdapters();
}

async function make() {
  const description = $("description").value.trim();
  if (!description) return;
  $("make").disabled = true;
  $("make-status").textContent = "making...";
  try {
    const made = await (await api("/v1/adapters", { method: "POST", body: JSON.stringify({ description }) })).json();
    $("make-status").textContent = `made ${made.id.slice(0, 8)}`;
    await choose(made.id);
  } catch (e) {
    $("make-status").textContent = e.message;
  } finally {
    $("make").disabled = false;
  }
}

// -- chat -----------------------------------------------------------------------------------------------------

function turn(log, kind, text) {
  const div = document.createElement("div");
  div.className = `turn ${kind}`;
  div.textContent = text;
  $(log).append(div);
  return div;
}

function resetChat() {
  state.histories = { base: [], adapter: [] };
  $("base-log").replaceChildren();
  $("adapter-log").replaceChildren();
}

async function answer(side, model) {
  const history = state.histories[side];
  const box = turn(`${side}-log`, "answer", "");
  const settings = { temperature: Number($("temperature").value), max_tokens: Number($("max-tokens").value) };
  if ($("seed").value !== "") settings.seed = Number($("seed").value);
  try {
    const response = await api("/v1/chat/completions", {
      method: "POST", body: JSON.stringify(Object.assign({ model, messages: history, stream: true }, settings)),
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      const events = pending.split("\n\n");
      pending = events.pop();
      for (const event of events) {
        const data = event.replace(/^data: /, "");
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const delta = chunk.choices.length ? chunk.choices[0].delta.content : null;
        if (delta) box.textContent += delta;
      }
    }
    history.push({ role: "assistant", content: box.textContent });
  } catch (e) {
    box.className = "turn error";
    box.textContent = e.message;
  }
  box.dataset.done = "1";
}

async function send(event) {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text) return;
  if (!state.adapter) {
    turn("adapter-log", "error", "make or pick an adapter first").dataset.done = "1";
  }
  $("message").value = "";
  $("send").disabled = true;
  for (const side of ["base", "adapter"]) {
    state.histories[side].push({ role: "user", content: text });
    turn(`${side}-log`, "user", text);
  }
  // both at once: the server answers one after the other, never mixing the two
  const asks = [answer("base", "base")];
  if (state.adapter) asks.push(answer("adapter", state.adapter.id));
  await Promise.all(asks);
  $("send").disabled = false;
}

// -- start ----------------------------------------------------------------------------------------------------

async function start() {
  $("api-key").value = localStorage.getItem("t2l-api-key") || "";
  $("api-key").addEventListener("change", () => {
    localStorage.setItem("t2l-api-key", $("api-key").value);
    listAdapters().catch(() => {});
  });
  $("make").addEventListener("click", make);
  $("ask").addEventListener("submit", send);
  $("message").addEventListener("keydown", (e) => {  // Enter sends, Shift+Enter starts a new line
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("ask").requestSubmit();
    }
  });
  $("reset").addEventListener("click", resetChat);
  let typing;
  $("search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => listAdapters().catch(() => {}), 150);
  });
  const health = await (await fetch("/health")).json();
  $("base-name").textContent = `base model: ${health.base}`;
  await listAdapters().catch(() => {});
}

start();
