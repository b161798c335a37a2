// The evaluations page (평가): runs of the agency, a run's items, and two runs compared item by item.
// Every figure comes from /api/eval-runs and /v1/evals (the same harness the CLI and the API use).
const STATUS_KO = { queued: "대기", in_progress: "진행 중", completed: "완료", failed: "실패", canceled: "취소" };
const pct = (v) => (v === null || v === undefined ? "-" : `${(v * 100).toFixed(1)}%`);
const mark = (passed) => (passed === true ? "통과" : passed === false ? "실패" : "-");
let runs = [];

function scoreCell(run) {
  return (run.hanchang.scores || []).map((s) => `${s.testing_criteria} ${pct(s.pass_rate)}`).join(" · ");
}

async function loadRuns() {
  runs = (await getJson("/api/eval-runs?limit=50")).data;
  const rows = runs.map((run) => {
    const set = run.hanchang.dataset;
    const open = el("button", { type: "button", class: "link", "data-run": run.id }, run.name);
    open.addEventListener("click", () => showItems(run));
    return [open, run.model, set.name ? `${set.name}@${set.version}` : "inline", run.hanchang.grade,
      `${STATUS_KO[run.status] || run.status} ${run.hanchang.progress.done}/${run.hanchang.progress.total}`,
      scoreCell(run), `${run.hanchang.latency_s.p50 ?? "-"} / ${run.hanchang.latency_s.p90 ?? "-"} s`,
      new Date(run.created_at * 1000).toLocaleString("ko-KR")];
  });
  const box = $("#runs");
  box.replaceChildren(table(["실행 (run)", "모델", "평가 세트", "등급", "상태", "통과율", "지연 p50/p90", "만든 때"], rows,
    "평가 실행이 없습니다 (no runs yet)"));
  for (const id of ["#base", "#other"]) {
    const select = $(id);
    const kept = select.value;
    select.replaceChildren(...runs.map((run) => el("option", { value: run.id }, `${run.name} (${run.id.slice(-6)})`)));
    if (kept) select.value = kept;
  }
  if (runs.length > 1 && !$("#other").dataset.touched) { $("#base").value = runs[1].id; $("#other").value = runs[0].id; }
}

async function showItems(run) {
  const found = await getJson(`/v1/evals/${run.eval_id}/runs/${run.id}/output_items?limit=100`);
  const rows = found.data.map((item) => [item.datasource_item.id || String(item.datasource_item_id),
    item.datasource_item.question || item.datasource_item.input || "",
    el("div", { class: "eval-answer" }, item.sample.output[0].content),
    item.results.map((r) => `${r.name}: ${mark(r.passed)}`).join(" · "), item.status]);
  $("#items-run").textContent = `${run.name} · ${run.id}`;
  $("#items-body").replaceChildren(table(["항목", "질문", "답변", "결과", "상태"], rows));
  $("#run-items").hidden = false;
}

async function compare(event) {
  event.preventDefault();
  try {
    const result = await getJson(`/v1/evals/runs/${$("#base").value}/compare/${$("#other").value}`);
    const rows = result.criteria.map((c) => [c.criterion, pct(c.pass_rate.base), pct(c.pass_rate.other),
      String(c.flipped_to_pass), String(c.flipped_to_fail), c.mcnemar_p.toFixed(3),
      c.score_delta.mean === null ? "-" : `${c.score_delta.mean >= 0 ? "+" : ""}${c.score_delta.mean.toFixed(3)} [${c.score_delta.ci95[0].toFixed(3)}, ${c.score_delta.ci95[1].toFixed(3)}]`]);
    const flips = result.flipped.map((f) => [f.item, f.criterion, f.to === "pass" ? "실패→통과" : "통과→실패", f.before, f.after]);
    $("#comparison-body").replaceChildren(
      el("p", { class: "muted" }, `${result.items}개 항목 짝지음 · 같은 평가 세트: ${result.same_dataset ? "예" : "아니요"}`),
      table(["기준", "기준 실행", "비교 실행", "→통과", "→실패", "McNemar p", "점수 차이 [95% 구간]"], rows),
      el("h3", {}, "바뀐 항목 (flipped items)"),
      table(["항목", "기준", "변화", "기준 실행 답변", "비교 실행 답변"], flips));
    $("#comparison").hidden = false;
    notify("");
  } catch (error) { notify(error.message, true); }
}

$("#compare-form").addEventListener("submit", compare);
$("#other").addEventListener("change", () => { $("#other").dataset.touched = "1"; });
$("#refresh").addEventListener("click", () => loadRuns().catch((e) => notify(e.message, true)));
loadRuns().catch((error) => notify(error.message, true));
