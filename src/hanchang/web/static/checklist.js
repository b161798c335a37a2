// The adoption checklist (guideline 3.3): answers saved as they are picked, progress per section.
// (api, getJson and $ come from http.js.)
const ANSWER_KO = { yes: "예", no: "아니오", na: "해당 없음" };
let current = null;

function cell(tag, text, props = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  Object.assign(node, props);
  return node;
}
function query(extra = {}) {
  const params = new URLSearchParams({ project: $("#project").value.trim() || "기본", ...extra });
  if ($("#agency")) params.set("agency", $("#agency").value);
  return params;
}

function drawSections(data) {
  $("#progress-total").textContent = `${data.answered}/${data.total} (${Math.round(data.progress * 100)}%)`;
  const table = $("#sections");
  table.innerHTML = "";
  const head = table.insertRow();
  for (const title of ["구분", "참조", "진행", ""]) head.append(cell("th", title));
  for (const s of data.sections) {
    const row = table.insertRow();
    row.append(cell("td", `${s.id}. ${s.title}`), cell("td", s.reference), cell("td", `${s.answered}/${s.items}`));
    const bar = cell("div", undefined, { className: "progress" });
    bar.append(cell("span", undefined, { style: `width:${Math.round((100 * s.answered) / s.items)}%` }));
    const td = cell("td");
    td.append(bar);
    row.append(td);
  }
}

function drawItems(data) {
  const table = $("#items");
  table.innerHTML = "";
  const head = table.insertRow();
  for (const title of ["번호", "점검 항목", "답", "비고", "근거(링크·설명)"]) head.append(cell("th", title));
  let group = null;
  for (const item of data.items) {
    if (item.group !== group) {
      group = item.group;
      const row = table.insertRow();
      const th = cell("th", group, { colSpan: 5 });
      row.append(th);
    }
    const row = table.insertRow();
    row.dataset.item = item.id;
    row.append(cell("td", item.id));
    const text = cell("td", item.text);
    if (item.auto) text.append(" ", cell("span", "자동", { className: "badge auto", title: "한창이 채운 답 (pre-filled)" }));
    row.append(text);
    const answer = cell("td", undefined, { className: "answer" });
    for (const value of ["yes", "no", "na"]) {
      const input = cell("input", undefined, { type: "radio", name: `a-${item.id}`, value, checked: item.answer === value,
        disabled: !data.may_answer });
      input.addEventListener("change", () => save(item.id, row));
      const label = cell("label");
      label.append(input, ` ${ANSWER_KO[value]} `);
      answer.append(label);
    }
    row.append(answer);
    for (const [name, value] of [["note", item.note], ["evidence", item.evidence]]) {
      const input = cell("input", undefined, { type: "text", value: value || "", name, disabled: !data.may_answer,
        placeholder: name === "evidence" && item.suggested ? item.suggested.evidence : "" });
      input.setAttribute("aria-label", `${item.id} ${name === "note" ? "비고" : "근거"}`);
      input.addEventListener("change", () => save(item.id, row));
      const td = cell("td");
      td.append(input);
      row.append(td);
    }
  }
}

async function save(item, row) {
  const picked = row.querySelector("input[type=radio]:checked");
  const body = { project: $("#project").value.trim() || "기본", answer: picked ? picked.value : null,
    note: row.querySelector("input[name=note]").value, evidence: row.querySelector("input[name=evidence]").value };
  try {
    await api(`/api/checklist/${encodeURIComponent(item)}?${$("#agency") ? `agency=${encodeURIComponent($("#agency").value)}` : ""}`,
      { method: "PUT", json: body });
    notify(`${item} 저장했습니다.`);
    await load(false);
  } catch (error) { notify(error.message, true); }
}

async function load(full = true) {
  try {
    current = await getJson(`/api/checklist?${query()}`);
  } catch (error) { notify(error.message, true); return; }
  drawSections(current);
  if (full) drawItems(current);
  const list = $("#projects");
  list.innerHTML = "";
  for (const name of current.projects) list.append(cell("option", undefined, { value: name }));
  if (!current.may_answer) notify("읽기 전용입니다: 체크리스트는 기관 관리자가 작성합니다.");
}

$("#project-form").addEventListener("submit", (event) => { event.preventDefault(); notify(""); load(); });
$("#export-xlsx").addEventListener("click", () => { location.href = `/api/checklist/export?${query({ format: "xlsx" })}`; });
$("#export-hwpx").addEventListener("click", () => { location.href = `/api/checklist/export?${query({ format: "hwpx" })}`; });
applyLang();
load();
