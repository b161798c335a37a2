"""A meeting-room booking API (회의실 예약) to try the `act` service against, with its OpenAPI."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

ROOMS = {"A101": 8, "B201": 20}


class BookingIn(BaseModel):
    room: str = Field(description="회의실 (A101, B201)")
    date: str = Field(description="날짜 YYYY-MM-DD")
    start: str = Field(description="시작 HH:MM")
    end: str = Field(description="끝 HH:MM")
    title: str = Field(description="회의 이름")


def create_booking_app() -> FastAPI:
    app = FastAPI(title="회의실 예약 (demo)")
    bookings: list[dict] = []

    @app.get("/rooms", operation_id="list_rooms", summary="회의실 목록")
    def list_rooms():
        return [{"room": room, "seats": seats} for room, seats in ROOMS.items()]

    @app.get("/bookings", operation_id="list_bookings", summary="날짜별 예약 목록")
    def list_bookings(date: str):
        return [b for b in bookings if b["date"] == date]

    @app.post("/bookings", operation_id="create_booking", summary="회의실 예약", status_code=201)
    def create_booking(body: BookingIn):
        if body.room not in ROOMS:
            raise HTTPException(404, f"no room {body.room}")
        clash = [b for b in bookings if b["room"] == body.room and b["date"] == body.date
                 and b["start"] < body.end and body.start < b["end"]]
        if clash:
            raise HTTPException(409, "already booked")
        booking = {"id": len(bookings) + 1, **body.model_dump()}
        bookings.append(booking)
        return booking

    return app


if __name__ == "__main__":  # python -m hanchang_devtools.demo_booking [PORT]: serve it, print its OpenAPI URL
    import sys

    import uvicorn

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8010
    print(f"demo booking API on http://127.0.0.1:{port} (OpenAPI: http://127.0.0.1:{port}/openapi.json)")
    uvicorn.run(create_booking_app(), host="127.0.0.1", port=port, log_level="warning")
