"""An S3 endpoint that keeps each object's size and discards its bytes, for measuring a
client's memory on uploads larger than a test server can hold (moto keeps every byte).

    python benchmarks/s3_sink.py PORT

It answers what an upload needs: PUT (objects and parts), POST (start and complete a
multipart upload, delete objects), HEAD (the size) and DELETE; nothing can be read back.
"""

from __future__ import annotations

import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

XML = '<?xml version="1.0" encoding="UTF-8"?>'


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sizes: dict[str, int] = {}
    uploads: dict[str, dict[int, int]] = {}
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def _query(self):
        u = urlparse(self.path)
        return u.path, parse_qs(u.query, keep_blank_values=True)

    def _discard(self) -> int:
        n = left = int(self.headers.get("Content-Length", 0))
        while left:
            left -= len(self.rfile.read(min(left, 1 << 20)))
        return n

    def _reply(self, code=200, body="", headers=()):
        data = body.encode()
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        path, q = self._query()
        n = self._discard()
        with self.lock:
            if "uploadId" in q:
                self.uploads[q["uploadId"][0]][int(q["partNumber"][0])] = n
            else:
                self.sizes[path] = n
        self._reply(headers=[("ETag", '"0"')])

    def do_POST(self):
        path, q = self._query()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        with self.lock:
            if "uploads" in q:
                upload = uuid.uuid4().hex
                self.uploads[upload] = {}
                out = (f"{XML}<InitiateMultipartUploadResult><UploadId>{upload}</UploadId>"
                       f"</InitiateMultipartUploadResult>")
            elif "uploadId" in q:
                self.sizes[path] = sum(self.uploads.pop(q["uploadId"][0]).values())
                out = f'{XML}<CompleteMultipartUploadResult><ETag>"0"</ETag>' \
                      f'</CompleteMultipartUploadResult>'
            else:  # delete objects
                keys = re.findall(r"<Key>(.*?)</Key>", body)
                for k in keys:
                    self.sizes.pop(f"{path.rstrip('/')}/{k}", None)
                out = XML + "<DeleteResult>" + "".join(
                    f"<Deleted><Key>{k}</Key></Deleted>" for k in keys) + "</DeleteResult>"
        self._reply(body=out, headers=[("Content-Type", "application/xml")])

    def do_HEAD(self):
        path, _ = self._query()
        if path not in self.sizes:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(self.sizes[path]))
        self.send_header("Last-Modified", "Thu, 01 Jan 2026 00:00:00 GMT")
        self.send_header("ETag", '"0"')
        self.end_headers()

    def do_DELETE(self):
        path, q = self._query()
        with self.lock:
            self.uploads.pop(q.get("uploadId", [""])[0], None)
            self.sizes.pop(path, None)
        self._reply(204)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)
    server.daemon_threads = True
    server.serve_forever()
