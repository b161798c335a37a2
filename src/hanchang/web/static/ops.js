// The operations page: figures over a date range (uPlot charts, served locally), SLOs, budgets,
// 👎 review, the KPI report and recent failures. Korean first; every number comes from /api/ops.
const ZONE = "Asia/Seoul";
const number = new Intl.NumberFormat("ko-KR");
const COLORS = ["#0b4ea2", "#1d6b3a", "#a11a1a", "#8a5a00", "#6a3d9a", "#00838f", "#c2185b", "#5d4037"];
const KIND_KO = { requests: "요청", tokens: "토큰", won: "비용(원)" };
const STATUS_KO = { open: "검토 전", resolved: "해결됨", knowledge_gap: "지식 부족", model_error: "모델 오류" };
const charts = {};

function dayIn(zone, date = new Date()) { return date.toLocaleDateString("sv-SE", { timeZone: zone }); }
function shiftDays(iso, days) {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}
function agency() { const select = $("#agency"); return select ? select.value : ""; }
function query(extra = {}) {
  const params = new URLSearchParams({ start: $("#from").value, end: $("#to").value, ...extra });
  if (agency()) params.set("agency", agency());
  return params.toString();
}
const pct = (v, digits = 1) => (v === null || v === undefined ? "-" : `${(v * 100).toFixed(digits)}%`);
const met = (v) => el("span", { class: v === false ? "bad" : v ? "good" : "muted" }, v === false ? "미달" : v ? "충족" : "-");
function showError(error) { const box = $("#ops-error"); box.textContent = error.message; box.hidden = false; }

// -- charts -------------------------------------------------------------------------------
function draw(id, xs, series, { dashed = [], yLabel = "" } = {}) {
  const host = document.getElementById(id);
  if (charts[id]) charts[id].destroy();
  host.innerHTML = "";
  const names = Object.keys(series);
  if (!names.length) { host.append(el("p", { class: "muted" }, "자료가 없습니다 (no data)")); return; }
  const width = Math.max(280, host.clientWidth || 480);
  charts[id] = new uPlot({
    width, height: 220,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), ZONE),
    series: [{}, ...names.map((name, i) => ({
      label: name, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true,
      dash: dashed.includes(name) ? [6, 4] : undefined, points: { show: xs.length < 40 },
    }))],
    axes: [{}, { label: yLabel, size: 56 }],
    scales: { y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
  }, [xs, ...names.map((n) => series[n])], host);
}

function renderCharts(data) {
  const xs = data.buckets;
  draw("chart-calls", xs, data.calls_by_model, { yLabel: "건" });
  draw("chart-services", xs, data.calls_by_service, { yLabel: "건" });
  draw("chart-tokens", xs, { "입력 in": data.tokens.in, "출력 out": data.tokens.out }, { yLabel: "토큰" });
  const slo = data.latency.slo;
  const lines = { [`SLO 질의응답 ${slo.qa}초`]: xs.map(() => slo.qa), [`SLO 추론 ${slo.inference}초`]: xs.map(() => slo.inference) };
  draw("chart-latency", xs, { "p50": data.latency.p50, "p90": data.latency.p90, ...lines },
       { dashed: Object.keys(lines), yLabel: "초" });
  draw("chart-users", xs, { "활성 사용자 active users": data.active_users }, { yLabel: "명" });
  draw("chart-policy", xs, { "등급 차단 grade": data.refusals.grade, "개인정보 차단 PII": data.refusals.pii,
    "예산 초과 budget": data.refusals.budget, "재배정 reroute": data.reroutes }, { yLabel: "건" });
  draw("chart-feedback", xs, { "▲ 도움이 됨 비율": data.feedback.rate.map((r) => (r === null ? null : r * 100)) }, { yLabel: "%" });
}

function renderCards(totals) {
  const cards = [
    ["호출 수", "Calls", number.format(totals.calls)],
    ["오류", "Errors", number.format(totals.errors)],
    ["토큰", "Tokens", number.format(totals.tokens)],
    ["비용", "Cost", `${number.format(Math.round(totals.cost_won))}원`],
    ["활성 사용자", "Active users", number.format(totals.active_users)],
    ["긍정 평가 비율", "Thumbs-up rate", pct(totals.thumbs_up_rate)],
    ["재배정", "Reroutes", number.format(totals.reroutes)],
    ["정책 차단", "Refused by policy", number.format(totals.refusals.grade + totals.refusals.pii)],
  ];
  $("#cards").replaceChildren(...cards.map(([ko, en, value]) =>
    el("div", { class: "card" }, el("div", { class: "card-value" }, value), el("div", { class: "card-label" }, `${ko} · ${en}`))));
}

// -- tables -------------------------------------------------------------------------------
async function loadSlo() {
  const params = new URLSearchParams({ window: $("#slo-window").value });
  if (agency()) params.set("agency", agency());
  const report = await getJson(`/api/ops/slo?${params}`);
  const latency = table(["모델", "서비스", "구분", "호출", `p${report.targets.latency_percentile}`, "목표", "목표 이내", "오류 예산 사용", ""],
    report.latency.map((o) => [o.model, o.service, o.kind === "qa" ? "질의응답" : "추론", number.format(o.calls),
      `${o.measured_s.toFixed(2)}초`, `${o.target_s}초`, pct(o.within_share), pct(o.budget_used, 0), met(o.met)]));
  const availability = table(["모델", "상태 점검", "요청 기준", "가용성", "목표", "중단(분)", "허용(분)", "오류 예산 사용", ""],
    report.availability.map((o) => [o.model, pct(o.probe_availability, 3), pct(o.request_availability, 3),
      pct(o.measured, 3), pct(o.target, 2), o.down_minutes ?? "-", o.allowed_down_minutes, pct(o.budget_used, 0), met(o.met)]));
  const c = report.capacity;
  const capacity = el("p", {}, `동시 사용자(5분) 최고 ${c.peak_users}명 / 수용 목표 ${c.capacity_users}명 · 활성 사용자 ${c.active_users}명 `, met(c.met));
  $("#slo").replaceChildren(el("h3", {}, "응답시간 Latency"), latency, el("h3", {}, "가용성 Availability"), availability, capacity);
}

async function loadBudgets() {
  const params = agency() ? `?agency=${encodeURIComponent(agency())}` : "";
  const found = await getJson(`/api/ops/budgets${params}`);
  const cell = (row, kind) => {
    const limit = row.limits[kind], used = row.used[kind];
    if (!limit) return `${number.format(Math.round(used))} / 무제한`;
    const meter = el("meter", { min: 0, max: limit, value: Math.min(used, limit), low: limit * found.warn_at, high: limit * 0.95, optimum: 0,
      "aria-label": `${KIND_KO[kind]} ${pct(row.share[kind], 0)}` });
    return el("span", { class: "budget-cell" }, meter, ` ${number.format(Math.round(used))} / ${number.format(limit)} (${pct(row.share[kind], 0)})`);
  };
  $("#budgets").replaceChildren(el("p", { class: "muted small" }, `기간 ${found.period} · ${found.resets_at.slice(0, 10)}에 다시 채워짐 · ${Math.round(found.warn_at * 100)}%부터 경고`),
    table(["대상", "요청", "토큰", "비용(원)", "조정"], found.data.map((row) => [row.label, cell(row, "requests"), cell(row, "tokens"), cell(row, "won"), row.overridden ? "조정됨" : ""])));
}

async function loadFeedback() {
  const params = new URLSearchParams({ status: $("#feedback-status").value });
  if (agency()) params.set("agency", agency());
  $("#feedback-export").href = `/api/ops/feedback/export?${params}`;
  const { data } = await getJson(`/api/ops/feedback?${params}`);
  const box = $("#feedback");
  box.replaceChildren();
  if (!data.length) { box.append(el("p", { class: "muted" }, "검토할 ▼ 도움이 안 됨 답변이 없습니다 (nothing to review)")); return; }
  for (const item of data) {
    const status = el("select", { "aria-label": "검토 결과" }, ...Object.entries(STATUS_KO).map(([value, label]) => {
      const option = el("option", { value }, label); option.selected = value === item.status; return option; }));
    const expected = el("textarea", { rows: 2, placeholder: "기대한 답 (선택) · expected answer (optional)", "aria-label": "기대한 답" });
    expected.value = item.expected_answer || "";
    const saved = el("span", { role: "status", class: "small muted" });
    const save = el("button", { type: "button", class: "primary" }, "저장");
    save.addEventListener("click", async () => {
      try {
        await api(`/api/ops/feedback/${item.id}/review`, { method: "POST", json: { status: status.value, expected_answer: expected.value } });
        saved.textContent = `저장됨 (${STATUS_KO[status.value]})`;
      } catch (error) { saved.textContent = error.message; }
    });
    const sources = el("ul", { class: "small" }, ...item.sources.map((s) => el("li", {}, `[${s.index}] ${s.title || s.source || ""} ${s.section || ""} (${s.grade})`)));
    box.append(el("article", { class: "feedback-item" },
      el("div", { class: "small muted" }, `${item.created_at.slice(0, 16).replace("T", " ")} · ${item.agency} · ${item.model || ""} · 등급 ${item.grade}`),
      el("p", {}, el("strong", {}, "질문 "), item.question),
      el("p", {}, el("strong", {}, "답변 "), item.answer.length > 400 ? `${item.answer.slice(0, 400)}…` : item.answer),
      item.sources.length ? sources : el("p", { class: "small muted" }, "출처 없음"),
      el("p", {}, el("strong", {}, "사유 "), item.reason || "-"),
      el("div", { class: "review-row" }, status, expected, save, saved)));
  }
}

function renderFailures(failures) {
  $("#failures").replaceChildren(table(["시각", "기관", "사용자", "모델", "서비스", "상태", "코드", "지연(ms)"],
    failures.map((f) => [f.at.slice(0, 19).replace("T", " "), f.agency, f.user, f.model, f.service, f.status, f.code || "", number.format(f.latency_ms)])));
}

function reportLinks() {
  const month = $("#report-month").value;
  for (const link of document.querySelectorAll("#report-form [data-format]")) {
    const params = new URLSearchParams({ period: month, format: link.dataset.format });
    if (agency()) params.set("agency", agency());
    link.href = `/api/ops/report?${params}`;
  }
}
async function loadReport() {
  reportLinks();
  const params = new URLSearchParams({ period: $("#report-month").value, format: "json" });
  if (agency()) params.set("agency", agency());
  const report = await getJson(`/api/ops/report?${params}`);
  $("#report-preview").replaceChildren(el("h3", {}, report.title), table(["구분", "지표", "값", "단위", "정의"],
    report.indicators.map((i) => [i.group, i.name, i.value === null ? "-" : typeof i.value === "number" ? number.format(i.value) : i.value, i.unit, i.definition])));
}

async function load() {
  $("#ops-error").hidden = true;
  $("#scope-label").textContent = agency() ? `· ${agency()}` : (document.body.dataset.platformAdmin === "true" ? "· 전체 기관" : `· ${document.body.dataset.agency}`);
  try {
    const data = await getJson(`/api/ops/overview?${query()}`);
    renderCards(data.totals);
    renderCharts(data);
    renderFailures(data.failures);
    await Promise.all([loadSlo(), loadBudgets(), loadFeedback(), loadReport()]);
    document.body.dataset.loaded = "true";
  } catch (error) { showError(error); }
}

function setDays(days) {
  const today = dayIn(ZONE);
  $("#to").value = today;
  $("#from").value = shiftDays(today, 1 - days);
}

$("#range").addEventListener("submit", (event) => { event.preventDefault(); load(); });
document.querySelectorAll("[data-days]").forEach((b) => b.addEventListener("click", () => { setDays(Number(b.dataset.days)); load(); }));
$("#slo-window").addEventListener("change", () => loadSlo().catch(showError));
$("#feedback-status").addEventListener("change", () => loadFeedback().catch(showError));
$("#report-month").addEventListener("change", () => loadReport().catch(showError));
if ($("#agency")) $("#agency").addEventListener("change", load);
$("#budget-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { note: $("#b-note").value };
  for (const kind of ["requests", "tokens", "won"]) { const v = $(`#b-${kind}`).value; if (v !== "") body[kind] = Number(v); }
  try {
    await api(`/api/ops/budgets/${encodeURIComponent($("#b-scope").value.trim())}`, { method: "PUT", json: body });
    $("#budget-result").textContent = "조정했습니다 (saved)";
    await loadBudgets();
  } catch (error) { $("#budget-result").textContent = error.message; }
});

setDays(14);
$("#report-month").value = shiftDays(`${dayIn(ZONE).slice(0, 7)}-01`, -1).slice(0, 7);
load();
