"""The request handler base of the test servers that play a CA in a thread of the test process
(stub_ca.py, hostile_ca.py): HTTP/1.1 with keep-alive, quiet, one call to send an answer."""
from http.server import BaseHTTPRequestHandler


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep pytest output clean
        pass

    def _send(self, status, body=b"", ctype="application/json", headers=()):
        """An answer with a Content-Length (so the connection stays usable); ctype None: no
        Content-Type header at all."""
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
