"""act 서비스 처리: the model proposes a call to a registered agency API; the user confirms it.

Nothing is executed here except read-only calls on connectors that auto-approve reads; every
other proposal comes back as a pending action showing exactly what would be sent.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.concurrency import run_in_threadpool

from hanchang.assist import connectors
from hanchang.assist.services.base import Field, Service, ServiceContext, ServiceInputError, ServiceResult

PROMPT = ("사용자의 요청을 처리할 API 호출 하나를 JSON으로만 제안하세요. 형식: "
          '{"operation": "작업 이름", "arguments": {"인자": "값"}}\n가능한 작업:\n')


async def run(ctx: ServiceContext, inputs: dict[str, Any]) -> ServiceResult:
    db = ctx.platform.db

    def load():
        with db.session() as session:
            connector = connectors.connector_for(session, ctx.principal, inputs["connector"])
            return connector.id, list(connectors.operations(json.loads(connector.spec)).values())
    connector_id, ops = await run_in_threadpool(load)
    schema = {"anyOf": [op.proposal_schema() for op in ops]}
    system = PROMPT + "\n".join(op.describe() for op in ops)
    proposal = await ctx.complete("act", [{"role": "system", "content": system},
                                          {"role": "user", "content": inputs["request"]}], max_tokens=300,
                                  schema=schema)
    match = re.search(r"\{.*\}", proposal, re.DOTALL)
    try:
        plan = json.loads(match.group(0)) if match else None
    except json.JSONDecodeError:
        plan = None
    if not isinstance(plan, dict):
        raise ServiceInputError("요청을 API 호출로 바꾸지 못했습니다. 무엇을 할지 더 구체적으로 써 주세요.")

    def store():
        with db.session() as session:
            from hanchang.store.tables import Connector

            connector = session.get(Connector, connector_id)
            try:
                action = connectors.propose(session, ctx.principal, connector, plan, ctx.grade)
            except connectors.CallRefused as refused:
                return refused  # its audit record commits with this session; reported below
            if connectors.auto_approvable(connector, action):
                connectors.decide(session, ctx.principal, action, confirm=True,
                                  policy=ctx.platform.settings.connectors.policy())
            return connectors.preview(action)
    try:
        action = await run_in_threadpool(store)
    except connectors.ActionError as exc:
        raise ServiceInputError(exc.message_ko) from None
    if isinstance(action, connectors.CallRefused):
        raise ServiceInputError(action.message_ko)
    target = (f"MCP 도구 '{action['operation']}' ({action['url']})" if action["method"] == connectors.MCP_METHOD
              else f"{action['method']} {action['url']}")
    if action["status"] == "pending":
        text = (f"다음 호출을 보내려면 확인해 주세요: {target}"
                + (f" 내용 {json.dumps(action['body'], ensure_ascii=False)}" if action["body"] else ""))
    else:
        text = f"조회 결과({target}): {json.dumps(action['result'], ensure_ascii=False)}"
    return ServiceResult(text, meta={"action": action, "needs_confirmation": action["status"] == "pending"})


ACT = Service("act", "서비스 처리", "Act on agency systems",
              "등록된 기관 API 호출을 제안합니다. 보낼 내용을 보여 주고, 확인한 뒤에만 실행합니다.",
              (Field("connector", "choice", "연계 API", choices_from="/api/connectors"),
               Field("request", "longtext", "처리할 일")), run)
