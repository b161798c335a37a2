"""Operations and governance for administrators: SLOs, budgets, feedback review, the operations
page's figures and the KPI report (guideline 3.2.5 and chapter 4).

Metrics for machines are `audit.metrics`; budgets are enforced in `gateway.quotas`.
"""
