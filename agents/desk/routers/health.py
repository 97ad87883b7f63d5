"""What the desk tells monitoring: its review counters for Prometheus."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from agents.desk import feedback

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics():
    """Review counters per intent for Prometheus (counts only: no text, no names)."""
    return Response(feedback.render(), media_type=feedback.CONTENT_TYPE)
