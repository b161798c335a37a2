"""analyze 분석·활용: profile a table and answer with figures computed by our code.

The table comes pasted as CSV or as a file (CSV, XLSX, or a table inside HWP/HWPX/DOCX/PDF). The
model sees column names, their kinds and the values of text categories — never the figures — and
only turns the question into a small plan (operation, column, grouping, filter) held to a JSON
schema (ADR 0006); pandas computes the figures, so no number in the answer is invented by the
model. A grouped result comes with an SVG bar chart and a short reading whose numbers are checked
against the computed ones.
"""

from __future__ import annotations

import io
import json
import re
from html import escape
from typing import Any

import pandas as pd
from starlette.concurrency import run_in_threadpool

from hanchang.assist.services.base import Field, Service, ServiceContext, ServiceInputError, ServiceResult
from hanchang.assist.services.uploads import parse_upload, uploaded_file
from hanchang.knowledge.parsers import Block, BlockKind, DocumentError, detect_format
from hanchang.knowledge.parsers.text import read_text
from hanchang.knowledge.parsers.ziputil import check_zip

MAX_ROWS = 200_000
OPERATIONS = {"sum": "합계", "mean": "평균", "count": "건수", "max": "최댓값", "min": "최솟값"}
MAX_CATEGORIES = 30  # a column with at most this many distinct values may be filtered on
PLAN_PROMPT = (
    "표의 열과 질문을 보고, 답을 계산할 계획을 JSON 하나로만 출력하세요. 형식: "
    '{"operation": "sum|mean|count|max|min", "column": "계산할 열 또는 null", '
    '"group_by": "묶을 열 또는 null", "filter": {"column": "열", "value": "값"} 또는 null}\n'
    "질문에 특정 값(예: 서울, 1분기)이 없으면 filter는 null로 두세요.\n"
    "예) 열: 지역(글자: 서울, 부산), 연도(숫자), 인구(숫자)\n질문: 지역별 인구 합계\n"
    '{"operation": "sum", "column": "인구", "group_by": "지역", "filter": null}\n'
    "질문: 서울의 연도별 평균 인구\n"
    '{"operation": "mean", "column": "인구", "group_by": "연도", "filter": {"column": "지역", "value": "서울"}}'
)


def load_table(inputs: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table to analyse and where it came from: pasted CSV, an XLSX, or an uploaded file."""
    try:
        if inputs.get("file"):
            frame, source = _from_upload(inputs["file"], inputs.get("table"))
        elif inputs.get("csv"):
            frame, source = pd.read_csv(io.StringIO(inputs["csv"])), {"kind": "csv"}
        else:
            raise ServiceInputError("분석할 표를 넣어 주세요: 파일(CSV·XLSX·HWP·HWPX·DOCX) 또는 CSV 글.")
    except (ValueError, pd.errors.ParserError) as exc:
        raise ServiceInputError(f"표를 읽을 수 없습니다: {exc}") from exc
    if frame.empty:
        raise ServiceInputError("표에 데이터가 없습니다.")
    frame.columns = [str(c) for c in frame.columns]  # plans name columns as text
    if len(frame) > MAX_ROWS:
        raise ServiceInputError(f"표가 너무 큽니다({len(frame):,}행). {MAX_ROWS:,}행 이하로 나눠 주세요.")
    return frame, source


def _from_upload(upload: Any, table: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    with uploaded_file(upload) as (path, name):
        try:
            kind = detect_format(path, name)
        except DocumentError as exc:
            raise ServiceInputError(exc.message_ko) from None
        if kind == "csv":
            return pd.read_csv(io.StringIO(read_text(path, name))), {"kind": "csv", "filename": name}
        if kind == "xlsx":
            try:  # the same zip-bomb guard as every uploaded document, before pandas opens it
                check_zip(path, name)
            except DocumentError as exc:
                raise ServiceInputError(exc.message_ko) from None
            return pd.read_excel(path), {"kind": "xlsx", "filename": name}
        parsed = parse_upload(path, name)
    return _document_table(parsed.blocks, table, name, kind)


def _document_table(blocks: list[Block], table: Any, name: str, kind: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A table of an HWP/HWPX/DOCX/PDF/HTML document: first row as header, numbers as numbers."""
    tables: dict[int, list[list[str]]] = {}
    for block in blocks:
        if block.kind == BlockKind.TABLE_ROW and block.table is not None:
            tables.setdefault(block.table, []).append([c.strip() for c in block.text.strip().strip("|").split(" | ")])
    usable = [rows for rows in tables.values() if len(rows) >= 2]
    if not usable:
        raise ServiceInputError(f"'{name}'에서 제목 줄과 데이터가 있는 표를 찾지 못했습니다.")
    try:
        index = int(table or 1)
    except (TypeError, ValueError):
        index = 0
    if not 1 <= index <= len(usable):
        raise ServiceInputError(f"'{name}'에는 표가 {len(usable)}개 있습니다. 표 번호는 1~{len(usable)}로 고르세요.")
    header, *rows = usable[index - 1]
    width = len(header)
    names = [cell or f"열{i + 1}" for i, cell in enumerate(header)]
    frame = pd.DataFrame([(row + [""] * width)[:width] for row in rows], columns=names)
    for column in frame.columns:
        numbers = pd.to_numeric(frame[column].str.replace(",", "", regex=False).str.strip(), errors="coerce")
        if numbers.notna().sum() and numbers.notna().sum() == (frame[column].str.strip() != "").sum():
            frame[column] = numbers
    return frame, {"kind": kind, "filename": name, "table": index, "tables": len(usable)}


def profile(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = []
    for name in frame.columns:
        series = frame[name]
        column: dict[str, Any] = {"name": str(name), "non_null": int(series.notna().sum()),
                                  "unique": int(series.nunique())}
        if pd.api.types.is_numeric_dtype(series):
            column.update(type="number", min=_num(series.min()), max=_num(series.max()),
                          mean=_num(series.mean()), sum=_num(series.sum()))
        else:
            column.update(type="text", top=[str(v) for v in series.value_counts().head(5).index])
        columns.append(column)
    return columns


def _num(value: Any) -> float | int | None:
    if value is None or pd.isna(value):
        return None
    number = float(value)
    return int(number) if number.is_integer() else round(number, 4)


def _numeric_columns(frame: pd.DataFrame) -> list[str]:
    return [str(c) for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]


def _categories(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Columns with few distinct values, and those values: what a filter may name."""
    found = {}
    for column in frame.columns:
        values = frame[column].dropna().astype(str).unique()
        if 0 < len(values) <= MAX_CATEGORIES:
            found[str(column)] = [str(v) for v in values]
    return found


def describe_columns(frame: pd.DataFrame) -> str:
    """Column names with their kind; text categories list their values (numbers never leave)."""
    categories, numeric = _categories(frame), set(_numeric_columns(frame))
    parts = []
    for name in map(str, frame.columns):
        if name in numeric:
            parts.append(f"{name}(숫자)")
        elif name in categories:
            more = " …" if len(categories[name]) > 10 else ""
            parts.append(f"{name}(글자: {', '.join(categories[name][:10])}{more})")
        else:
            parts.append(f"{name}(글자)")
    return ", ".join(parts)


def plan_schema(frame: pd.DataFrame) -> dict[str, Any]:
    """The plan's JSON shape: the table's own columns only, only numeric ones to add up.

    Filter values stay out of the schema (the schema is not run through the personal-data guard
    as the messages are); `parse_plan` checks them against the table instead."""
    def nullable(names: list[str]) -> dict[str, Any]:
        return {"anyOf": [{"type": "string", "enum": names}, {"type": "null"}]} if names else {"type": "null"}

    every = nullable([str(c) for c in frame.columns])
    filterable = list(_categories(frame))
    conditions = [{"type": "object", "required": ["column", "value"], "properties": {
        "column": {"type": "string", "enum": filterable}, "value": {"type": "string"}}}] if filterable else []
    shapes = [({"const": "count"}, every)]
    if numeric := _numeric_columns(frame):
        measured = [op for op in OPERATIONS if op != "count"]
        shapes.append(({"type": "string", "enum": measured}, {"type": "string", "enum": numeric}))
    return {"anyOf": [{"type": "object", "required": ["operation", "column", "group_by", "filter"], "properties": {
        "operation": operation, "column": column, "group_by": every,
        "filter": {"anyOf": [*conditions, {"type": "null"}]}}} for operation, column in shapes]}


def _conditions(raw: Any, names: set[str]) -> dict[str, Any]:
    """{"열": 값} as written, or {"column": 열, "value": 값} as the schema asks."""
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise ServiceInputError("거르기 조건(filter)을 읽지 못했습니다. 질문을 더 구체적으로 써 주세요.")
    if set(raw) == {"column", "value"} and not {"column", "value"} & names:
        return {} if raw["column"] is None else {str(raw["column"]): raw["value"]}
    return raw


def parse_plan(text: str, frame: pd.DataFrame) -> dict[str, Any]:
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if not match:
        raise ServiceInputError("질문을 계산 계획으로 바꾸지 못했습니다. 열 이름을 넣어 다시 물어보세요.")
    try:
        plan = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise ServiceInputError("계산 계획을 읽지 못했습니다. 질문을 더 구체적으로 써 주세요.") from exc
    names = {str(c) for c in frame.columns}
    plan["filter"] = _conditions(plan.get("filter"), names)
    if plan.get("operation") not in OPERATIONS:
        raise ServiceInputError(f"계산 방식은 {', '.join(OPERATIONS.values())} 중 하나여야 합니다.")
    for key in ("column", "group_by"):
        if plan.get(key) not in (None, *names):
            raise ServiceInputError(f"'{plan.get(key)}' 열이 표에 없습니다. 있는 열: {', '.join(sorted(names))}")
    if plan["operation"] != "count" and plan.get("column") is None:
        raise ServiceInputError("계산할 열을 질문에 넣어 주세요.")
    if plan["operation"] != "count" and plan["column"] not in _numeric_columns(frame):
        numeric = ", ".join(_numeric_columns(frame)) or "없음"
        raise ServiceInputError(f"'{plan['column']}' 열은 숫자가 아니어서 {OPERATIONS[plan['operation']]} 계산을 "
                                f"할 수 없습니다. 숫자 열: {numeric}")
    for column, value in list((plan.get("filter") or {}).items()):
        if column not in names:
            raise ServiceInputError(f"거르기 열 '{column}'이(가) 표에 없습니다.")
        number = re.search(r"-?\d+(?:\.\d+)?", str(value))
        if column in _numeric_columns(frame) and number and not (frame[column].astype(str) == str(value)).any():
            value = plan["filter"][column] = _num(float(number.group(0)))  # "1분기" in a numeric column → 1
        if not (frame[column].astype(str) == str(value)).any():
            known = _categories(frame).get(column)
            hint = f" 있는 값: {', '.join(known[:10])}" if known else ""
            raise ServiceInputError(f"'{column}' 열에 '{value}' 값이 없습니다.{hint} 질문의 값을 확인해 주세요.")
    return plan


def execute(frame: pd.DataFrame, plan: dict[str, Any]) -> pd.Series | float:
    data = frame
    for column, value in (plan.get("filter") or {}).items():
        data = data[data[column].astype(str) == str(value)]
    operation, column, group = plan["operation"], plan.get("column"), plan.get("group_by")
    if group:
        if operation == "count":
            result = data.groupby(group)[column].count() if column else data.groupby(group).size()
        else:
            result = getattr(data.groupby(group)[column], operation)()
        return result.sort_values(ascending=False)
    if operation == "count":
        return float(data[column].count() if column else len(data))
    return float(getattr(data[column], operation)())


def bar_chart_svg(series: pd.Series, title: str) -> str:
    """A plain SVG bar chart (no plotting library), up to 20 bars."""
    items = list(series.head(20).items())
    width, bar, gap, left = 640, 22, 8, 160
    height = 40 + len(items) * (bar + gap)
    peak = max((abs(float(v)) for _, v in items), default=1) or 1
    rows = []
    for i, (label, value) in enumerate(items):
        y = 30 + i * (bar + gap)
        length = (width - left - 80) * abs(float(value)) / peak
        rows.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{escape(str(label))}</text>'
                    f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" fill="#0b4ea2"/>'
                    f'<text x="{left + length + 6:.1f}" y="{y + 16}">{_num(value):,}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="13"><text x="8" y="18" font-weight="bold">'
            f'{escape(title)}</text>{"".join(rows)}</svg>')


_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")


def invented_numbers(text: str, result: pd.Series) -> list[str]:
    """Numbers in the model's reading that are neither a computed figure, their total or count,
    nor part of a group's name (e.g. '1분기')."""
    allowed = {round(float(v), 2) for v in result.values}
    allowed |= {round(float(result.sum()), 2), float(len(result))}
    labels = " ".join(str(k) for k in result.index)
    found = []
    for match in _NUMBER.finditer(text):
        raw = match.group(0)
        try:
            number = round(float(raw.replace(",", "")), 2)
        except ValueError:
            continue
        if number not in allowed and raw not in labels:
            found.append(raw)
    return found


def computed_reading(result: pd.Series, plan: dict[str, Any], label: str) -> str:
    """A reading written from the figures alone, for when the model's cannot be trusted."""
    top, bottom, group = result.idxmax(), result.idxmin(), plan["group_by"]
    reading = (f"{group} {len(result)}곳 가운데 {label}이(가) 가장 큰 곳은 {top}({_num(result[top]):,}), "
               f"가장 작은 곳은 {bottom}({_num(result[bottom]):,})입니다.")
    if plan["operation"] in ("sum", "count"):
        reading += f" 모두 더하면 {_num(result.sum()):,}입니다."
    return reading + " (모델의 해석에 계산 결과에 없는 숫자가 있어 계산값으로 바꿔 적었습니다.)"


async def run(ctx: ServiceContext, inputs: dict[str, Any]) -> ServiceResult:
    frame, source = await run_in_threadpool(load_table, inputs)
    columns = profile(frame)
    question = (inputs.get("question") or "").strip()
    if not question:
        return ServiceResult(f"{len(frame):,}행 {len(columns)}열의 표입니다.",
                             meta={"profile": columns, "source": source})
    names = describe_columns(frame)
    plan = parse_plan(await ctx.complete("analyze", [
        {"role": "system", "content": PLAN_PROMPT},
        {"role": "user", "content": f"열: {names}\n질문: {question}"}],
        max_tokens=200, schema=plan_schema(frame)), frame)
    result = execute(frame, plan)
    label = f"{plan.get('column') or '행'} {OPERATIONS[plan['operation']]}"
    meta: dict[str, Any] = {"profile": columns, "plan": plan, "source": source}
    if isinstance(result, pd.Series):
        table = [{"group": str(k), "value": _num(v)} for k, v in result.items()]
        meta.update(table=table, chart_svg=bar_chart_svg(result, f"{plan['group_by']}별 {label}"))
        figures = "\n".join(f"- {row['group']}: {row['value']:,}" for row in table[:20])
        interpretation = await ctx.complete("analyze", [
            {"role": "system", "content": "아래 계산 결과만 근거로 두세 문장으로 해석하세요. 새 숫자를 만들지 마세요."},
            {"role": "user", "content": f"질문: {question}\n{plan['group_by']}별 {label}:\n{figures}"}],
            max_tokens=300)
        invented = invented_numbers(interpretation, result)
        if invented:  # the model's reading carries a figure we did not compute: say so, use our own
            meta["interpretation_replaced"] = {"invented_numbers": invented, "model_text": interpretation}
            interpretation = computed_reading(result, plan, label)
        text = f"{plan['group_by']}별 {label}:\n{figures}\n\n{interpretation}"
    else:
        meta["value"] = _num(result)
        text = f"{label}: {_num(result):,}"
    return ServiceResult(text, meta=meta)


ANALYZE = Service("analyze", "분석·활용", "Table analysis",
                  "CSV·XLSX 파일이나 HWP·HWPX 문서의 표를 요약하고, 질문에 맞는 수치를 코드로 계산해 "
                  "그래프와 해석을 돌려줍니다.",
                  (Field("file", "file", "표 파일(CSV·XLSX·HWP·HWPX·DOCX)", required=False),
                   Field("table", "text", "표 번호(문서에 표가 여럿일 때)", required=False),
                   Field("csv", "longtext", "또는 CSV 붙여넣기", required=False),
                   Field("question", "text", "질문", required=False)), run)
