"""The KPI report (guideline chapter 4): the indicators the platform can measure itself, for one
agency (or all) and one month, grouped as 투입 (input) / 과정 (process) / 산출 (output) /
결과 (outcome), each with its definition and source; written as XLSX, HWPX or CSV.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select

from hanchang.config import Settings
from hanchang.core.errors import InvalidInput
from hanchang.ops import table_files
from hanchang.store.db import Database
from hanchang.store.tables import Agency, Collection, Document, Feedback, HealthSample, UsageRecord, User

GROUPS = ("투입", "과정", "산출", "결과")
GROUP_EN = {"투입": "input", "과정": "process", "산출": "output", "결과": "outcome"}
HEADER = ("구분", "지표", "값", "단위", "정의", "출처")
_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Indicator:
    group: str  # 투입 | 과정 | 산출 | 결과
    name: str
    value: float | int | str | None
    unit: str
    definition: str
    source: str

    def shown(self) -> str:
        if self.value is None:
            return "-"
        if isinstance(self.value, float):
            return f"{self.value:,.2f}" if abs(self.value) < 1000 else f"{self.value:,.0f}"
        return f"{self.value:,}" if isinstance(self.value, int) else str(self.value)


@dataclass(frozen=True)
class KpiReport:
    agency: str | None  # None: every agency
    agency_name: str
    period: str
    indicators: list[Indicator]
    made_at: str

    @property
    def title(self) -> str:
        return f"한창 성과지표 보고서 — {self.agency_name} {self.period}"

    def rows(self) -> list[tuple[str, str, str, str, str, str]]:
        return [(i.group, i.name, i.shown(), i.unit, i.definition, i.source) for i in self.indicators]


def month_range(period: str, zone: str) -> tuple[datetime, datetime]:
    """The month's first and next month's first instant in the zone, as UTC."""
    match = _PERIOD.match(period)
    if not match:
        raise InvalidInput("기간은 YYYY-MM 형식으로 주세요 (예: 2026-10).", "period must be YYYY-MM, e.g. 2026-10",
                           param="period")
    year, month = int(match[1]), int(match[2])
    tz = ZoneInfo(zone)
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)  # compared in UTC: SQLite keeps times without zone


def build(db: Database, settings: Settings, period: str, agency: str | None) -> KpiReport:
    start, end = month_range(period, settings.budgets.timezone)
    slo = settings.slo
    with db.session() as session:
        agency_row = session.scalar(select(Agency).where(Agency.code == agency)) if agency else None
        if agency and agency_row is None:
            raise InvalidInput(f"기관 {agency}이(가) 없습니다.", f"no agency {agency!r}", param="agency")
        usage = select(UsageRecord).where(UsageRecord.created_at >= start, UsageRecord.created_at < end)
        users = select(func.count()).select_from(User).where(User.disabled.is_(False))
        documents = select(func.count()).select_from(Document).join(Collection)
        feedback = select(Feedback.rating).where(Feedback.created_at >= start, Feedback.created_at < end)
        if agency_row is not None:
            usage = usage.where(UsageRecord.agency_code == agency)
            users = users.where(User.agency_id == agency_row.id)
            documents = documents.where(Collection.agency_id == agency_row.id)
            feedback = feedback.where(Feedback.agency_code == agency)
        records = list(session.scalars(usage))
        registered = session.scalar(users) or 0
        document_count = session.scalar(documents) or 0
        ratings = list(session.scalars(feedback))
        probes = session.execute(select(HealthSample.ok).where(
            HealthSample.created_at >= start, HealthSample.created_at < end)).scalars().all()

    answers = [r for r in records if not r.endpoint.startswith("embeddings")]
    answered = [r for r in answers if r.status == 200 and r.model_used]
    qa = np.asarray([r.latency_ms for r in answered if r.grounded], dtype=float) / 1000
    inference = np.asarray([r.latency_ms for r in answered if not r.grounded], dtype=float) / 1000
    pct = slo.latency_percentile
    by_service = Counter(r.endpoint for r in records)
    succeeded = Counter(r.endpoint for r in answers if r.status == 200)
    minutes = settings.report.minutes_saved
    saved_hours = sum(n * minutes.get(s, minutes.get("*", 0.0)) for s, n in succeeded.items()) / 60
    failed_5xx = sum(1 for r in records if r.status >= 500)
    by_request = 1 - failed_5xx / len(records) if records else None
    by_probe = sum(1 for ok in probes if ok) / len(probes) if probes else None
    availability = min((v for v in (by_request, by_probe) if v is not None), default=None)
    grounded = [r for r in answers if r.grounded and r.status == 200]
    cited = [r for r in grounded if r.error_code != "no_sources"]
    up = sum(1 for r in ratings if r > 0)
    refusals = defaultdict(int)
    for r in records:
        if r.error_code in ("data_grade_refused", "personal_data_blocked"):
            refusals[r.error_code] += 1
    usage_src = "usage_records (호출 1건당 1행)"

    def p(values: np.ndarray) -> float | None:
        return round(float(np.percentile(values, pct)), 2) if values.size else None

    found = [
        Indicator("투입", "등록 사용자 수", registered, "명", "기간 말 현재 사용 중지되지 않은 계정 수", "users"),
        Indicator("투입", "지식베이스 문서 수", document_count, "건", "기관 지식베이스(공통 제외)에 등록된 문서 수",
                  "documents"),
        Indicator("투입", "토큰 사용량", sum(r.tokens_in + r.tokens_out for r in records), "토큰",
                  "모델이 읽은 토큰과 쓴 토큰의 합", usage_src),
        Indicator("투입", "모델 사용 비용", round(sum(r.cost_won or 0 for r in records), 2), "원",
                  "설정된 모델별 단가(1천 토큰당 원)로 계산한 비용", usage_src + ", 설정 models[].price"),
        Indicator("과정", f"질의응답 응답시간 (p{pct:g})", p(qa), "초",
                  f"지식베이스 근거 답변의 전체 응답시간 {pct:g} 백분위 (목표 {slo.qa_seconds:g}초 이내)", usage_src),
        Indicator("과정", f"추론 응답시간 (p{pct:g})", p(inference), "초",
                  f"근거 없는 일반 답변의 전체 응답시간 {pct:g} 백분위 (목표 {slo.inference_seconds:g}초 이내)",
                  usage_src),
        Indicator("과정", "가용성", round(availability * 100, 3) if availability is not None else None, "%",
                  f"모델 상태 점검 성공 비율과 서버 오류(5xx) 없는 요청 비율 중 낮은 값 (목표 {slo.availability:.2%})",
                  "health_samples, " + usage_src),
        Indicator("과정", "등급 정책 재배정", sum(1 for r in records if r.rerouted), "건",
                  "자료 등급을 볼 수 없는 모델 대신 허용된 내부 모델로 답한 요청 수", usage_src),
        Indicator("과정", "등급·개인정보 정책 차단", sum(refusals.values()), "건",
                  "자료 등급 또는 개인정보 정책에 따라 모델에 보내지 않고 막은 요청 수", usage_src),
        Indicator("과정", "개인정보 보호조치", sum(r.pii_masked for r in records), "개",
                  "모델에 보내기 전에 가리거나 가명 처리한 개인정보 항목 수", usage_src),
        Indicator("산출", "전체 호출 수", len(records), "건", "모든 모델 호출(답변·임베딩·업무 도구) 수", usage_src),
        *[Indicator("산출", f"서비스별 호출 수: {service}", count, "건", f"'{service}' 경로로 들어온 호출 수",
                    usage_src) for service, count in sorted(by_service.items())],
        Indicator("산출", "활성 사용자 수", len({r.user_id for r in records if r.user_id is not None}), "명",
                  "기간 중 한 번 이상 호출한 사용자 수", usage_src),
        Indicator("산출", "근거 기반 답변 비율",
                  round(len(cited) / len(answered) * 100, 1) if answered else None, "%",
                  "성공한 답변 중 지식베이스 출처를 인용해 답한 비율", usage_src),
        Indicator("결과", "답변 만족도 (▲ 도움이 됨 비율)", round(up / len(ratings) * 100, 1) if ratings else None, "%",
                  f"평가된 답변 중 ▲ 도움이 됨 비율 (평가 {len(ratings)}건)", "feedback"),
        Indicator("결과", "추정 절감 업무시간", round(saved_hours, 1), "시간",
                  "성공한 호출 수 × 서비스별 1건당 절감 시간 가정(" +
                  ", ".join(f"{k} {v:g}분" for k, v in sorted(minutes.items())) + ")",
                  usage_src + ", 설정 report.minutes_saved"),
        Indicator("결과", "오류율", round(failed_5xx / len(records) * 100, 2) if records else None, "%",
                  "서버 쪽 오류(5xx)로 끝난 호출 비율", usage_src),
    ]
    name = agency_row.name if agency_row is not None else "전체 기관"
    return KpiReport(agency, f"{name} ({agency})" if agency else name, period, found,
                     datetime.now(UTC).isoformat(timespec="seconds"))


# -- writers ------------------------------------------------------------------------------------
def to_csv(report: KpiReport) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    writer.writerows(report.rows())
    return buffer.getvalue().encode("utf-8-sig")  # the BOM lets Excel read Korean


def to_xlsx(report: KpiReport) -> bytes:
    rows = [[i.group, i.name, i.value if isinstance(i.value, int | float) else i.shown(), i.unit, i.definition,
             i.source] for i in report.indicators]
    return table_files.to_xlsx(report.title, f"작성 {report.made_at} · 한창 자동 집계", "성과지표", HEADER, rows,
                               (8, 30, 14, 8, 70, 36), wrap=(4,))


def to_hwpx(report: KpiReport) -> bytes:
    return table_files.to_hwpx(report.title, f"작성 {report.made_at} · 한창 자동 집계", HEADER, report.rows())


WRITERS = {
    "xlsx": (to_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "hwpx": (to_hwpx, "application/hwp+zip"),
    "csv": (to_csv, "text/csv; charset=utf-8"),
}


def last_month(zone: str, today: date | None = None) -> str:
    today = today or datetime.now(ZoneInfo(zone)).date()
    first = today.replace(day=1) - timedelta(days=1)
    return f"{first:%Y-%m}"
