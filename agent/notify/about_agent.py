"""Notifications about the agent itself (a refused config, a fresh state database), in the
operator's language, to every target warnings go to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.notify.render import truncate_utf8
from agent.store import OutboxMessage

if TYPE_CHECKING:
    from agent.notify.sender import AppriseSender

AGENT_TITLES = {
    "config": {"zh": "【配置错误】invoice-agent 拒绝了修改后的配置/规则，继续使用之前的",
               "en": "[CONFIG BROKEN] invoice-agent refused the edited config/rules; the "
                     "previous ones keep running"},
    "state": {"zh": "【状态库】invoice-agent 的状态数据库已重建",
              "en": "[STATE] invoice-agent started a fresh state database"},
}


def agent_messages(sender: AppriseSender, language: str, what: str,
                   lines: list[str]) -> list[OutboxMessage]:
    """One notification about the agent itself, to every target warnings go to."""
    body = "\n".join(lines[:20])
    if len(lines) > 20:
        body += f"\n... +{len(lines) - 20}"
    body = truncate_utf8(body, 1800)
    return [OutboxMessage(f"agent:{what}", "warning", AGENT_TITLES[what][language], body, key)
            for key in sender.target_keys("warning")]
