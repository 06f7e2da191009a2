// The t2l page: make an adapter from a description, pick one from the registry, and chat with it next to the
// bare base model. It speaks only to this server's own API; text from the server is always set as textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { adapter: null, histories: { base: [], adapter: [] }, asking: null, listed: 0 };

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

function say(id, text, problem = false) {
  $(id).textContent = text;
  $(id).classList.toggle("problem", problem);
}

// -- adapters -------------------------------------------------------------------------------------------------

async function listAdapters() {
  const q = $("search").value.trim();
  const by = $("search-by").value;
  const asked = ++state.listed;  // an answer to an older query that comes late is dropped
  const query = q ? `?q=${encodeURIComponent(q)}${by === "meaning" ? "&by=meaning" : ""}` : "";
  if (q && by === "meaning") say("adapters-note", "ranking by meaning...");
  let data;
  try {
    data = (await (await api(`/v1/adapters${query}`)).json()).data;
  } catch (e) {
    if (asked === state.listed) say("adapters-note", e.message, true);
    throw e;
  }
  if (asked !== state.listed) return;
  const list = $("adapters");
  list.replaceChildren(...data.map((a) => {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = a.name || a.id.slice(0, 8);
    if (a.similarity !== undefined) {
      const sim = document.createElement("span");
      sim.className = "similarity";
      sim.title = "similarity of meaning to the search (1 is the same)";
      sim.textContent = a.similarity.toFixed(2);
      item.append(sim);
    }
    item.append(name, document.createTextNode(a.description));
    item.dataset.id = a.id;
    item.classList.toggle("chosen", Boolean(state.adapter && state.adapter.id === a.id));
    item.addEventListener("click", () => choose(a.id));
    return item;
  }));
  say("adapters-note", data.length ? (q && by === "meaning" ? "closest in meaning first" : "")
    : q ? `no adapter ${by === "meaning" ? "to rank" : "holds every word of the search"}`
      : "none yet: describe a task above to make one");
}

async function choose(id) {
  const a = await (await api(`/v1/adapters/${id}`)).json();
  state.adapter = a;
  $("current").textContent = a.name || a.id.slice(0, 8);
  $("current").title = a.description;
  $("details").hidden = false;
  $("details-title").textContent = a.name || a.id.slice(0, 8);
  const shots = a.examples_count ? `${a.examples_count} example${a.examples_count === 1 ? "" : "s"}` : "";
  $("details-description").textContent = !shots ? a.description
    : a.description ? `${a.description} (made from ${shots} too)` : `(made from ${shots} alone)`;
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
  say("download-status", "");
  $("card").textContent = a.card || "";
  resetChat();
  await listAdapters();
}

// The examples box: one example a line, "INPUT -> OUTPUT" (split at the last arrow, so an input may hold one) or a
// JSON object as in an --examples file; blank lines are skipped. Throws naming the line that is neither.
function examples() {
  const lines = $("examples").value.split("\n").map((line) => line.trim());
  return lines.flatMap((line, i) => {
    if (!line) return [];
    if (line.startsWith("{")) {
      try {
        return [JSON.parse(line)];
      } catch (e) {
        throw new Error(`example line ${i + 1} is not valid JSON: write INPUT -> OUTPUT or {"input": ..., "output": ...}`);
      }
    }
    const arrow = line.lastIndexOf("->");
    if (arrow < 0) throw new Error(`example line ${i + 1} has no "->": write INPUT -> OUTPUT`);
    return [{ input: line.slice(0, arrow).trim(), output: line.slice(arrow + 2).trim() }];
  });
}

async function make() {
  const description = $("description").value.trim();
  let shots;
  try {
    shots = examples();
  } catch (e) {
    say("make-status", e.message, true);
    $("examples").focus();
    return;
  }
  if (!description && !shots.length) {
    say("make-status", "Write a description first: the adapter is made from what the task is, in words (or from examples).", true);
    $("description").focus();
    return;
  }
  const body = { description };
  if (shots.length) body.examples = shots;
  const name = $("adapter-name").value.trim();
  if (name) body.name = name;
  $("make").disabled = true;
  say("make-status", "making...");
  try {
    const made = await (await api("/v1/adapters", { method: "POST", body: JSON.stringify(body) })).json();
    say("make-status", `made ${made.name || made.id.slice(0, 8)}`);
    $("adapter-name").value = "";
    $("examples").value = "";
    await choose(made.id);
  } catch (e) {
    say("make-status", e.message, true);
  } finally {
    $("make").disabled = false;
  }
}

// A download through fetch, so that it carries the API key: the file arrives as a blob and is saved from there.
// (Following the link itself would send no key, and a server with one would answer with a JSON 401 page.)
function filename(disposition, fallback) {
  const encoded = /filename\*=utf-8''([^;]+)/i.exec(disposition || "");
  if (encoded) return decodeURIComponent(encoded[1]);
  const plain = /filename="([^"]*)"/i.exec(disposition || "");
  return plain ? plain[1] : fallback;
}

async function download(event) {
  event.preventDefault();
  const link = event.currentTarget;
  say("download-status", "downloading...");
  try {
    const response = await api(link.getAttribute("href"), { headers: headers() });
    const blob = await response.blob();
    const save = document.createElement("a");
    save.href = URL.createObjectURL(blob);
    save.download = filename(response.headers.get("Content-Disposition"), "adapter");
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(save.href), 60_000);
    say("download-status", `saved ${save.download}`);
  } catch (e) {
    say("download-status", e.message, true);
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
  if (state.asking) state.asking.abort();
  state.histories = { base: [], adapter: [] };
  $("base-log").replaceChildren();
  $("adapter-log").replaceChildren();
}

// What the server said of a waiting answer (an SSE comment `: t2l {...}`, which OpenAI's clients skip).
function progressNote(status) {
  if (status.status === "queued") {
    return status.ahead ? `queued: ${status.ahead} ${status.ahead === 1 ? "answer" : "answers"} ahead, waiting for room in the batch`
      : "queued: next to join the batch";
  }
  return "generating: reading the prompt...";
}

async function answer(side, model, signal) {
  const history = state.histories[side];
  const box = turn(`${side}-log`, "answer", "");
  const text = document.createElement("div");
  text.className = "text";
  const note = document.createElement("div");
  note.className = "note";
  box.append(text, note);
  const show = (phase, words) => {
    box.dataset.state = phase;
    note.textContent = words;
  };
  show("sending", "sending...");
  const maxTokens = Number($("max-tokens").value);
  const settings = { temperature: Number($("temperature").value), max_tokens: maxTokens };
  if ($("seed").value !== "") settings.seed = Number($("seed").value);
  let finish = null;
  try {
    const response = await api("/v1/chat/completions", {
      method: "POST", signal,
      body: JSON.stringify(Object.assign({ model, messages: history, stream: true }, settings)),
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
        for (const line of event.split("\n")) {
          if (line.startsWith(": t2l ")) {
            if (!text.textContent) {
              const status = JSON.parse(line.slice(6));
              show(status.status, progressNote(status));
            }
            continue;
          }
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          if (!chunk.choices.length) continue;
          const choice = chunk.choices[0];
          if (choice.delta.content) {
            text.textContent += choice.delta.content;
            if (box.dataset.state !== "answering") show("answering", "");
          }
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }
    }
    if (finish === "length") {
      show("length", `stopped at max tokens (${maxTokens}): raise "max tokens" for longer answers`);
    } else {
      show("done", "");
    }
    box.dataset.finish = finish || "";
    history.push({ role: "assistant", content: text.textContent });
  } catch (e) {
    if (e.name === "AbortError") {
      show("stopped", text.textContent ? "stopped" : "stopped before the answer began");
      if (text.textContent) history.push({ role: "assistant", content: text.textContent });
      else history.pop();  // the question goes unanswered: leave it out of what the model sees next
    } else {
      box.className = "turn error";
      show("error", "");
      text.textContent = e.message;
      history.pop();
    }
  }
  box.dataset.done = "1";
}

async function send(event) {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text || state.asking) return;
  if (!state.adapter) {
    turn("adapter-log", "error", "make or pick an adapter first").dataset.done = "1";
  }
  $("message").value = "";
  const asking = new AbortController();
  state.asking = asking;
  $("send").disabled = true;
  $("stop").hidden = false;
  for (const side of ["base", "adapter"]) {
    if (side === "adapter" && !state.adapter) continue;
    state.histories[side].push({ role: "user", content: text });
    turn(`${side}-log`, "user", text);
  }
  // both at once: each is a row of the server's batch
  const asks = [answer("base", "base", asking.signal)];
  if (state.adapter) asks.push(answer("adapter", state.adapter.id, asking.signal));
  await Promise.all(asks);
  state.asking = null;
  $("send").disabled = false;
  $("stop").hidden = true;
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
  $("stop").addEventListener("click", () => state.asking && state.asking.abort());
  $("message").addEventListener("keydown", (e) => {  // Enter sends, Shift+Enter starts a new line
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("ask").requestSubmit();
    }
  });
  $("reset").addEventListener("click", resetChat);
  $("download-file").addEventListener("click", download);
  $("download-peft").addEventListener("click", download);
  let typing;
  const research = () => {  // by meaning runs the encoder: wait for a pause in the typing
    clearTimeout(typing);
    typing = setTimeout(() => listAdapters().catch(() => {}), $("search-by").value === "meaning" ? 400 : 150);
  };
  $("search").addEventListener("input", research);
  $("search-by").addEventListener("change", research);
  const health = await (await fetch("/health")).json();
  $("base-name").textContent = `base model: ${health.base}`;
  await listAdapters().catch(() => {});
}

start();
