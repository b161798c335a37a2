// Building the tables of the admin pages (운영 현황, 평가): elements with text, never HTML.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}
function table(headers, rows, empty = "자료가 없습니다 (no data)") {
  const t = el("table", { class: "ops-table" });
  t.append(el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))));
  const body = el("tbody");
  for (const row of rows) body.append(el("tr", {}, ...row.map((cell) => el("td", {}, cell))));
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, empty)));
  t.append(body);
  return t;
}
