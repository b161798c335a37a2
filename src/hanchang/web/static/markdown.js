// A small, safe Markdown renderer: text is escaped first, then a few constructs are added back.
function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function inline(text) {
  return text
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*])\*([^*]+)\*/g, "$1<em>$2</em>")
    .replace(/\[(\d{1,2})\]/g, '<button type="button" class="cite" data-cite="$1" aria-label="출처 $1">[$1]</button>');
}
function renderMarkdown(source) {
  const lines = escapeHtml(source || "").split("\n");
  const out = [];
  let list = null, code = false, codeLines = [];
  const closeList = () => { if (list) { out.push(`</${list}>`); list = null; } };
  for (const line of lines) {
    if (line.startsWith("```")) {
      if (code) { out.push(`<pre><code>${codeLines.join("\n")}</code></pre>`); codeLines = []; }
      closeList(); code = !code; continue;
    }
    if (code) { codeLines.push(line); continue; }
    let m;
    if ((m = line.match(/^(#{1,4})\s+(.*)$/))) { closeList(); out.push(`<h${m[1].length + 2}>${inline(m[2])}</h${m[1].length + 2}>`); }
    else if ((m = line.match(/^\s*[-*•◦]\s+(.*)$/))) { if (list !== "ul") { closeList(); out.push("<ul>"); list = "ul"; } out.push(`<li>${inline(m[1])}</li>`); }
    else if ((m = line.match(/^\s*\d+[.)]\s+(.*)$/))) { if (list !== "ol") { closeList(); out.push("<ol>"); list = "ol"; } out.push(`<li>${inline(m[1])}</li>`); }
    else if (!line.trim()) { closeList(); }
    else { closeList(); out.push(`<p>${inline(line)}</p>`); }
  }
  if (code) out.push(`<pre><code>${codeLines.join("\n")}</code></pre>`);
  closeList();
  return out.join("");
}
