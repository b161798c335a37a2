"""`hanchang keys status|rotate|sweep|shred`: the agencies' encryption keys (store/keyring.py).

Registered on the `keys` group beside the API-key commands (`create`, `list`, `revoke`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import func, select

from hanchang.cli.common import audit_admin, err, fail, open_database, out, settings_or_exit
from hanchang.store.tables import Agency, AgencyKey

AgencyOption = Annotated[str | None, typer.Option("--agency", help="Agency code (default: every agency).")]


def _agencies(db, code: str | None) -> list[tuple[int, str]]:
    with db.session() as session:
        query = select(Agency.id, Agency.code).order_by(Agency.code)
        if code:
            query = query.where(Agency.code == code)
        found = [tuple(row) for row in session.execute(query)]
    if code and not found:
        raise fail(f"agency '{code}' not found 기관이 없습니다")
    return found


def status(agency: AgencyOption = None) -> None:
    """Each agency's keys and what still waits to be sealed under its active key."""
    from hanchang.assist.sealing_sweep import TARGETS

    settings = settings_or_exit()
    db = open_database(settings)
    keyring = db.keyring
    table = Table("agency 기관", "active data key", "keys (data/index)", "KEK", "waiting to be sealed 대기")
    for agency_id, code in _agencies(db, agency):
        with db.session() as session:
            counts = dict(session.execute(select(AgencyKey.purpose, func.count()).where(
                AgencyKey.agency_id == agency_id).group_by(AgencyKey.purpose)).all())
            kek = session.scalar(select(func.max(AgencyKey.kek_version)).where(AgencyKey.agency_id == agency_id))
            active = keyring.active_key_id(agency_id, session)
            waiting = {t.name: session.scalar(select(func.count()).select_from(t.rows(keyring, agency_id).subquery()))
                       for t in TARGETS}
        table.add_row(code, str(active), f"{counts.get('data', 0)}/{counts.get('index', 0)}",
                      f"{settings.encryption.provider} v{kek}",
                      ", ".join(f"{k} {v}" for k, v in waiting.items() if v) or "0")
    out.print(table)


def rotate(agency: AgencyOption = None,
           now: Annotated[bool, typer.Option("--now", help="Re-seal the data here and now instead of "
                                                           "leaving it to the servers' background sweep.")] = False,
           ) -> None:
    """New key-encryption key and data key; data keys re-wrapped at once, data re-sealed in the background."""
    from hanchang.assist.sealing_sweep import sweep

    db = open_database(settings_or_exit())
    for agency_id, code in _agencies(db, agency):
        done = db.keyring.rotate(agency_id, lambda session, done, code=code: audit_admin(
            session, "keys.rotate", code, kek_version=done["kek_version"], rewrapped=done["rewrapped"],
            data_key=done["data_key"]))
        out.print(f"{code}: KEK v{done['kek_version']}, {done['rewrapped']} data keys re-wrapped, "
                  f"new data key {done['data_key']}")
        if now:
            out.print(f"  re-sealed 다시 암호화: {sweep(db, db.keyring, agency_id) or 'nothing left'}")
    if not now:
        out.print("Running servers re-seal the data in the background (resumable); 'hanchang keys sweep' does "
                  "it now. 실행 중인 서버가 백그라운드에서 다시 암호화합니다.")


def sweep_now(agency: AgencyOption = None) -> None:
    """Seal or re-seal now what waits (data from before encryption, a rotation, a grade raised)."""
    from hanchang.assist.sealing_sweep import sweep

    db = open_database(settings_or_exit())
    for agency_id, code in _agencies(db, agency):
        out.print(f"{code}: {sweep(db, db.keyring, agency_id) or 'nothing to seal 봉인할 것 없음'}")


def shred(agency: Annotated[str, typer.Option("--agency", help="Agency code.")],
          yes: Annotated[bool, typer.Option("--yes", help="Do not ask; for scripts.")] = False) -> None:
    """Destroy an agency's keys: its encrypted data (and every backup of it) can never be read again."""
    db = open_database(settings_or_exit())
    ((agency_id, code),) = _agencies(db, agency)
    if not yes:
        err.print(f"[red]{code}[/red] 기관의 암호 키를 파기합니다. 이 기관의 민감·기밀 자료는 백업을 포함해 "
                  "영원히 읽을 수 없게 됩니다. (This destroys the agency's keys; its encrypted data, backups "
                  "included, can never be read again.)", highlight=False)
        typed = typer.prompt(f"Type the agency code ({code}) to confirm 확인을 위해 기관 코드를 입력하세요")
        if typed.strip() != code:
            raise fail("not confirmed; nothing was destroyed 확인되지 않아 아무것도 파기하지 않았습니다")
    done = db.keyring.shred(agency_id, record=lambda session: audit_admin(session, "keys.shred", code))
    out.print(f"{code}: {done['keys_destroyed']} keys destroyed 키 파기 완료")


def register(keys_app: typer.Typer) -> None:
    keys_app.command("status")(status)
    keys_app.command("rotate")(rotate)
    keys_app.command("sweep")(sweep_now)
    keys_app.command("shred")(shred)
