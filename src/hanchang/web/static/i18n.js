// Korean first; English on request (remembered in this browser).
const I18N = {
  en: {
    tagline: "Common AI platform for government", agency: "Agency code", user: "User name", password: "Password",
    signIn: "Sign in", or: "or", newChat: "New chat", searchChats: "Search chats", users: "Users", signOut: "Sign out",
    model: "Model", grade: "Data grade", gradeO: "Open", gradeS: "Sensitive", gradeC: "Classified",
    knowledge: "Knowledge bases", uploadTo: "Upload to", upload: "Upload documents", welcome: "How can I help?",
    welcomeHint: "Pick knowledge bases to get cited answers. Choose the data grade first.", question: "Question",
    askPlaceholder: "Type a question (Enter sends, Shift+Enter new line)", send: "Send", stop: "Stop",
    close: "Close", role: "Role", create: "Create", copy: "Copy", regenerate: "Regenerate", good: "Helpful",
    bad: "Not helpful", rename: "Rename", delete: "Delete", sources: "Sources", stopped: "(stopped)",
    services: "Work tools", run: "Run", working: "Working…", download: "download",
    evalsTitle: "Evaluations", evalRuns: "Evaluation runs", refresh: "Refresh", compareBase: "Base run",
    compareOther: "Compared run", compare: "Compare", comparison: "Comparison", runItems: "Items of the run",
    evalHint: "Pick two runs to compare them item by item, with McNemar's test and a 95% interval for score changes. Runs are made with `hanchang eval run` or /v1/evals.",
    opsTitle: "Operations", from: "From", to: "To", today: "Today", days7: "7 days", days30: "30 days",
    days90: "90 days", agencyFilter: "Agency", allAgencies: "All agencies", show: "Show",
    chartCalls: "Calls by model", chartServices: "Calls by service", chartTokens: "Tokens",
    chartLatency: "Latency (s) with SLO lines", chartUsers: "Active users", chartPolicy: "Policy refusals and reroutes",
    chartFeedback: "Thumbs-up rate", sloTitle: "Service-level objectives", budgetTitle: "Budget use",
    budgetScope: "Scope", requests: "Requests", tokens: "Tokens", won: "Won", note: "Reason", adjust: "Adjust budget",
    feedbackTitle: "Review ▼ unhelpful answers", exportJsonl: "Export evaluation set (JSONL)", reportTitle: "KPI report",
    month: "Month", failuresTitle: "Recent failures", budgetWarning: "Budget",
    libraryTitle: "Agents · shared assets", checklistTitle: "Adoption checklist", tabAgents: "Our agents",
    tabLibrary: "Find shared assets", tabPrompts: "Prompts", tabReview: "Review", agentsTitle: "Work agents",
    newAgent: "New agent", agentsHint: "An agent bundles instructions and knowledge bases. Pick it like a model in the window, or call model: \"agent:<id>\" over the API. It always acts with the caller's rights.",
    agentName: "Name", agentDescription: "Description", agentInstructions: "Instructions", agentServices: "Work tools it may use",
    agentConnectors: "Connectors it may use", agentModel: "Preferred model", agentExamples: "Example questions (one per line)",
    save: "Save", cancel: "Cancel", tryQuestion: "Test question", tryIt: "Try it", libraryCommon: "Assets in the common space",
    kind: "Kind", searchButton: "Search", importFile: "Import file (YAML/JSON)", promptsTitle: "Prompt snippets",
    promptTitle: "Title", promptText: "Text", reviewTitle: "Waiting for review", publishTitle: "Publish to the common space",
    tags: "Tags (comma separated)", licence: "Licence", versionNote: "What changed in this version",
    publishHint: "Assets with personal data or references to sensitive/classified knowledge bases cannot be published.",
    publish: "Publish", project: "Project", progress: "Progress",
    checklistHint: "'Auto' answers were filled in by Hanchang from its own state; an agency's answer wins.",
  },
};
const KO = {};
function currentLang() { return localStorage.getItem("hanchang.lang") || "ko"; }
function t(key, fallback) {
  const lang = currentLang();
  if (lang !== "ko" && I18N[lang] && I18N[lang][key]) return I18N[lang][key];
  return KO[key] || fallback || key;
}
function applyLang() {
  const lang = currentLang();
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => {
    const key = el.dataset.i18n;
    if (!(key in KO)) KO[key] = el.textContent;
    el.textContent = lang === "ko" ? KO[key] : (I18N[lang][key] || KO[key]);
  });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
    const key = "ph:" + el.dataset.i18nPlaceholder;
    if (!(key in KO)) KO[key] = el.placeholder;
    el.placeholder = lang === "ko" ? KO[key] : (I18N[lang][el.dataset.i18nPlaceholder] || KO[key]);
  });
  document.querySelectorAll("[data-lang-toggle]").forEach((b) => { b.textContent = lang === "ko" ? "English" : "한국어"; });
}
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-lang-toggle]")) {
    localStorage.setItem("hanchang.lang", currentLang() === "ko" ? "en" : "ko");
    applyLang();
  }
});
applyLang();
