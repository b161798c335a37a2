"""The adoption checklist of the guideline (3.3 초거대 AI 도입 체크리스트), per agency and project.

Each item is answered yes / no / n.a. with a note or an evidence link. Items the platform can
answer from its own state are pre-filled (marked `auto`, with the evidence it found): grades of
the agency's collections, configured SLOs, RAG data prepared, the PII guard and grade policy,
monitoring, budgets, the KPI report. A stored answer always wins over a pre-filled one.
Exported as XLSX or HWPX for the agency's review.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hanchang.config import Settings
from hanchang.core.errors import InvalidInput
from hanchang.ops import table_files
from hanchang.store.tables import Agency, ChecklistAnswer, Chunk, Collection, Document, Feedback, utcnow

ANSWERS = {"yes": "예", "no": "아니오", "na": "해당 없음"}
PROJECT = re.compile(r"^[^\x00-\x1f<>]{1,100}$")

SECTIONS: dict[str, tuple[str, str]] = {
    "0": ("초거대 AI 도입 결정 및 인프라 구축방법 결정", "3.1 도입 원칙 및 고려사항"),
    "1": ("도입 업무의 보안등급 검토", "3.2.1 데이터 보안 등급"),
    "2": ("클라우드 구성 방안에 따른 검토", "3.2.2 클라우드 서비스 구성 방안"),
    "3": ("데이터 학습 방식에 따른 LLM 유형 결정", "3.2.3 데이터 학습 방식"),
    "4": ("서비스 도입을 위한 방식 결정", "3.2.4 서비스 도입 방식"),
    "5": ("유지보수 및 운영(Ops) 방식 검토", "3.2.5 유지보수 및 운영"),
    "6": ("성과 관리", "4. 공공부문 AI 성과관리"),
}

_ITEMS = """
0.1.1|0.1 초거대 AI 도입 여부 결정|대상 업무의 추진현황, 목표 및 문제점 분석
0.1.2|0.1 초거대 AI 도입 여부 결정|문제해결을 위한 신기술 활용 방안에 대한 적합성 검토
0.1.3|0.1 초거대 AI 도입 여부 결정|신기술 도입에 따른 기대효과 및 성과(정량·정성) 분석
0.1.4|0.1 초거대 AI 도입 여부 결정|국정과제 등 정부의 정책 방향 검토
0.2.1|0.2 초거대 AI 인프라 구축방법 결정|범정부 초거대 AI 공통기반 활용
0.2.2|0.2 초거대 AI 인프라 구축방법 결정|자체 인프라 구축
0.2.3|0.2 초거대 AI 인프라 구축방법 결정|민간의 클라우드 서비스 활용
1.1|1. 보안등급 검토|기관의 업무정보, 정보서비스 현황 식별·분석 등 기초정보 수집
1.2|1. 보안등급 검토|업무 중요도에 따라 3개 등급(기밀, 민감, 공개)으로 분류
1.3|1. 보안등급 검토|서비스 환경 전체를 대상으로 위협 식별 및 보안대책 대상 선정
1.4|1. 보안등급 검토|보안통제 선택, 구현계획 수립 등 보안 대책 수립
1.5|1. 보안등급 검토|C/S/O 등급분류, 위협식별 등 적절성 평가·조정
1.6|1. 보안등급 검토|국가정보원 보안성 검토
2.1|2. 클라우드 구성|클라우드 영역 및 인프라 규모 선정 검토
2.2|2. 클라우드 구성|클라우드 도입 유형 결정(퍼블릭, 프라이빗, 멀티 클라우드) 검토
2.3|2. 클라우드 구성|사업 추진방향(보유 자원과 신규 자원의 전환·재구축 등) 검토
2.4|2. 클라우드 구성|클라우드 벤더사의 제공 서비스(보안성, 비용효율성, 안정성, 확장성 등) 검토
3.1.1|3.1 LLM 사용 방식 결정|추가학습 없이 범용 LLM을 그대로 사용 (파운데이션 모델 → 3.2)
3.1.2|3.1 LLM 사용 방식 결정|기관의 정제된 일부 데이터로 추가학습 (파인튜닝 → 3.3)
3.1.3|3.1 LLM 사용 방식 결정|대량의 신규 데이터를 추가학습 (사후학습 → 3.4)
3.1.4|3.1 LLM 사용 방식 결정|추가 학습 없이 보유데이터 활용 (RAG 기반 모델 → 3.5)
3.2.1|3.2 파운데이션 모델|대상 업무의 특성을 반영한 LLM 선정(파라미터 규모, 속도, 정확도 등) 여부
3.2.2|3.2 파운데이션 모델|기관의 업무적 특성과 가용한 자원(인프라, 이용료 등) 파악
3.3.1|3.3 파인튜닝|업무 특성을 반영한 LLM 선정(파라미터 규모, 속도, 정확도 등) 여부
3.3.2|3.3 파인튜닝|기관의 업무적 특성과 가용한 자원(인프라, 이용료 등) 파악
3.3.3|3.3 파인튜닝|추가학습을 위한 데이터 준비 여부
3.3.4|3.3 파인튜닝|파라미터의 미세조정 및 기대 성능 모니터링 검토
3.3.5|3.3 파인튜닝|데이터 유출 방지 및 보안 대책 마련 검토
3.3.6|3.3 파인튜닝|모델 버전 관리 및 배포 방안 마련 검토
3.3.7|3.3 파인튜닝|추가학습을 위한 컴퓨팅 자원 확보 검토
3.4.1|3.4 사후학습|업무 특성을 반영한 LLM 선정(파라미터 규모, 속도, 정확도 등) 여부
3.4.2|3.4 사후학습|기관의 업무적 특성과 가용한 자원(인프라, 이용료 등) 파악
3.4.3|3.4 사후학습|추가학습을 위한 데이터 준비 여부
3.4.4|3.4 사후학습|파운데이션 모델 고도화 및 기대 성능 모니터링 검토
3.4.5|3.4 사후학습|데이터 유출 방지 및 보안 대책 마련 검토
3.4.6|3.4 사후학습|모델 버전 관리 및 배포 방안 마련 검토
3.4.7|3.4 사후학습|추가학습을 위한 컴퓨팅 자원 확보 검토
3.5.1|3.5 RAG 기반 모델|업무 특성을 반영한 LLM 선정(파라미터 규모, 속도, 정확도 등) 여부
3.5.2|3.5 RAG 기반 모델|기관의 업무적 특성과 가용한 자원(인프라, 이용료 등) 파악
3.5.3|3.5 RAG 기반 모델|벡터 DB 구성을 위한 데이터 확보
3.5.4|3.5 RAG 기반 모델|검색결과 신뢰성 확보 및 기대 성능 모니터링 검토
3.5.5|3.5 RAG 기반 모델|데이터 유출 방지 및 보안 대책 마련 검토
3.5.6|3.5 RAG 기반 모델|벡터 DB 업데이트 및 배포 방안 마련 검토
4.1.1|4.1 도입 방식 결정|완성된 서비스를 원하는 만큼 이용 (서비스 구매 방식 → 4.2)
4.1.2|4.1 도입 방식 결정|일반경쟁 입찰절차에 따라 용역계약 (조달 발주 방식 → 4.3)
4.2.1|4.2 서비스 구매 방식|계약제도 등록 및 요건 확인
4.2.2|4.2 서비스 구매 방식|제품 커스터마이징 여부 및 수의계약 확인
4.3.1|4.3 조달 발주 방식|요구사항을 반영한 사업계획서 산출 검토
4.3.2|4.3 조달 발주 방식|보안성 검토 등 사전절차 이행 검토
4.3.3|4.3 조달 발주 방식|조달 요청을 통한 경쟁입찰 추진체계, 공고기간 등 확인
5.1|5. 유지보수 및 운영|데이터 관리(강화학습, 파라미터, 배포 등)를 위한 운영 조직 구성 검토
5.2|5. 유지보수 및 운영|언어 모델의 규모, 비용, 성능 최적화를 위한 시스템 모니터링 검토
5.3|5. 유지보수 및 운영|지속적인 모델 관리와 유지보수 및 운영을 위한 예산확보 방안 검토
5.4|5. 유지보수 및 운영|정보보호 및 취약점 분석 등 보안성 검토
5.5|5. 유지보수 및 운영|사용 지침 수립 및 교육 등 내적 운영 방안 수립 검토
5.6|5. 유지보수 및 운영|법·제도적, 사회적 이슈 등 외적 요인 검토
5.7|5. 유지보수 및 운영|인공지능 윤리 기준(편향·환각·거짓정보 등 위험성 대응 등) 검토
5.8|5. 유지보수 및 운영|서비스 레벨 목표(SLO) 항목 검토(요구사항 및 목표 품질 등)
6.1|6. 성과 관리|성과목표 설정 및 지표 개발 수립 검토
6.2|6. 성과 관리|성과관리 도구 및 프로세스(조직, 절차 등) 마련 검토
6.3|6. 성과 관리|중장기 성과 관리 및 환류 체계 수립 검토
"""


@dataclass(frozen=True)
class Item:
    id: str
    group: str
    text: str

    @property
    def section(self) -> str:
        return self.id.split(".")[0]


ITEMS: tuple[Item, ...] = tuple(Item(*line.split("|")) for line in _ITEMS.strip().splitlines())
BY_ID = {item.id: item for item in ITEMS}


@dataclass(frozen=True)
class Suggestion:
    answer: str
    evidence: str


def _platform_state(session: Session, settings: Settings, agency_id: int) -> dict[str, Suggestion]:
    """What the platform knows of itself and of this agency, as suggested answers."""
    grades = dict(session.execute(select(Collection.grade, func.count()).where(Collection.agency_id == agency_id)
                                  .group_by(Collection.grade)).all())
    documents, chunks = session.execute(
        select(func.count(func.distinct(Document.id)), func.count(Chunk.id))
        .select_from(Collection).join(Document, Document.collection_id == Collection.id)
        .outerjoin(Chunk, Chunk.document_id == Document.id)
        .where(Collection.agency_id == agency_id)).one()
    code = session.scalar(select(Agency.code).where(Agency.id == agency_id))
    ratings = dict(session.execute(select(Feedback.rating, func.count()).where(Feedback.agency_code == code)
                                   .group_by(Feedback.rating)).all())
    chat_models = [m for m in settings.models if m.kind == "chat"]
    slo = settings.slo
    found: dict[str, Suggestion] = {
        "0.2.1": Suggestion("yes", "범정부 공통기반(한창)에서 운영 중"),
        "5.2": Suggestion("yes", "운영 현황 화면(/ops)과 Prometheus 지표(/metrics): 호출·지연·토큰·비용·가용성"),
        "5.8": Suggestion("yes", f"SLO 설정: 질의응답 {slo.qa_seconds:g}초·추론 {slo.inference_seconds:g}초 "
                                 f"이내 {slo.latency_percentile}%, 월 가용성 {slo.availability:.2%}, "
                                 f"동시 사용자 {slo.capacity_users}명"),
        "6.2": Suggestion("yes", "성과지표(KPI) 보고서: hanchang report, 운영 현황 화면의 XLSX·HWPX 내려받기"),
        "3.2.1": Suggestion("yes", "설정된 모델: " + ", ".join(
            f"{m.name}(최대 {m.max_grade.value}등급)" for m in chat_models)) if chat_models else None,
    }
    if grades:
        counts = ", ".join(f"{label} {grades.get(code, 0)}개" for code, label in
                           (("C", "기밀"), ("S", "민감"), ("O", "공개")))
        found["1.2"] = Suggestion("yes", f"지식베이스 등급 분류 완료: {counts}")
    if documents:
        found["3.1.4"] = Suggestion("yes", f"지식베이스 {sum(grades.values())}개에 문서 {documents}건 (RAG)")
        found["3.5.3"] = Suggestion("yes", f"검색용 데이터 준비: 문서 {documents}건, 조각 {chunks}개")
    if ratings:
        rated = sum(ratings.values())
        found["3.5.4"] = Suggestion("yes", f"답변 평가 {rated}건 (▲ 도움이 됨 {ratings.get(1, 0) / rated:.0%}), "
                                           "▼ 도움이 안 됨 답변 검토·평가셋 내보내기(운영 현황)")
    pii = settings.pii
    found["3.5.5"] = Suggestion("yes", f"개인정보 보호(내부 모델 {pii.internal.value}, 외부 모델 {pii.external.value})"
                                       " 및 등급 정책(기밀·민감 자료는 허용된 모델만)")
    if settings.budgets.per_agency or settings.budgets.agencies:
        found["5.3"] = Suggestion("yes", "기관 예산(토큰·원) 설정과 80% 경고")
    return {key: value for key, value in found.items() if value is not None}


def view(session: Session, settings: Settings, agency_id: int, project: str) -> dict[str, Any]:
    """Every item with its answer (stored, else pre-filled), and progress per section."""
    project = _project(project)
    stored = {row.item: row for row in session.scalars(select(ChecklistAnswer).where(
        ChecklistAnswer.agency_id == agency_id, ChecklistAnswer.project == project))}
    suggested = _platform_state(session, settings, agency_id)
    items = []
    for item in ITEMS:
        row, auto = stored.get(item.id), suggested.get(item.id)
        entry = {"id": item.id, "section": item.section, "group": item.group, "text": item.text,
                 "answer": None, "note": "", "evidence": "", "auto": False, "suggested": None}
        if auto:
            entry["suggested"] = {"answer": auto.answer, "evidence": auto.evidence}
        if row is not None:
            entry.update(answer=row.answer, note=row.note, evidence=row.evidence,
                         updated_at=row.updated_at.isoformat())
        elif auto:
            entry.update(answer=auto.answer, evidence=auto.evidence, auto=True)
        items.append(entry)
    sections = []
    for key, (title, reference) in SECTIONS.items():
        mine = [i for i in items if i["section"] == key]
        answered = sum(1 for i in mine if i["answer"])
        sections.append({"id": key, "title": title, "reference": reference, "items": len(mine),
                         "answered": answered})
    answered = sum(1 for i in items if i["answer"])
    return {"project": project, "items": items, "sections": sections, "answered": answered, "total": len(items),
            "progress": round(answered / len(items), 3)}


def _project(project: str) -> str:
    project = (project or "").strip()
    if not PROJECT.match(project):
        raise InvalidInput("사업(과제) 이름을 100자 이내로 넣어 주세요.", "project: 1 to 100 characters")
    return project


def projects(session: Session, agency_id: int) -> list[str]:
    return list(session.scalars(select(ChecklistAnswer.project).where(ChecklistAnswer.agency_id == agency_id)
                                .group_by(ChecklistAnswer.project).order_by(ChecklistAnswer.project)))


def answer(session: Session, agency_id: int, project: str, item: str, value: str | None, note: str = "",
           evidence: str = "", user_id: int | None = None) -> None:
    """Store (or, with value None, clear) one answer."""
    project = _project(project)
    if item not in BY_ID:
        raise InvalidInput(f"체크리스트 항목 '{item}'은(는) 없습니다.", f"no checklist item '{item}'")
    if value is not None and value not in ANSWERS:
        raise InvalidInput("답은 yes(예), no(아니오), na(해당 없음) 중 하나입니다.", "answer: yes, no or na")
    if len(evidence.strip()) > 500:
        raise InvalidInput("근거는 500자 이내로 넣어 주세요.", "evidence: at most 500 characters")
    row = session.scalar(select(ChecklistAnswer).where(ChecklistAnswer.agency_id == agency_id,
                                                       ChecklistAnswer.project == project,
                                                       ChecklistAnswer.item == item).with_for_update())
    if value is None:
        if row is not None:
            session.delete(row)
        return
    if row is None:
        row = ChecklistAnswer(agency_id=agency_id, project=project, item=item)
        session.add(row)
    row.answer, row.note, row.evidence = value, note.strip()[:4000], evidence.strip()
    row.updated_by, row.updated_at = user_id, utcnow()
    session.flush()


HEADER = ("번호", "구분", "점검 항목", "답", "비고", "근거", "작성")


def _rows(checklist: dict[str, Any]) -> list[list[str]]:
    return [[i["id"], i["group"], i["text"], ANSWERS.get(i["answer"] or "", "미작성"), i["note"], i["evidence"],
             "자동" if i["auto"] else ("기관" if i["answer"] else "")] for i in checklist["items"]]


def _title(agency: str, checklist: dict[str, Any], zone: str) -> tuple[str, str]:
    made = datetime.now(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
    return (f"초거대 AI 도입 체크리스트 — {agency} · {checklist['project']}",
            f"작성 {made} · 진행 {checklist['answered']}/{checklist['total']} · 가이드라인 3.3 · 한창")


def to_xlsx(agency: str, checklist: dict[str, Any], zone: str) -> bytes:
    title, subtitle = _title(agency, checklist, zone)
    return table_files.to_xlsx(title, subtitle, "도입 체크리스트", HEADER, _rows(checklist),
                               (7, 26, 60, 10, 30, 40, 6), wrap=(2, 4, 5))


def to_hwpx(agency: str, checklist: dict[str, Any], zone: str) -> bytes:
    title, subtitle = _title(agency, checklist, zone)
    return table_files.to_hwpx(title, subtitle, HEADER, _rows(checklist))


WRITERS = {
    "xlsx": (to_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "hwpx": (to_hwpx, "application/hwp+zip"),
}
