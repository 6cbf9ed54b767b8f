"""A webhook receiver on a free loopback port, like a Slack incoming webhook: it records every JSON
body POSTed to it and answers `code` after `delay` seconds."""

from __future__ import annotations

import json
import time

from tests.loopback import LoopbackServer, QuietHandler


class Webhook(LoopbackServer):
    def __init__(self, code: int = 200, delay: float = 0.0, path: str = "/services/T000/B000/loopback-token"):
        self.posts: list[dict] = []
        self.headers: list[dict] = []
        hook = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = self.body()
                hook.headers.append(dict(self.headers))
                hook.posts.append(json.loads(body))
                time.sleep(delay)
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

        super().__init__(Handler)
        self.url += path
        self.thread.start()
