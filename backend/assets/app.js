// The chat page: talks to this server's API only (same origin), streams each turn as
// server-sent events, and keeps the conversation across reloads in localStorage.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    messages: $("messages"), welcome: $("welcome"), form: $("composer"), input: $("message"),
    send: $("send"), error: $("error"), errorText: $("error-text"), retry: $("retry"),
    status: $("status"), tasks: $("task-list"), tasksEmpty: $("tasks-empty"),
    convs: $("conversation-list"), convsEmpty: $("conversations-empty"),
    newConv: $("new-conversation"), settings: $("settings"), settingsToggle: $("settings-toggle"),
    settingsForm: $("settings-form"), settingsCancel: $("settings-cancel"),
    userInput: $("user-id"), tokenInput: $("token"),
  };

  // Whole-turn limit and the longest silence tolerated inside a stream.
  const TURN_TIMEOUT_MS = 150000;
  const IDLE_TIMEOUT_MS = 75000;

  const store = {
    get: (k) => { try { return localStorage.getItem("todo." + k); } catch { return null; } },
    set: (k, v) => {
      try { v == null ? localStorage.removeItem("todo." + k) : localStorage.setItem("todo." + k, v); } catch { /* private mode */ }
    },
  };

  // A token can be handed over in the address fragment (#token=…), which never reaches a server.
  (() => {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      store.set("token", decodeURIComponent(m[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
  })();

  function tokenSubject(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
      return typeof claims.sub === "string" ? claims.sub : null;
    } catch { return null; }
  }

  const state = {
    token: store.get("token") || "",
    user: "",
    conversation: store.get("conversation"),
    busy: false,
    pending: null, // {message, key, conversation, userItem} of the turn that failed, for Retry
  };
  state.user = (state.token && tokenSubject(state.token)) || store.get("user") || "me";

  const api = (path) => `/api/${encodeURIComponent(state.user)}${path}`;
  function headers(extra) {
    const h = Object.assign({ "Accept": "application/json" }, extra || {});
    if (state.token) h["Authorization"] = "Bearer " + state.token;
    return h;
  }

  class TurnFailure extends Error {
    constructor(message, code) { super(message); this.code = code || "failed"; }
  }

  // What a failed response means for a person.
  async function failureOf(res) {
    let code = "http_" + res.status, message = "";
    try {
      const body = await res.json();
      if (body && body.error) { code = body.error.code || code; message = body.error.message || ""; }
    } catch { /* not JSON */ }
    return new TurnFailure(explain(code, message, res.status), code);
  }

  function explain(code, message, status) {
    if (code === "llm_not_configured") {
      return "No language model is configured on the server. Set OPENAI_API_KEY, OPENAI_BASE_URL and " +
        "LLM_MODEL for todo-backend and restart it; your tasks and history are safe meanwhile.";
    }
    if (status === 401) return "The server needs you to sign in: open Settings and paste your bearer token.";
    if (status === 403) return "This token belongs to someone else: check the name and token in Settings.";
    if (status === 429) return "You are sending messages faster than allowed. Wait a moment, then retry.";
    return message || `The server answered with an error (HTTP ${status}).`;
  }

  async function getJson(path) {
    const res = await fetch(api(path), { headers: headers(), cache: "no-store" });
    if (!res.ok) throw await failureOf(res);
    return res.json();
  }

  // ---- rendering -------------------------------------------------------------------------

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function scrollToEnd() { els.messages.lastElementChild?.scrollIntoView({ block: "end" }); }

  function addMessage(role, text) {
    els.welcome.hidden = true;
    const li = el("li", "msg " + role);
    li.append(el("span", "visually-hidden", role === "user" ? "You said: " : "Assistant: "));
    const bubble = el("div", "bubble", text);
    li.append(bubble);
    if (role === "assistant") li.append(el("ul", "confirmations"));
    els.messages.append(li);
    scrollToEnd();
    return li;
  }

  function dayLabel(due) {
    if (!due) return "";
    const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(due);
    const d = dateOnly ? new Date(due + "T00:00:00") : new Date(due);
    if (isNaN(d)) return due;
    const start = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
    const days = Math.round((start(d) - start(new Date())) / 86400000);
    let label = days === 0 ? "today" : days === 1 ? "tomorrow" : days === -1 ? "yesterday"
      : d.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short" });
    if (!dateOnly) label += " " + d.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" });
    return label;
  }

  const quote = (t) => `\u2018${t}\u2019`;

  // A short line for one tool call: "Added ‘Buy milk’ · due tomorrow", "Completed #3".
  function describe(name, args, result, isError) {
    args = args && typeof args === "object" ? args : {};
    const r = result && typeof result === "object" ? result : {};
    const id = r.id ?? args.id;
    const title = r.title ?? args.title;
    if (isError) {
      const why = typeof r.error === "string" ? r.error : "it did not work";
      const what = { add_task: "Adding", complete_task: "Completing", delete_task: "Deleting",
        update_task: "Changing", list_tasks: "Listing", restore_task: "Restoring" }[name] || name;
      return `${what}${id != null && name !== "add_task" ? " #" + id : ""} failed: ${why}`;
    }
    switch (name) {
      case "add_task": {
        let s = `Added ${quote(title || "a task")}`;
        if (r.due || args.due) s += ` \u00b7 due ${dayLabel(r.due || args.due)}`;
        const p = r.priority || args.priority;
        if (p && p !== "medium") s += ` \u00b7 ${p} priority`;
        return s;
      }
      case "complete_task": return `Completed #${id}`;
      case "delete_task": return `Deleted #${id} (in the trash)`;
      case "restore_task": return `Restored #${id}`;
      case "update_task": return `Updated #${id}${title ? " " + quote(title) : ""}`;
      case "list_tasks": {
        const n = Array.isArray(r.tasks) ? r.tasks.length : null;
        return n == null ? "Looked at your tasks" : `Looked at ${n} task${n === 1 ? "" : "s"}`;
      }
      default: return `Ran ${name}`;
    }
  }

  function setConfirmation(li, key, text, isError, pending) {
    const list = li.querySelector(".confirmations");
    let item = list.querySelector(`[data-call="${CSS.escape(key)}"]`);
    if (!item) {
      item = el("li");
      item.dataset.call = key;
      list.append(item);
    }
    item.className = "confirmation" + (isError ? " failed" : "") + (pending ? " pending" : "");
    item.textContent = (isError ? "\u26a0 " : pending ? "\u2026 " : "\u2713 ") + text;
  }

  function renderAnswerCalls(li, calls) {
    li.querySelector(".confirmations").replaceChildren();
    (calls || []).forEach((c, i) => setConfirmation(li, "done-" + i, describe(c.name, c.arguments, c.result, c.is_error), c.is_error, false));
  }

  function renderTasks(tasks) {
    const sorted = tasks.slice().sort((a, b) =>
      (a.completed - b.completed) ||
      ((a.due ? 0 : 1) - (b.due ? 0 : 1)) ||
      String(a.due || "").localeCompare(String(b.due || "")) ||
      ({ high: 0, medium: 1, low: 2 }[a.priority] - { high: 0, medium: 1, low: 2 }[b.priority]) ||
      a.id - b.id);
    els.tasks.replaceChildren(...sorted.map((t) => {
      const li = el("li", "task" + (t.completed ? " done" : ""));
      li.append(el("span", "task-id", "#" + t.id));
      li.append(el("span", "task-title", t.title));
      const meta = el("span", "task-meta");
      if (t.completed) meta.append(el("span", "badge", "done"));
      if (t.due) meta.append(el("span", "due", "due " + dayLabel(t.due)));
      if (t.priority && t.priority !== "medium") meta.append(el("span", "badge prio-" + t.priority, t.priority + " priority"));
      li.append(meta);
      return li;
    }));
    els.tasksEmpty.hidden = tasks.length > 0;
  }

  async function loadTasks() {
    try {
      const page = await getJson("/tasks?status=all&limit=100");
      renderTasks(page.tasks || []);
    } catch (e) { /* the panel keeps what it showed; the chat says what is wrong */ }
  }

  async function loadConversations() {
    try {
      const list = await getJson("/conversations?limit=50");
      const items = (list.conversations || []).map((c) => {
        const li = el("li");
        const b = el("button", "conv", c.title || "Conversation");
        b.type = "button";
        b.append(el("span", "conv-date", " " + new Date(c.updated_at).toLocaleString()));
        if (c.id === state.conversation) b.setAttribute("aria-current", "true");
        b.addEventListener("click", () => openConversation(c.id));
        li.append(b);
        return li;
      });
      els.convs.replaceChildren(...items);
      els.convsEmpty.hidden = items.length > 0;
    } catch { /* shown by the next turn's error */ }
  }

  function setConversation(id) {
    state.conversation = id;
    store.set("conversation", id);
  }

  // Restores a stored conversation: people's messages, replies, and each call's confirmation.
  async function openConversation(id) {
    if (state.busy) return;
    hideError();
    let messages = [];
    try {
      let after = 0;
      for (let page = 0; page < 20; page++) {
        const body = await getJson(`/conversations/${encodeURIComponent(id)}/messages?after=${after}&limit=500`);
        messages = messages.concat(body.messages || []);
        if (!body.messages || body.messages.length < 500) break;
        after = body.messages[body.messages.length - 1].seq;
      }
    } catch (e) {
      if (e.code === "not_found") { newConversation(); return; }
      showError(e.message, false);
      return;
    }
    setConversation(id);
    els.messages.replaceChildren();
    els.welcome.hidden = messages.length > 0;
    const calls = new Map(); // tool_call_id → {name, arguments}
    let pendingCalls = [];
    for (const m of messages) {
      if (m.role === "user") {
        addMessage("user", m.content);
        pendingCalls = [];
      } else if (m.role === "assistant" && m.tool_calls && m.tool_calls.length) {
        for (const c of m.tool_calls) {
          let args = c.arguments;
          try { args = JSON.parse(c.arguments); } catch { /* shown raw */ }
          calls.set(c.id, { name: c.name, args });
        }
      } else if (m.role === "tool") {
        const c = calls.get(m.tool_call_id) || { name: m.tool_name, args: {} };
        let result = {};
        try { result = JSON.parse(m.content); } catch { result = m.is_error ? { error: m.content } : {}; }
        pendingCalls.push({ name: c.name, arguments: c.args, result, is_error: m.is_error });
      } else if (m.role === "assistant") {
        const li = addMessage("assistant", m.content);
        renderAnswerCalls(li, pendingCalls);
        pendingCalls = [];
      }
    }
    await loadConversations();
    scrollToEnd();
  }

  function newConversation() {
    if (state.busy) return;
    setConversation(null);
    state.pending = null;
    hideError();
    els.messages.replaceChildren();
    els.welcome.hidden = false;
    loadConversations();
    els.input.focus();
  }

  // ---- errors ----------------------------------------------------------------------------

  function showError(text, canRetry) {
    els.errorText.textContent = text;
    els.retry.hidden = !canRetry;
    els.error.hidden = false;
  }

  function hideError() { els.error.hidden = true; els.errorText.textContent = ""; }

  function setBusy(busy) {
    state.busy = busy;
    els.send.disabled = busy;
    els.retry.disabled = busy;
    els.newConv.disabled = busy;
    els.form.setAttribute("aria-busy", String(busy));
  }

  // ---- a turn ----------------------------------------------------------------------------

  function newKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  // Reads server-sent events from a fetch response, calling onEvent(name, data).
  async function readEvents(res, onEvent, resetIdle) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder(); // stream: true keeps a character split across reads whole
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      resetIdle();
      buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const k = line.indexOf(":");
          const field = k < 0 ? line : line.slice(0, k);
          const v = k < 0 ? "" : line.slice(k + 1).replace(/^ /, "");
          if (field === "event") name = v; else if (field === "data") data.push(v);
        }
        if (data.length) onEvent(name, data.join("\n"));
      }
    }
  }

  // `conversation` is the one the message was first sent to: a retry must send the very
  // same request, or the server would take the Idempotency-Key as reused for another one.
  async function send(message, key, conversation, userItem) {
    setBusy(true);
    hideError();
    state.pending = { message, key, conversation, userItem };
    const li = addMessage("assistant", "");
    const bubble = li.querySelector(".bubble");
    bubble.setAttribute("aria-live", "polite");
    bubble.setAttribute("aria-busy", "true");
    bubble.classList.add("streaming");
    els.status.textContent = "Working on it\u2026";

    const controller = new AbortController();
    let timedOut = false;
    const abort = () => { timedOut = true; controller.abort(); };
    const whole = setTimeout(abort, TURN_TIMEOUT_MS);
    let idle = setTimeout(abort, IDLE_TIMEOUT_MS);
    const resetIdle = () => { clearTimeout(idle); idle = setTimeout(abort, IDLE_TIMEOUT_MS); };

    let answer = null, failure = null, touched = false;
    const callArgs = new Map(); // tool call id → arguments, from tool_call_started
    try {
      const body = { message, timezone: Intl.DateTimeFormat().resolvedOptions().timeZone };
      if (conversation) body.conversation_id = conversation;
      const res = await fetch(api("/chat"), {
        method: "POST",
        headers: headers({ "Content-Type": "application/json", "Accept": "text/event-stream", "Idempotency-Key": key }),
        body: JSON.stringify(body),
        signal: controller.signal,
        cache: "no-store",
      });
      if (!res.ok) throw await failureOf(res);
      const type = res.headers.get("content-type") || "";
      if (!type.startsWith("text/event-stream")) {
        answer = await res.json(); // a server that answered in one piece
      } else {
        await readEvents(res, (name, raw) => {
          let data;
          try { data = JSON.parse(raw); } catch { return; }
          switch (name) {
            case "started":
              if (data.conversation_id) setConversation(data.conversation_id);
              break;
            case "delta":
              bubble.textContent += data.text || "";
              scrollToEnd();
              break;
            case "tool_call_started":
              callArgs.set(data.id, data.arguments);
              setConfirmation(li, data.id, describe(data.name, data.arguments, null, false).replace(/^Added/, "Adding"), false, true);
              break;
            case "tool_call_finished":
              if (data.name !== "list_tasks") touched = true;
              setConfirmation(li, data.id, describe(data.name, callArgs.get(data.id), data.result, data.is_error), data.is_error, false);
              break;
            case "done": answer = data; break;
            case "error":
              failure = new TurnFailure(explain(data.error?.code, data.error?.message, 0), data.error?.code);
              break;
          }
        }, resetIdle);
      }
      if (failure) throw failure;
      if (!answer) throw new TurnFailure("The connection dropped before the answer was complete. Your message is kept; retry to finish it.", "dropped");
    } catch (e) {
      failure = e instanceof TurnFailure ? e
        : timedOut ? new TurnFailure("The server took too long to answer. Retry to try again; nothing will be done twice.", "timeout")
        : new TurnFailure("Could not reach the server. Check your connection, then retry; nothing will be done twice.", "network");
    } finally {
      clearTimeout(whole);
      clearTimeout(idle);
    }

    bubble.classList.remove("streaming");
    bubble.setAttribute("aria-busy", "false");
    if (answer) {
      state.pending = null;
      if (answer.conversation_id) setConversation(answer.conversation_id);
      bubble.textContent = answer.response;
      renderAnswerCalls(li, answer.tool_calls);
      if ((answer.tool_calls || []).some((c) => c.name !== "list_tasks")) touched = true;
      els.status.textContent = "Answered.";
    } else {
      // The partial reply is dropped: the retry shows the whole one.
      li.remove();
      const canRetry = !["empty_message", "message_too_long", "invalid_timezone", "idempotency_key_reused"].includes(failure.code);
      showError(failure.message, canRetry);
      els.status.textContent = "";
    }
    setBusy(false);
    if (touched || answer) { loadTasks(); loadConversations(); }
    if (!answer && failure.code === "not_found") setConversation(null);
    els.input.focus();
  }

  function submit() {
    const message = els.input.value.trim();
    if (!message || state.busy) return;
    els.input.value = "";
    const userItem = addMessage("user", message);
    send(message, newKey(), state.conversation, userItem);
  }

  // ---- wiring ----------------------------------------------------------------------------

  els.form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  els.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });
  els.retry.addEventListener("click", () => {
    const p = state.pending;
    if (p && !state.busy) send(p.message, p.key, p.conversation, p.userItem);
  });
  els.newConv.addEventListener("click", newConversation);

  function toggleSettings(open) {
    els.settings.hidden = !open;
    els.settingsToggle.setAttribute("aria-expanded", String(open));
    if (open) {
      els.userInput.value = state.user;
      els.tokenInput.value = state.token;
      els.userInput.focus();
    } else {
      els.settingsToggle.focus();
    }
  }
  els.settingsToggle.addEventListener("click", () => toggleSettings(els.settings.hidden));
  els.settingsCancel.addEventListener("click", () => toggleSettings(false));
  els.settings.addEventListener("keydown", (e) => { if (e.key === "Escape") toggleSettings(false); });
  els.settingsForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const token = els.tokenInput.value.trim();
    const user = (token && tokenSubject(token)) || els.userInput.value.trim() || "me";
    const changed = user !== state.user;
    state.token = token; state.user = user;
    store.set("token", token || null); store.set("user", user);
    if (changed) setConversation(null);
    toggleSettings(false);
    start();
  });

  async function start() {
    els.messages.replaceChildren();
    els.welcome.hidden = false;
    hideError();
    if (state.conversation) await openConversation(state.conversation);
    else await loadConversations();
    await loadTasks();
  }

  start();
})();
