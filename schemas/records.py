"""Records that leave Sentinel on its topics: one model each, so every producer builds them alike and
every reader can parse them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class OutboundReply(BaseModel):
    """A reply to a customer on ``chat.outbound``, keyed by its conversation (the desk's or an auto-reply)."""

    model_config = ConfigDict(extra="ignore")

    message_id: str
    conversation_id: str
    text: str
    sent_by: str
    auto: bool
    edited: bool

    def key(self) -> bytes:
        return self.conversation_id.encode()

    def value(self) -> bytes:
        return self.model_dump_json().encode()
