// Agents, the common asset library, prompt snippets and the review queue.
// (api, getJson, csrf and $ come from http.js; renderMarkdown from markdown.js.)
const page = document.body.dataset;
const KIND_KO = { agent: "에이전트", prompt: "프롬프트", template: "서식", service: "서비스", connector: "연계 API" };
const STATE_KO = { published: "게시됨", pending: "검토 대기", withdrawn: "회수됨" };
const lists = { collections: [], services: [], connectors: [], models: [] };

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}
async function act(work, done) {
  try { const result = await work(); if (done) notify(done); return result; } catch (error) { notify(error.message, true); return null; }
}
function download(path) { location.href = path; }

// -- tabs ---------------------------------------------------------------------------------
function showTab(name) {
  for (const tab of document.querySelectorAll("[data-tab]")) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  for (const panel of document.querySelectorAll("[data-panel]")) panel.hidden = panel.dataset.panel !== name;
  notify("");
  ({ agents: loadAgents, library: loadLibrary, prompts: loadPrompts, review: loadPending })[name]();
}
for (const tab of document.querySelectorAll("[data-tab]")) tab.addEventListener("click", () => showTab(tab.dataset.tab));

// -- agents -------------------------------------------------------------------------------
async function loadChoices() {
  const [collections, services, connectors, models] = await Promise.all([
    getJson("/api/collections"), getJson("/api/services"), getJson("/api/connectors"), getJson("/v1/models")]);
  lists.collections = collections.data;
  lists.services = services.data;
  lists.connectors = connectors.data;
  lists.models = models.data.filter((m) => m.kind === "chat");
  const select = $("#a-model");
  for (const m of lists.models) select.append(el("option", { value: m.id }, `${m.id} — ${m.description_ko}`));
}
function checkboxes(box, items, chosen, value, label) {
  box.innerHTML = "";
  for (const item of items) {
    const input = el("input", { type: "checkbox", value: value(item) });
    input.checked = chosen.includes(value(item)) || chosen.includes(String(value(item)));
    box.append(el("label", {}, input, " ", label(item)));
  }
  if (!items.length) box.append(el("span", { class: "muted small" }, "없음"));
}
function checked(box) { return [...box.querySelectorAll("input:checked")].map((i) => i.value); }

function editAgent(agent = null) {
  const form = $("#agent-form");
  form.hidden = false;
  $("#a-id").value = agent ? agent.number : "";
  $("#a-name").value = agent ? agent.name : "";
  $("#a-description").value = agent ? agent.description : "";
  $("#a-instructions").value = agent ? agent.instructions : "";
  $("#a-model").value = agent && agent.model ? agent.model : "";
  $("#a-examples").value = agent ? agent.examples.join("\n") : "";
  checkboxes($("#a-collections"), lists.collections, agent ? agent.collections : [], (c) => c.id,
    (c) => `${c.name}${c.is_common ? " · 공통" : ""} (${c.grade})`);
  checkboxes($("#a-services"), lists.services, agent ? agent.services : [], (s) => s.id, (s) => s.name_ko);
  checkboxes($("#a-connectors"), lists.connectors, agent ? agent.connectors : [], (c) => c.name, (c) => c.name);
  $("#a-name").focus();
}
$("#new-agent")?.addEventListener("click", () => editAgent());
$("#agent-cancel").addEventListener("click", () => { $("#agent-form").hidden = true; });
$("#agent-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const id = $("#a-id").value;
  const body = {
    name: $("#a-name").value, description: $("#a-description").value, instructions: $("#a-instructions").value,
    collections: checked($("#a-collections")).map(Number), services: checked($("#a-services")),
    connectors: checked($("#a-connectors")), model: $("#a-model").value || null,
    examples: $("#a-examples").value.split("\n").map((s) => s.trim()).filter(Boolean),
  };
  const saved = await act(() => api(id ? `/api/agents/${id}` : "/api/agents", { method: id ? "PUT" : "POST", json: body }),
    id ? "에이전트를 저장했습니다." : "에이전트를 만들었습니다.");
  if (saved) { $("#agent-form").hidden = true; loadAgents(); }
});

function agentCard(agent) {
  const mine = !agent.shared;
  const meta = el("p", { class: "muted small" }, mine ? `${agent.id} · 우리 기관` : `${agent.id} · 공유(${agent.agency}) v${agent.version}`);
  const actions = el("div", { class: "actions" },
    el("a", { class: "button small", href: `/?model=${encodeURIComponent(agent.id)}` }, "대화하기"),
    el("button", { type: "button", onclick: () => tryAgent(agent) }, "시험"),
    mine && page.mayBuild === "true" ? el("button", { type: "button", onclick: () => editAgent(agent) }, "수정") : null,
    mine ? el("button", { type: "button", onclick: () => openPublish("agent", agent.number, agent.name, agent.description) }, "게시") : null,
    mine ? el("button", { type: "button", onclick: () => download(`/api/assets/export?kind=agent&ref=${agent.number}`) }, "내보내기") : null,
    mine && page.mayBuild === "true" ? el("button", { type: "button", onclick: () => removeAgent(agent) }, "삭제") : null);
  return el("article", { class: "asset-card", "data-agent": agent.id }, el("h3", {}, agent.name), meta,
    el("p", {}, agent.description || ""), agent.examples.length ? el("p", { class: "small" }, "예: ", agent.examples[0]) : null, actions);
}
async function loadAgents() {
  const { data } = await getJson("/api/agents");
  const box = $("#agents");
  box.innerHTML = "";
  for (const agent of data) box.append(agentCard(agent));
  if (!data.length) box.append(el("p", { class: "muted" }, "아직 에이전트가 없습니다. ‘새 에이전트’로 만들거나 공유 자산에서 복사해 오세요."));
}
async function removeAgent(agent) {
  if (!confirm(`'${agent.name}' 에이전트를 지울까요? 게시된 것은 회수됩니다(다른 기관의 복사본은 남습니다).`)) return;
  if (await act(() => api(`/api/agents/${agent.number}`, { method: "DELETE" }), "지웠습니다.") !== null) loadAgents();
}
function tryAgent(agent) {
  const form = $("#try-form");
  form.hidden = false;
  form.dataset.agent = agent.id;
  $("#try-title").textContent = `시험: ${agent.name}`;
  $("#try-question").value = agent.examples[0] || "";
  $("#try-answer").innerHTML = "";
  $("#try-question").focus();
}
$("#try-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const out = $("#try-answer");
  out.textContent = "답변을 만드는 중…";
  const response = await act(() => api("/v1/chat/completions", { method: "POST", json: {
    model: $("#try-form").dataset.agent, messages: [{ role: "user", content: $("#try-question").value }] } }));
  if (!response) { out.textContent = ""; return; }
  const result = await response.json();
  out.innerHTML = renderMarkdown(result.choices[0].message.content || "");
  const sources = (result.citations || []).map((c) => `[${c.index ?? ""}] ${c.title || c.document || ""}`).join(" · ");
  if (sources) out.append(el("p", { class: "muted small" }, `출처: ${sources}`));
  const info = result.hanchang && result.hanchang.agent;
  if (info && info.collections_skipped) out.append(el("p", { class: "muted small" },
    `권한이 없는 지식베이스 ${info.collections_skipped}개는 쓰지 않았습니다.`));
});

// -- publishing ---------------------------------------------------------------------------
let publishing = null;
function openPublish(kind, ref, name, description = "") {
  publishing = { kind, ref: String(ref) };
  $("#publish-what").textContent = `${KIND_KO[kind]} ‘${name}’` + (page.reviewRequired === "true" ? " · 플랫폼 관리자 검토 후 공개됩니다." : "");
  $("#pub-description").value = description || "";
  $("#publish-error").hidden = true;
  $("#publish-dialog").showModal();
}
$("#publish-form").addEventListener("submit", async (event) => {
  if (event.submitter && event.submitter.value === "cancel") return;
  event.preventDefault();
  const body = { ...publishing, description: $("#pub-description").value, note: $("#pub-note").value,
    tags: $("#pub-tags").value.split(",").map((s) => s.trim()).filter(Boolean) };
  if ($("#pub-licence").value.trim()) body.licence = $("#pub-licence").value.trim();
  try {
    const response = await api("/api/library", { method: "POST", json: body });
    const asset = await response.json();
    $("#publish-dialog").close();
    notify(asset.state === "pending" || asset.review_pending ? `게시를 요청했습니다(v${asset.latest_version}). 검토 후 공개됩니다.`
      : `공통 공간에 게시했습니다(v${asset.version}).`);
  } catch (error) {
    const box = $("#publish-error");
    box.textContent = error.message;
    box.hidden = false;
  }
});

// -- the library --------------------------------------------------------------------------
function stats(asset) {
  const s = asset.stats || {};
  const rate = s.thumbs_up_rate === null || s.thumbs_up_rate === undefined ? "–" : `${Math.round(s.thumbs_up_rate * 100)}%`;
  return `복사 ${s.forks || 0} · 호출 ${s.calls || 0} · 좋아요 ${rate} · 쓰는 기관 ${(s.agencies || []).length}`;
}
function assetCard(asset, review = false) {
  const head = el("p", { class: "muted small" }, `${asset.kind_ko} · ${asset.author_agency_name || asset.author_agency} · `
    + (asset.version ? `v${asset.version}` : `v${asset.latest_version}`) + ` · ${STATE_KO[asset.state] || asset.state}`
    + (asset.review_pending ? " · 새 버전 검토 대기" : ""));
  const tags = el("p", {}, asset.tags.map((t) => el("span", { class: "tag" }, t)));
  const actions = el("div", { class: "actions" },
    el("button", { type: "button", onclick: () => preview(asset.id) }, "미리보기"),
    asset.use_as ? el("a", { class: "button small", href: `/?model=${encodeURIComponent(asset.use_as)}` }, "바로 쓰기") : null,
    !asset.mine && asset.version ? el("button", { type: "button", onclick: () => forkAsset(asset) }, "우리 기관으로 복사") : null,
    el("button", { type: "button", onclick: () => download(`/api/library/${asset.id}/export`) }, "내려받기"),
    asset.mine && asset.state !== "withdrawn" ? el("button", { type: "button", onclick: () => withdrawAsset(asset) }, "회수") : null);
  const card = el("article", { class: "asset-card", "data-asset": asset.id }, el("h3", {}, asset.name), head,
    el("p", {}, asset.description || ""), tags, el("p", { class: "small" }, stats(asset)),
    asset.licence ? el("p", { class: "muted small" }, `이용 조건: ${asset.licence}`) : null, actions);
  if (review) {
    card.append(el("div", { class: "actions" },
      el("button", { type: "button", class: "primary", onclick: () => reviewAsset(asset, true) }, `v${asset.latest_version} 승인`),
      el("button", { type: "button", onclick: () => reviewAsset(asset, false) }, "반려")));
  }
  return card;
}
async function loadLibrary() {
  const params = new URLSearchParams({ q: $("#q").value, ...($("#kind").value ? { kind: $("#kind").value } : {}) });
  const { data } = await getJson(`/api/library?${params}`);
  const box = $("#assets");
  box.innerHTML = "";
  for (const asset of data) box.append(assetCard(asset));
  if (!data.length) box.append(el("p", { class: "muted" }, "찾는 자산이 없습니다."));
}
$("#search").addEventListener("submit", (event) => { event.preventDefault(); loadLibrary(); });
async function preview(id) {
  const asset = await act(async () => (await api(`/api/library/${id}`)).json());
  if (!asset) return;
  const box = $("#preview");
  box.hidden = false;
  box.innerHTML = "";
  const content = asset.document.content || {};
  const body = content.instructions || content.text || (content.sections ? content.sections.join(" / ") : "")
    || JSON.stringify(content, null, 2);
  box.append(el("h3", {}, `${asset.name} — ${asset.kind_ko} v${asset.document.version}`),
    el("p", { class: "muted small" }, `${asset.author_agency_name || asset.author_agency} · ${stats(asset)}`),
    el("pre", { class: "document" }, body),
    content.collections && content.collections.length
      ? el("p", { class: "small" }, "지식베이스: ", content.collections.map((c) => `${c.name}${c.common ? "(공통)" : ""}`).join(", "),
        el("span", { class: "muted" }, " — 다른 기관에서는 읽을 권한이 있는 것만 쓰입니다.")) : null,
    el("p", { class: "small" }, "버전: ", asset.versions.map((v) => `v${v.version} ${STATE_KO[v.status] || v.status}${v.note ? ` (${v.note})` : ""}`).join(" · ")));
  box.scrollIntoView({ behavior: "smooth" });
}
async function forkAsset(asset) {
  const made = await act(async () => (await api(`/api/library/${asset.id}/fork`, { method: "POST", json: {} })).json());
  if (!made) return;
  const skipped = made.collections_skipped.length ? ` 읽을 수 없는 지식베이스(${made.collections_skipped.join(", ")})는 빼고 복사했습니다. 우리 기관 지식베이스를 골라 주세요.` : "";
  notify(`‘${made.name}’을(를) 우리 기관으로 복사했습니다 (${made.ref}).${skipped}`);
  loadLibrary();
}
async function withdrawAsset(asset) {
  if (!confirm(`‘${asset.name}’을(를) 공통 공간에서 회수할까요? 다른 기관의 복사본은 그대로 남습니다.`)) return;
  if (await act(() => api(`/api/library/${asset.id}/withdraw`, { method: "POST" }), "회수했습니다.")) loadLibrary();
}
$("#import-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const made = await act(async () => (await api("/api/assets/import", { method: "POST", body: await file.text(),
    headers: { "Content-Type": "application/yaml" } })).json());
  event.target.value = "";
  if (made) notify(`가져왔습니다: ${KIND_KO[made.kind]} ‘${made.name}’ (${made.ref}).`
    + (made.collections_skipped.length ? ` 없는 지식베이스: ${made.collections_skipped.join(", ")}` : ""));
});

// -- prompts ------------------------------------------------------------------------------
async function loadPrompts() {
  const { data } = await getJson("/api/prompts");
  const box = $("#prompts");
  box.innerHTML = "";
  for (const p of data) {
    box.append(el("article", { class: "asset-card" }, el("h3", {}, p.title), el("pre", { class: "document" }, p.text),
      el("div", { class: "actions" },
        el("button", { type: "button", onclick: () => navigator.clipboard?.writeText(p.text).then(() => notify("복사했습니다.")) }, "복사"),
        el("button", { type: "button", onclick: () => openPublish("prompt", p.id, p.title) }, "게시"),
        el("button", { type: "button", onclick: () => download(`/api/assets/export?kind=prompt&ref=${p.id}`) }, "내보내기"),
        el("button", { type: "button", onclick: async () => { if (await act(() => api(`/api/prompts/${p.id}`, { method: "DELETE" }), "지웠습니다.") !== null) loadPrompts(); } }, "삭제"))));
  }
  if (!data.length) box.append(el("p", { class: "muted" }, "저장한 프롬프트가 없습니다."));
}
$("#prompt-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (await act(() => api("/api/prompts", { method: "POST", json: { title: $("#p-title").value, text: $("#p-text").value } }), "저장했습니다.")) {
    event.target.reset();
    loadPrompts();
  }
});

// -- review -------------------------------------------------------------------------------
async function loadPending() {
  const { data } = await getJson("/api/library?pending=true");
  const box = $("#pending");
  box.innerHTML = "";
  for (const asset of data) box.append(assetCard(asset, true));
  if (!data.length) box.append(el("p", { class: "muted" }, "검토할 게시 요청이 없습니다."));
}
async function reviewAsset(asset, approve) {
  const note = approve ? "" : (prompt("반려 사유") || "");
  if (await act(() => api(`/api/library/${asset.id}/review`, { method: "POST", json: { version: asset.latest_version, approve, note } }),
    approve ? "승인했습니다." : "반려했습니다.")) loadPending();
}

applyLang();
loadChoices().then(() => showTab(new URLSearchParams(location.search).get("tab") || "agents"));
