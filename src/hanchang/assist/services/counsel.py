"""counsel 상담 지원: for a counsellor, never the citizen.

Given a citizen's question: retrieve similar past cases and the governing rules from the chosen
knowledge bases, draft a reply that cites them, and flag what needs a human decision (money,
exceptions, legal judgement, personal circumstances, or no supporting source).
"""

from __future__ import annotations

import re
from typing import Any

from hanchang.assist import answer
from hanchang.assist.services.base import Field, Service, ServiceContext, ServiceResult

INSTRUCTIONS = (
    "당신은 민원 상담원을 돕는 AI입니다. 시민에게 보낼 답변 초안을 정중한 공문체로 쓰되, 아래 [자료]의 "
    "규정과 과거 사례만 근거로 하고 근거 번호를 [1]처럼 표시하세요. 판단이 필요한 부분은 "
    "'[확인 필요]'로 표시하세요. 이 초안은 상담원이 검토한 뒤에만 발송됩니다."
)
NO_DRAFT = "관련 규정이나 사례를 찾지 못해 초안을 만들지 않았습니다. 담당 부서 규정을 직접 확인하세요."
# Topics a counsellor must decide, not the model.
HUMAN_DECISION = {
    "금전": r"환급|보상|배상|과태료|감면|지원금|수당|비용",
    "예외 인정": r"예외|특례|유예|연장|재심|이의",
    "법적 판단": r"소송|고소|위법|불법|처벌|행정심판",
    "개인 사정": r"장애|질병|사망|임신|가정폭력|긴급",
}


def flags_for(question: str, reply: str, cited: int) -> list[str]:
    text = f"{question}\n{reply}"
    flags = [f"{label} 판단 필요" for label, pattern in HUMAN_DECISION.items() if re.search(pattern, text)]
    if "[확인 필요]" in reply:
        flags.append("초안에 '확인 필요' 표시가 있음")
    if cited == 0:
        flags.append("근거 자료를 찾지 못함: 규정을 직접 확인하세요")
    return flags


async def run(ctx: ServiceContext, inputs: dict[str, Any]) -> ServiceResult:
    question = inputs["question"].strip()
    body = {"model": ctx.model_name,
            "messages": [{"role": "system", "content": INSTRUCTIONS},
                         {"role": "user", "content": f"민원 내용:\n{question}"}]}
    done = await answer.complete(ctx.platform, ctx.principal, answer.AnswerRequest(
        body, ctx.grade, collections=list(inputs.get("collections") or []), endpoint="service.counsel"))
    citations = done.citations or []
    reply = NO_DRAFT if done.no_sources else done.text
    return ServiceResult(reply, citations, {"audience": "counsellor_only", "sent_to_citizen": False,
                                            "needs_human_decision": flags_for(question, reply, len(citations))})


COUNSEL = Service("counsel", "상담 지원", "Counselling support",
                  "민원 질문에 대해 규정과 과거 사례를 찾아 답변 초안을 만들고, 사람이 판단할 부분을 "
                  "표시합니다. 상담원용이며 시민에게 직접 보내지 않습니다.",
                  (Field("question", "longtext", "민원 내용"),
                   Field("collections", "collections", "규정·사례 지식베이스")), run)
