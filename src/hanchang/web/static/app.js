// The single window: conversations, streamed answers, grades, knowledge bases, citations, feedback.
// (api, getJson, csrf and $ come from http.js.)
const GRADE_KO = { O: "공개", S: "민감", C: "기밀" };
const state = { conversation: null, models: [], collections: [], controller: null, citations: {} };


function gradeBadge(grade) {
  const span = document.createElement("span");
  span.className = `badge grade-${grade}`;
  span.textContent = `${GRADE_KO[grade] || grade}(${grade})`;
  span.title = "자료 등급 (data grade)";
  return span;
}
function selectedGrade() { return document.querySelector('input[name="grade"]:checked').value; }
function selectedCollections() { return [...document.querySelectorAll("#collections input:checked")].map((i) => Number(i.value)); }

// -- models and collections ---------------------------------------------------------------
async function loadModels() {
  const { data } = await getJson("/v1/models");
  // Models, then work agents (업무 에이전트), which are picked and called like models.
  state.models = data.filter((m) => m.kind === "chat" || m.kind === "agent");
  const select = $("#model");
  select.innerHTML = "";
  const groups = { chat: "모델", agent: "업무 에이전트" };
  for (const kind of ["chat", "agent"]) {
    const items = state.models.filter((m) => m.kind === kind);
    if (!items.length) continue;
    const group = document.createElement("optgroup");
    group.label = groups[kind];
    for (const model of items) {
      const option = document.createElement("option");
      option.value = model.id;
      // What a civil servant needs first is where the model runs and what it may see; the id (or
      // its shortest alias) follows, and stays whole on hover.
      const short = [model.id, ...(model.aliases || [])].sort((a, b) => a.length - b.length)[0];
      option.textContent = kind === "agent"
        ? `${model.name}${model.shared ? ` · 공유(${model.owned_by})` : ""}` : `${model.description_ko} (${short})`;
      option.title = model.id;
      group.append(option);
    }
    select.append(group);
  }
  const wanted = new URLSearchParams(location.search).get("model");
  if (wanted && state.models.some((m) => m.id === wanted)) select.value = wanted;
}
async function loadCollections() {
  const { data } = await getJson("/api/collections");
  state.collections = data;
  const box = $("#collections");
  box.innerHTML = "";
  const target = $("#upload-target");
  target.innerHTML = "";
  for (const c of data) {
    const label = document.createElement("label");
    label.className = "collection";
    label.innerHTML = `<input type="checkbox" value="${c.id}"> <span></span> `;
    label.querySelector("span").textContent = `${c.name}${c.is_common ? " · 공통" : ""} (${c.documents})`;
    label.append(gradeBadge(c.grade));
    box.append(label);
    if (c.writable) {
      const option = document.createElement("option");
      option.value = c.id; option.textContent = c.name; target.append(option);
    }
  }
  if (!data.length) box.textContent = "읽을 수 있는 지식베이스가 없습니다.";
  $(".upload").hidden = !target.options.length;
}

// -- conversations ------------------------------------------------------------------------
async function loadConversations() {
  const q = $("#conv-search").value;
  const { data } = await getJson(`/api/conversations?q=${encodeURIComponent(q)}`);
  const list = $("#conversations");
  list.innerHTML = "";
  for (const c of data) {
    const item = document.createElement("li");
    item.className = c.id === state.conversation ? "active" : "";
    const open = document.createElement("button");
    open.type = "button"; open.className = "conv"; open.textContent = c.title;
    open.addEventListener("click", () => openConversation(c.id));
    const rename = document.createElement("button");
    rename.type = "button"; rename.className = "icon"; rename.textContent = "✎"; rename.title = t("rename", "이름 바꾸기");
    rename.setAttribute("aria-label", `${t("rename", "이름 바꾸기")}: ${c.title}`);
    rename.addEventListener("click", async () => {
      const title = prompt("새 이름 (new title)", c.title);
      if (title) { await api(`/api/conversations/${c.id}`, { method: "PATCH", json: { title } }); loadConversations(); }
    });
    const remove = document.createElement("button");
    remove.type = "button"; remove.className = "icon"; remove.textContent = "×"; remove.title = t("delete", "삭제");
    remove.setAttribute("aria-label", `${t("delete", "삭제")}: ${c.title}`);
    remove.addEventListener("click", async () => {
      if (!confirm("이 대화를 삭제할까요? (Delete this chat?)")) return;
      await api(`/api/conversations/${c.id}`, { method: "DELETE" });
      if (state.conversation === c.id) { state.conversation = null; renderMessages([]); }
      loadConversations();
    });
    item.append(open, rename, remove);
    list.append(item);
  }
}
async function openConversation(id) {
  showView("chat");
  state.conversation = id;
  const { data } = await getJson(`/api/conversations/${id}/messages`);
  renderMessages(data);
  loadConversations();
  document.body.classList.remove("sidebar-open");
}
async function ensureConversation() {
  if (state.conversation) return state.conversation;
  const created = await (await api("/api/conversations", { method: "POST" })).json();
  state.conversation = created.id;
  return created.id;
}

// -- messages -----------------------------------------------------------------------------
function renderMessages(messages) {
  const box = $("#messages");
  box.innerHTML = "";
  $("#empty-state") && $("#empty-state").remove();
  if (!messages.length) {
    box.innerHTML = `<div class="empty" id="empty-state"><h2>${t("welcome", "무엇을 도와드릴까요?")}</h2></div>`;
  }
  for (const m of messages) box.append(messageView(m));
  box.scrollTop = box.scrollHeight;
}
function messageView(m) {
  const article = document.createElement("article");
  article.className = `message ${m.role}`;
  article.dataset.id = m.id || "";
  const head = document.createElement("div");
  head.className = "message-head";
  const who = document.createElement("strong");
  who.textContent = m.role === "user" ? "나" : m.role === "notice" ? "알림" : (m.model || "AI");
  head.append(who, gradeBadge(m.grade || "O"));
  const body = document.createElement("div");
  body.className = "message-body";
  article.append(head, body);
  fillMessage(article, m);
  return article;
}
function fillMessage(article, m) {
  const body = article.querySelector(".message-body");
  const meta = m.meta || {};
  body.innerHTML = m.role === "user" ? "" : renderMarkdown(m.content || "");
  if (m.role === "user") body.textContent = m.content;
  article.querySelectorAll(".notice-line, .citations, .actions").forEach((n) => n.remove());
  const notice = meta.hanchang && meta.hanchang.route_notice;
  if (notice) article.insertBefore(noticeLine(notice, "reroute"), body);
  if (meta.error) article.append(noticeLine(meta.error, "error"));
  if (meta.stopped) article.append(noticeLine(t("stopped", "(중지됨)"), "muted"));
  if (meta.citations && meta.citations.length) {
    state.citations[m.id] = meta.citations;
    attachCitations(article, body, meta.citations);
  }
  if (m.role === "assistant" && m.id) article.append(actions(m));
}
// The numbered source list under an answer, and the [n] marks in its text, open the passage.
function attachCitations(article, body, citations) {
  const list = document.createElement("ol");
  list.className = "citations";
  list.setAttribute("aria-label", t("sources", "출처"));
  for (const c of citations) {
    const li = document.createElement("li");
    const open = document.createElement("button");
    open.type = "button"; open.className = "link cite-link";
    open.textContent = `[${c.index}] ${c.title}${c.section ? " · " + c.section : ""}`;
    open.addEventListener("click", () => openCitation(c));
    li.append(open, gradeBadge(c.grade));
    list.append(li);
  }
  article.append(list);
  body.querySelectorAll(".cite").forEach((b) => {
    const c = citations.find((x) => String(x.index) === b.dataset.cite);
    if (c) b.addEventListener("click", () => openCitation(c)); else b.replaceWith(document.createTextNode(b.textContent));
  });
}
function noticeLine(text, kind) {
  const p = document.createElement("p");
  p.className = `notice-line ${kind}`;
  p.setAttribute("role", kind === "error" ? "alert" : "status");
  p.textContent = text;
  return p;
}
function actions(m) {
  const bar = document.createElement("div");
  bar.className = "actions";
  const button = (label, text, handler, pressed) => {
    const b = document.createElement("button");
    b.type = "button"; b.className = "icon"; b.textContent = text; b.title = label; b.setAttribute("aria-label", label);
    if (pressed !== undefined) b.setAttribute("aria-pressed", pressed ? "true" : "false");
    b.addEventListener("click", handler);
    bar.append(b);
    return b;
  };
  button(t("copy", "복사"), t("copy", "복사"), () => navigator.clipboard && navigator.clipboard.writeText(m.content));
  button(t("regenerate", "다시 생성"), "↻ " + t("regenerate", "다시 생성"), () => send({ regenerate: true }));
  const rate = async (value) => {
    const reason = value < 0 ? (prompt("무엇이 아쉬웠나요? (선택) / What was wrong? (optional)") || "") : "";
    await api(`/api/messages/${m.id}/feedback`, { method: "POST", json: { rating: value, reason } });
    m.rating = value;
    up.setAttribute("aria-pressed", value > 0 ? "true" : "false");
    down.setAttribute("aria-pressed", value < 0 ? "true" : "false");
  };
  const up = button(t("good", "도움이 됨"), "▲ " + t("good", "도움이 됨"), () => rate(1), m.rating === 1);
  const down = button(t("bad", "도움이 안 됨"), "▼ " + t("bad", "도움이 안 됨"), () => rate(-1), m.rating === -1);
  up.classList.add("rate-up"); down.classList.add("rate-down");
  return bar;
}
async function openCitation(c) {
  const dialog = $("#citation-dialog");
  $("#citation-title").textContent = `[${c.index}] ${c.title}`;
  const page = c.page ? ` · ${c.page}쪽${c.ocr ? " (스캔 · 문자 인식 OCR)" : ""}` : "";
  $("#citation-meta").textContent = `${c.section || "-"}${page} · ${GRADE_KO[c.grade]}(${c.grade}) · ${c.source}${c.superseded ? " · 이전 버전" : ""}`;
  $("#citation-text").textContent = c.text || c.snippet;
  try {
    const passage = await getJson(`/api/chunks/${c.chunk_id}`);
    $("#citation-text").textContent = passage.text;
  } catch (_) { /* keep the snippet */ }
  dialog.showModal();
}

// -- asking -------------------------------------------------------------------------------
async function send({ regenerate = false } = {}) {
  const question = $("#question").value.trim();
  if (!regenerate && !question) return;
  const id = await ensureConversation();
  const grade = selectedGrade();
  if (!regenerate) {
    $("#messages").append(messageView({ role: "user", content: question, grade }));
    $("#question").value = "";
  } else {
    const last = [...document.querySelectorAll("#messages .message")].pop();
    if (last && !last.classList.contains("user")) last.remove();
  }
  $("#empty-state") && $("#empty-state").remove();
  const answer = { role: "assistant", content: "", grade, meta: {}, model: $("#model").value };
  const view = messageView(answer);
  view.classList.add("streaming");
  $("#messages").append(view);
  state.controller = new AbortController();
  $("#send").hidden = true; $("#stop").hidden = false;
  try {
    const response = await api(`/api/conversations/${id}/messages`, {
      method: "POST", signal: state.controller.signal,
      json: { content: question, model: $("#model").value, data_grade: grade, collections: selectedCollections(), regenerate },
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        const name = (block.match(/^event: (.*)$/m) || [])[1];
        const data = JSON.parse((block.match(/^data: (.*)$/m) || [])[1] || "{}");
        if (name === "meta") {
          answer.model = data.model; answer.grade = data.data_grade;
          answer.meta.hanchang = { route_notice: data.route_notice };
          view.querySelector(".message-head strong").textContent = data.model;
          view.querySelector(".badge").replaceWith(gradeBadge(data.data_grade));
          fillMessage(view, answer);
        } else if (name === "delta") {
          answer.content += data.text;
          view.querySelector(".message-body").innerHTML = renderMarkdown(answer.content);
        } else if (name === "done") {
          answer.id = data.message_id; answer.meta = data.meta; answer.model = data.model;
          view.dataset.id = data.message_id;
          fillMessage(view, answer);
          const budget = data.meta && data.meta.hanchang && data.meta.hanchang.budget;
          if (budget) view.append(noticeLine(`⚠ ${budget.message}`, "budget"));  // 80 % of a budget used
        } else if (name === "failed") {
          view.className = "message notice";
          view.querySelector(".message-head strong").textContent = "알림";
          view.querySelector(".message-body").textContent = data.message;
          view.setAttribute("role", "alert");
        }
        $("#messages").scrollTop = $("#messages").scrollHeight;
      }
    }
  } catch (error) {
    if (error.name === "AbortError") {
      answer.meta.stopped = true; fillMessage(view, answer);
    } else {
      view.className = "message notice";
      view.querySelector(".message-body").textContent = error.message;
    }
  } finally {
    view.classList.remove("streaming");
    state.controller = null;
    $("#send").hidden = false; $("#stop").hidden = true;
    loadConversations();
  }
}

// -- uploads ------------------------------------------------------------------------------
function upload(files) {
  const target = $("#upload-target").value;
  const form = new FormData();
  for (const f of files) form.append("files", f);
  form.append("grade", selectedGrade());
  const progress = $("#upload-progress");
  const results = $("#upload-results");
  progress.hidden = false; progress.value = 0; results.innerHTML = "";
  const xhr = new XMLHttpRequest();
  xhr.open("POST", `/api/collections/${target}/documents`);
  xhr.setRequestHeader("X-CSRF-Token", csrf);
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 100); };
  xhr.onload = () => {
    progress.hidden = true;
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (_) { /* shown below */ }
    showUploadResults(body.results || []);
    if (body.error) results.textContent = body.error.message;
    if (xhr.status === 202 && body.job) followJob(body.job);
    loadCollections();
  };
  xhr.onerror = () => { progress.hidden = true; results.textContent = "올리기에 실패했습니다 (upload failed)."; };
  xhr.send(form);
}

function showUploadResults(list) {
  const results = $("#upload-results");
  for (const r of list) {
    const li = document.createElement("li");
    li.className = r.status === "failed" ? "failed" : "ok";
    li.textContent = `${r.name}: ${r.status === "failed" ? "실패 — " + r.reason : r.status + " (" + r.chunks + ")"}`;
    results.append(li);
  }
}

// A large upload is read in the background: its progress (file, page) until it ends; cancellable.
function followJob(job) {
  const results = $("#upload-results");
  const line = document.createElement("li");
  line.className = "job";
  const text = document.createElement("span");
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.textContent = "취소 (Cancel)";
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try { await api(`/api/ingest-jobs/${job.id}/cancel`, { method: "POST" }); } catch (e) { text.textContent = e.message; }
  });
  line.append(text, " ", cancel);
  results.append(line);
  const show = (j) => {
    const where = j.current ? ` — ${j.current}` : "";
    const label = { queued: "대기 중", running: "읽는 중", succeeded: "완료", failed: "실패", cancelled: "취소됨" }[j.status] || j.status;
    text.textContent = `문서 처리 ${label}: ${j.files_done}/${j.files_total}개${where}`;
  };
  show(job);
  const poll = async () => {
    let current;
    try { current = await getJson(`/api/ingest-jobs/${job.id}`); } catch (_) { setTimeout(poll, 5000); return; }
    show(current);
    if (["succeeded", "failed", "cancelled"].includes(current.status)) {
      cancel.remove();
      showUploadResults(current.results || []);
      if (current.error) { const li = document.createElement("li"); li.className = "failed"; li.textContent = current.error; results.append(li); }
      loadCollections();
      return;
    }
    setTimeout(poll, 2000);
  };
  setTimeout(poll, 1000);
}

// -- admin --------------------------------------------------------------------------------
async function openAdmin() {
  const { data } = await getJson("/api/users");
  const list = $("#user-list");
  list.innerHTML = "";
  for (const u of data) { const li = document.createElement("li"); li.textContent = `${u.agency} · ${u.user} · ${u.role}`; list.append(li); }
  $("#admin-dialog").showModal();
}

// -- wiring -------------------------------------------------------------------------------
$("#composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
$("#question").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); } });
$("#stop").addEventListener("click", () => state.controller && state.controller.abort());
$("#new-chat").addEventListener("click", () => { showView("chat"); state.conversation = null; renderMessages([]); loadConversations(); $("#question").focus(); });
$("#conv-search").addEventListener("input", () => loadConversations());
$("#upload-files").addEventListener("change", (e) => { if (e.target.files.length) upload(e.target.files); e.target.value = ""; });
$("#sign-out").addEventListener("click", async () => {
  const done = await (await api("/auth/logout", { method: "POST" })).json();
  location.href = done.logout_url || "/";  // signed in by SSO: the provider's logout too
});
document.querySelectorAll("[data-open-sidebar]").forEach((b) => b.addEventListener("click", () => document.body.classList.add("sidebar-open")));
document.querySelectorAll("[data-close-sidebar]").forEach((b) => b.addEventListener("click", () => document.body.classList.remove("sidebar-open")));
if ($("#open-admin")) $("#open-admin").addEventListener("click", openAdmin);
if ($("#new-user")) $("#new-user").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const created = await (await api("/api/users", { method: "POST", json: { user: $("#nu-name").value, password: $("#nu-password").value, role: $("#nu-role").value } })).json();
    $("#nu-result").textContent = `만들었습니다: ${created.user} (${created.role})`;
    openAdmin();
  } catch (error) { $("#nu-result").textContent = error.message; }
});
document.querySelectorAll('input[name="grade"]').forEach((r) => r.addEventListener("change", () => {
  document.body.dataset.grade = selectedGrade();
}));
Promise.all([loadModels(), loadCollections(), loadConversations()]).catch((e) => console.error(e));
