"""A small HTTP proxy between the S3 client and a local test server that injects faults:
refuses a request with 500, resets the connection, answers late, or drops the last part
from a CompleteMultipartUpload (the store then completes a short object and says OK).
Only for servers that do not check signatures (the moto server): the proxy's address is
the Host the client signs."""

from __future__ import annotations

import http.client
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultProxy:
    def __init__(self, upstream: str):
        host, port = upstream.split("://", 1)[1].rstrip("/").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.fault = None      # None, "500", "reset", "slow" (no answer for 3 s) or
                               # "drop-last-part"
        self.match = ""        # the fault hits requests whose "METHOD path?query" matches
        self.requests: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                line = f"{self.command} {self.path}"
                proxy.requests.append(line)
                hit = proxy.fault and re.search(proxy.match, line)
                if hit and proxy.fault == "500":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if hit and proxy.fault in ("reset", "slow"):
                    if proxy.fault == "slow":  # past the client's timeout, then nothing
                        time.sleep(3)
                    self.close_connection = True
                    self.connection.close()
                    return
                if hit and proxy.fault == "drop-last-part" and b"<Part>" in body:
                    body = re.sub(rb"<Part>(?:(?!<Part>).)*</Part>(?=\s*</CompleteMultipart)",
                                  b"", body, flags=re.S)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("content-length", "connection")}
                headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    r = conn.getresponse()
                    data = r.read()
                finally:
                    conn.close()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding",
                                         "server", "date"):
                        self.send_header(k, v)
                # a HEAD answers with the object's length and no body
                self.send_header("Content-Length", r.getheader("Content-Length", "0")
                                 if self.command == "HEAD" else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
