"""What the chat socket shares with the other workers and replicas of one deployment, through Redis
(`redis_url`): connections' events (web/outbox_redis.py, web/connections_redis.py, resumed on any
of them through web/follow_redis.py) and runs (web/runs_redis.py). Without `redis_url` there is no
fleet: everything stays in the process, and none of those modules (nor hiredis) is imported."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from clawdbot.config.schema import Config
from clawdbot.state.redis import redact, redis_client, redis_prefix, redis_url

if TYPE_CHECKING:
    from clawdbot.state.redis_client import RedisClient
    from clawdbot.web.connections_redis import MirroredConnections
    from clawdbot.web.outbox_redis import RedisOutbox
    from clawdbot.web.runs_redis import RedisRuns


class Fleet:
    def __init__(self, client: RedisClient, mirror: RedisOutbox, connections: MirroredConnections,
                 runs: RedisRuns) -> None:
        self.client = client
        self.mirror = mirror
        self.connections = connections
        self.runs = runs

    def start(self) -> None:
        self.runs.start()

    async def close(self) -> None:
        """After the runs and connections closed: their last events are written, then the client goes."""
        await self.runs.close()
        await self.mirror.close()
        await self.client.aclose()


def build_fleet(config: Config, env: Mapping[str, str]) -> Fleet | None:
    """None without `redis_url`. Raises ValueError for a Redis URL it cannot use."""
    url = redis_url(config, env)
    if not url:
        return None
    from clawdbot.web.connections_redis import MirroredConnections
    from clawdbot.web.outbox_redis import RedisOutbox
    from clawdbot.web.runs_redis import RedisRuns

    client = redis_client(url, client_name="clawdbot-ws")
    prefix, where, web = redis_prefix(config, env), redact(url), config.web
    mirror = RedisOutbox(client, prefix, web.resume_events, web.resume_seconds, where)
    connections = MirroredConnections(web.resume_seconds, web.resume_events, mirror)
    return Fleet(client, mirror, connections, RedisRuns(client, prefix, mirror, where))
