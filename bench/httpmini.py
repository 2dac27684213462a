"""Minimal HTTP/1.1 response framing for the benchmark clients (stdlib only).

The clients in this folder speak raw sockets so their own overhead stays small and predictable
(http.client adds tens of microseconds per request and hides reconnects). Only what the benchmark
needs is handled: Content-Length bodies, chunked bodies, and responses without a body.
"""

import socket

RAISE_NOFILE_TO = 65536


def raise_nofile(wanted=RAISE_NOFILE_TO):
    """Raise RLIMIT_NOFILE as far as allowed; returns the soft limit in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(soft, wanted)
    for new_hard in (max(hard, target), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, new_hard), new_hard))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def add_server_args(ap, host_header=None, path=None):
    """The argparse options naming the server a client talks to: --addr, --port, --host-header
    (required unless given a default) and, when given a default, --path."""
    ap.add_argument("--addr", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    if host_header is None:
        ap.add_argument("--host-header", required=True)
    else:
        ap.add_argument("--host-header", default=host_header)
    if path is not None:
        ap.add_argument("--path", default=path)


def build_request(path, host, headers=(), keep_alive=True):
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    lines += list(headers)
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ResponseParser:
    """Incremental parser: feed() bytes until done is True; then status/close/extra are set."""

    def __init__(self, head_request=False):
        self.buf = bytearray()
        self.head_request = head_request
        self.reset()

    def reset(self):
        self.status = None
        self.headers = {}
        self.body_len = None  # for Content-Length framing
        self.chunked = False
        self.head_end = None
        self.done = False
        self.close = False
        self.body_bytes = 0

    def feed(self, data):
        self.buf += data
        if self.head_end is None:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                if len(self.buf) > 65536:
                    raise ValueError("response head larger than 64 KiB")
                return self.done
            self.head_end = i + 4
            head = bytes(self.buf[:i]).decode("latin-1").split("\r\n")
            parts = head[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                raise ValueError(f"bad status line {head[0]!r}")
            self.status = int(parts[1])
            for line in head[1:]:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
            conn = self.headers.get("connection", "").lower()
            self.close = "close" in conn or parts[0] == "HTTP/1.0" and "keep-alive" not in conn
            if self.head_request or self.status in (204, 304) or 100 <= self.status < 200:
                self.body_len = 0
            elif "chunked" in self.headers.get("transfer-encoding", "").lower():
                self.chunked = True
            elif "content-length" in self.headers:
                self.body_len = int(self.headers["content-length"])
            else:
                # Body until close: only finishes on EOF (see eof()).
                self.close = True
        if self.head_end is not None:
            if self.chunked:
                end = self._chunked_end()
                if end is not None:
                    self.body_bytes = end - self.head_end
                    self.done = True
            elif self.body_len is not None and len(self.buf) - self.head_end >= self.body_len:
                self.body_bytes = self.body_len
                self.done = True
        return self.done

    def _chunked_end(self):
        """Offset just past the last chunk and trailers, or None while incomplete."""
        pos = self.head_end
        while True:
            eol = self.buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(self.buf[pos:eol]).split(b";")[0].strip() or b"0", 16)
            pos = eol + 2
            if size == 0:
                # Trailers (normally none) end with an empty line.
                while True:
                    eol = self.buf.find(b"\r\n", pos)
                    if eol < 0:
                        return None
                    if eol == pos:
                        return eol + 2
                    pos = eol + 2
            if len(self.buf) < pos + size + 2:
                return None
            pos += size + 2

    def eof(self):
        """Connection closed by the peer; a body-until-close response completes here."""
        if self.head_end is not None and self.body_len is None and not self.chunked:
            self.body_bytes = len(self.buf) - self.head_end
            self.done = True
        return self.done

    def next_message(self):
        """Drop the finished response and keep any pipelined bytes (none expected)."""
        end = self.head_end + self.body_bytes
        rest = bytes(self.buf[end:])
        self.buf = bytearray(rest)
        self.reset()


def read_response(sock, parser, bufsize=65536):
    """recv() from a blocking socket into parser until the response is complete. Raises
    ConnectionError if the peer closes mid-response (ValueError from the parser, OSError from recv)."""
    while True:
        data = sock.recv(bufsize)
        if not data:
            if parser.eof():
                return
            raise ConnectionError("connection closed mid-response")
        if parser.feed(data):
            return


def tls_context():
    """A client TLS context for the benchmarks: any certificate is accepted (they use a
    throwaway self-signed one), TLS 1.2 or 1.3 as the server picks."""
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(host, port, timeout, tls=None, sni=None, source=None):
    """A blocking TCP connection with TCP_NODELAY; over TLS when tls (an ssl.SSLContext) is
    given, the handshake done here, SNI sni (none for None). source: the local address to
    bind (e.g. 127.0.0.2), so a client can look like several."""
    s = socket.create_connection((host, port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is not None:
        s = tls.wrap_socket(s, server_hostname=sni)
    return s


def vmrss_kib(pid):
    """VmRSS of one process in KiB, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
