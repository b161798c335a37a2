// Korean first; English on request (remembered in this browser).
const I18N = {
  en: {
    tagline: "Common AI platform for government", agency: "Agency code", user: "User name", password: "Password",
    signIn: "Sign in", newChat: "New chat", searchChats: "Search chats", users: "Users", signOut: "Sign out",
    model: "Model", grade: "Data grade", gradeO: "Open", gradeS: "Sensitive", gradeC: "Classified",
    knowledge: "Knowledge bases", uploadTo: "Upload to", upload: "Upload documents", welcome: "How can I help?",
    welcomeHint: "Pick knowledge bases to get cited answers. Choose the data grade first.", question: "Question",
    askPlaceholder: "Type a question (Enter sends, Shift+Enter new line)", send: "Send", stop: "Stop",
    close: "Close", role: "Role", create: "Create", copy: "Copy", regenerate: "Regenerate", good: "Helpful",
    bad: "Not helpful", rename: "Rename", delete: "Delete", sources: "Sources", stopped: "(stopped)",
    services: "Work tools", run: "Run", working: "Working…", download: "download",
    opsTitle: "Operations", from: "From", to: "To", today: "Today", days7: "7 days", days30: "30 days",
    days90: "90 days", agencyFilter: "Agency", allAgencies: "All agencies", show: "Show",
    chartCalls: "Calls by model", chartServices: "Calls by service", chartTokens: "Tokens",
    chartLatency: "Latency (s) with SLO lines", chartUsers: "Active users", chartPolicy: "Policy refusals and reroutes",
    chartFeedback: "Thumbs-up rate", sloTitle: "Service-level objectives", budgetTitle: "Budget use",
    budgetScope: "Scope", requests: "Requests", tokens: "Tokens", won: "Won", note: "Reason", adjust: "Adjust budget",
    feedbackTitle: "Review 👎 answers", exportJsonl: "Export evaluation set (JSONL)", reportTitle: "KPI report",
    month: "Month", failuresTitle: "Recent failures", budgetWarning: "Budget",
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
