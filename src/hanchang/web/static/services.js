// Work services in the window: one form per service, built from GET /api/services, run with the
// toolbar's model and data grade through the same gateway as chat. Uses app.js helpers
// (api, getJson, renderMarkdown, gradeBadge, selectedGrade, attachCitations, noticeLine, state).
const services = { list: [], current: null, choices: {} };

function showView(view) {
  const chat = view === "chat";
  $("#messages").hidden = !chat;
  $("#composer").hidden = !chat;
  $("#services-view").hidden = chat;
  $("#open-services").setAttribute("aria-pressed", chat ? "false" : "true");
}

async function openServices() {
  if (!services.list.length) services.list = (await getJson("/api/services")).data;
  showView("services");
  renderServiceList();
  if (!services.current) await selectService(services.list[0].id);
  document.body.classList.remove("sidebar-open");
}

function renderServiceList() {
  const nav = $("#service-list");
  nav.innerHTML = "";
  for (const s of services.list) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "service-tab";
    b.dataset.service = s.id;
    b.setAttribute("aria-pressed", s.id === services.current ? "true" : "false");
    b.innerHTML = "<strong></strong><span class='small muted'></span>";
    b.querySelector("strong").textContent = s.name_ko;
    b.querySelector("span").textContent = s.name_en;
    b.title = s.description_ko;
    b.addEventListener("click", () => selectService(s.id));
    nav.append(b);
  }
}

async function choicesFor(field) {
  if (!field.choices_from) {
    return field.choices.map((value, i) => ({ value, label: field.choice_labels[i] || value }));
  }
  const { data } = await getJson(field.choices_from);
  // Templates are chosen by id (label: Korean name), connectors by name.
  return data.map((item) => ({ value: item.name ?? item.id, label: item.name_ko || item.name || item.id }));
}

async function fieldControl(field) {
  const id = `svc-${field.name}`;
  const wrap = document.createElement("div");
  wrap.className = "service-field";
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = field.label_ko + (field.required ? " *" : "");
  let control;
  if (field.type === "longtext") {
    control = document.createElement("textarea");
    control.rows = 6;
  } else if (field.type === "choice") {
    control = document.createElement("select");
    const options = await choicesFor(field);
    if (!field.required) options.unshift({ value: "", label: "(기본값 · default)" });
    for (const o of options) {
      const option = document.createElement("option");
      option.value = o.value; option.textContent = o.label;
      control.append(option);
    }
    if (field.required && !options.length) {
      control.disabled = true;
      wrap.append(label, control, noticeLine(field.name === "connector"
        ? "등록된 연계 API가 없습니다. 기관 관리자가 POST /api/connectors로 등록합니다."
        : "고를 수 있는 항목이 없습니다.", "error"));
      return wrap;
    }
  } else if (field.type === "collections") {
    control = document.createElement("div");
    control.className = "collections";
    control.setAttribute("role", "group");
    control.setAttribute("aria-label", field.label_ko);
    for (const c of state.collections) {
      const item = document.createElement("label");
      item.className = "collection";
      item.innerHTML = `<input type="checkbox" value="${c.id}"> <span></span>`;
      item.querySelector("span").textContent = `${c.name} (${c.documents})`;
      item.append(gradeBadge(c.grade));
      control.append(item);
    }
    if (!state.collections.length) control.textContent = "읽을 수 있는 지식베이스가 없습니다.";
  } else if (field.type === "file") {
    control = document.createElement("input");
    control.type = "file";
    control.accept = ".csv,.xlsx,.hwp,.hwpx,.docx,.pdf,.txt,.md,.html";
  } else {
    control = document.createElement("input");
  }
  control.id = id;
  control.dataset.field = field.name;
  control.dataset.type = field.type;
  wrap.append(label, control);
  return wrap;
}

async function selectService(id) {
  services.current = id;
  renderServiceList();
  const service = services.list.find((s) => s.id === id);
  const form = $("#service-form");
  form.innerHTML = "";
  const title = document.createElement("h2");
  title.textContent = `${service.name_ko} · ${service.name_en}`;
  const about = document.createElement("p");
  about.className = "muted";
  about.textContent = service.description_ko;
  form.append(title, about);
  for (const field of service.inputs) form.append(await fieldControl(field));
  const run = document.createElement("button");
  run.type = "submit"; run.className = "primary"; run.id = "service-run";
  run.textContent = t("run", "실행");
  form.append(run);
  $("#service-result").innerHTML = "";
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve({ filename: file.name, content_base64: String(reader.result).split(",", 2)[1] || "" });
    reader.onerror = () => reject(new Error(`'${file.name}'을(를) 읽지 못했습니다.`));
    reader.readAsDataURL(file);
  });
}

async function collectInputs() {
  const inputs = {};
  for (const control of document.querySelectorAll("#service-form [data-field]")) {
    const name = control.dataset.field;
    if (control.dataset.type === "collections") {
      inputs[name] = [...control.querySelectorAll("input:checked")].map((i) => Number(i.value));
    } else if (control.dataset.type === "file") {
      if (control.files.length) inputs[name] = await readFile(control.files[0]);
    } else if (control.value !== "") {
      inputs[name] = control.value;
    }
  }
  return inputs;
}

async function runService(event) {
  event.preventDefault();
  const service = services.list.find((s) => s.id === services.current);
  const result = $("#service-result");
  const button = $("#service-run");
  button.disabled = true;
  result.innerHTML = "";
  result.append(noticeLine(t("working", "처리 중입니다…"), "muted"));
  try {
    const inputs = await collectInputs();
    const response = await api(`/api/services/${service.id}`, {
      method: "POST", json: { inputs, model: $("#model").value, data_grade: selectedGrade() },
    });
    renderResult(service, await response.json());
  } catch (error) {
    result.innerHTML = "";
    result.append(noticeLine(error.message, "error"));
  } finally {
    button.disabled = false;
  }
}

function renderResult(service, body) {
  const box = $("#service-result");
  box.innerHTML = "";
  const article = document.createElement("article");
  article.className = "message assistant service-output";
  const head = document.createElement("div");
  head.className = "message-head";
  const who = document.createElement("strong");
  who.textContent = service.name_ko;
  head.append(who, gradeBadge(selectedGrade()));
  const text = document.createElement("div");
  text.className = "message-body";
  text.innerHTML = renderMarkdown(body.text || "");
  article.append(head, text);
  const meta = body.meta || {};
  if (meta.sent_to_citizen === false) article.append(noticeLine("상담원용 초안입니다. 민원인에게 자동으로 보내지 않습니다. (Draft for the counsellor only)", "reroute"));
  for (const flag of meta.needs_human_decision || []) article.append(noticeLine(`사람의 판단 필요: ${flag}`, "error"));
  if ((meta.glossary_missing || []).length) article.append(noticeLine(`용어집과 다르게 번역된 용어: ${meta.glossary_missing.join(", ")}`, "error"));
  if (meta.truncated) article.append(noticeLine("글이 너무 길어 앞부분 요약만 담았습니다.", "error"));
  if (meta.source && meta.source.filename) article.append(noticeLine(`자료: ${meta.source.filename}${meta.source.table ? ` · 표 ${meta.source.table}/${meta.source.tables}` : ""}`, "muted"));
  if (meta.chart_svg) {
    const img = document.createElement("img");  // as an image, so the SVG can never run script
    img.className = "chart";
    img.alt = "계산 결과 그래프 (chart of the computed figures)";
    img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(meta.chart_svg);
    article.append(img);
  }
  if (meta.profile && !meta.table) article.append(profileTable(meta.profile));
  if (body.citations && body.citations.length) attachCitations(article, text, body.citations);
  if (meta.action) article.append(actionBox(meta.action));
  article.append(resultActions(service, body));
  box.append(article);
  article.scrollIntoView({ block: "start" });
}

function profileTable(profile) {
  const table = document.createElement("table");
  table.className = "profile";
  table.innerHTML = "<caption>열 요약 (column profile)</caption><thead><tr><th>열</th><th>종류</th><th>값 있음</th><th>고유값</th><th>최소</th><th>최대</th><th>평균</th></tr></thead><tbody></tbody>";
  for (const c of profile) {
    const row = document.createElement("tr");
    for (const value of [c.name, c.type === "number" ? "숫자" : "글자", c.non_null, c.unique, c.min ?? "", c.max ?? "", c.mean ?? (c.top || []).join(", ")]) {
      const cell = document.createElement("td"); cell.textContent = value; row.append(cell);
    }
    table.querySelector("tbody").append(row);
  }
  return table;
}

function actionBox(action) {
  const box = document.createElement("section");
  box.className = "action-box";
  box.setAttribute("aria-label", "보낼 내용 (what will be sent)");
  const render = (a) => {
    box.innerHTML = "";
    const status = { pending: "확인 대기", executed: "실행됨", failed: "실패", rejected: "취소됨" }[a.status] || a.status;
    const title = document.createElement("h3");
    title.textContent = `${a.operation} — ${status}`;
    const sent = document.createElement("pre");
    sent.className = "action-request";
    const target = a.method === "MCP" ? `MCP 도구 ${a.operation} · tools/call → ${a.url}` : `${a.method} ${a.url}`;
    sent.textContent = target + (a.body ? `\n\n${JSON.stringify(a.body, null, 2)}` : "");
    box.append(title, sent);
    if (a.result) {
      const result = document.createElement("pre");
      result.className = "action-result";
      // An MCP tool answers in text (often JSON itself): show that text as it came, guarded.
      result.textContent = a.method === "MCP" && typeof a.result.text === "string"
        ? a.result.text + (a.result.pii ? `\n\n(개인정보 ${Object.values(a.result.pii).reduce((x, y) => x + y, 0)}건 가림)` : "")
        : JSON.stringify(a.result, null, 2);
      box.append(result);
    }
    if (a.status === "pending") {
      const decide = async (decision) => {
        try {
          render(await (await api(`/api/actions/${a.id}/${decision}`, { method: "POST" })).json());
        } catch (error) { box.append(noticeLine(error.message, "error")); }
      };
      const bar = document.createElement("div");
      bar.className = "actions";
      const confirmButton = document.createElement("button");
      confirmButton.type = "button"; confirmButton.className = "primary"; confirmButton.id = "action-confirm";
      confirmButton.textContent = "확인하고 보내기 (Confirm)";
      confirmButton.addEventListener("click", () => decide("confirm"));
      const rejectButton = document.createElement("button");
      rejectButton.type = "button"; rejectButton.id = "action-reject";
      rejectButton.textContent = "보내지 않기 (Reject)";
      rejectButton.addEventListener("click", () => decide("reject"));
      bar.append(confirmButton, rejectButton);
      box.append(bar);
    }
  };
  render(action);
  return box;
}

function resultActions(service, body) {
  const bar = document.createElement("div");
  bar.className = "actions";
  const copy = document.createElement("button");
  copy.type = "button"; copy.textContent = t("copy", "복사");
  copy.addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(body.text || ""));
  bar.append(copy);
  if (service.id === "draft") {
    for (const format of ["hwpx", "hwp", "docx"]) {
      const b = document.createElement("button");
      b.type = "button"; b.dataset.export = format;
      b.textContent = `${format.toUpperCase()} ${t("download", "내려받기")}`;
      b.addEventListener("click", () => exportDraft(body, format, bar));
      bar.append(b);
    }
  }
  return bar;
}

async function exportDraft(body, format, bar) {
  const title = (body.meta && body.meta.title) || "초안";
  try {
    const response = await api("/api/services/draft/export", { method: "POST", json: { title, text: body.text, format } });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = `${title.replace(/[\\/:*?"<>|]/g, "_")}.${format}`;
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) { bar.append(noticeLine(error.message, "error")); }
}

$("#open-services").addEventListener("click", () => openServices().catch((e) => alert(e.message)));
$("#service-form").addEventListener("submit", runService);
