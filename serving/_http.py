"""A small HTTP/1.1 server: one event loop reads requests, a bounded pool answers them.

Slow or idle clients cost a socket, never a thread: the loop (`selectors`)
buffers each request until it is complete, and only then hands it to one of
`max_workers` threads. Framing follows RFC 9112 strictly, so that a proxy in
front and this server never disagree on where a request ends:

- `Content-Length` is `1*DIGIT` (repeated values must be equal); with
  `Transfer-Encoding` it is refused;
- `Transfer-Encoding` must be exactly `chunked`; a chunk size is `1*HEXDIG`
  (no sign, no `0x`, at most 16 digits) and each chunk ends in CRLF;
- obsolete line folding and whitespace before a header's colon are refused;
- the body limit counts chunked bodies as they arrive.

The headers of a request must arrive within `header_timeout` seconds, and a
body may not pause longer than that; TF Serving's libevent server sets no
such deadline (its event loop holds slow clients without threads).
"""

import collections
import logging
import re
import selectors
import socket
import threading
import time
from concurrent import futures
from http import HTTPStatus

logger = logging.getLogger("serving")

MAX_HEADER_BYTES = 64 * 1024
MAX_CHUNK_LINE_BYTES = 1024
# libevent's allowed methods in TF Serving's evhttp server; others get 501.
ALLOWED_METHODS = frozenset({"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"})
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_DIGITS = re.compile(rb"[0-9]+")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")
_HTML = "<HTML><HEAD>\n<TITLE>{code} {reason}</TITLE>\n</HEAD><BODY>\n<H1>{reason}</H1>\n</BODY></HTML>\n"


class HttpError(Exception):
    """A request the server answers without calling the handler.

    Args:
        status: int. HTTP status.
        message: str. JSON error text (or the HTML page's title when `html`).
        html: bool. Answer with libevent's HTML error page instead of JSON.
    """

    def __init__(self, status, message="", html=False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.html = html


class Request:
    """One complete HTTP request.

    Args:
        method: str. The method token.
        target: str. The request target exactly as sent (path and query).
        version: str. `HTTP/1.1` or `HTTP/1.0`.
        headers: dict of str to str. Lower-case names; repeated ones joined by `, `.
        body: bytes. The decoded body.
    """

    def __init__(self, method, target, version, headers, body):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body

    @property
    def keep_alive(self):
        """Whether the connection stays open after the answer."""
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


class Response:
    """An answer: status, content type and body.

    Args:
        status: int. HTTP status.
        body: bytes. The payload.
        content_type: str or None. None sends no Content-Type.
        close: bool. Close the connection after sending.
    """

    def __init__(self, status, body=b"", content_type="application/json", close=False):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.close = close


def html_error(status):
    """Returns libevent's HTML error page for `status` as a Response.

    Args:
        status: int. HTTP status.
    """
    reason = HTTPStatus(status).phrase
    return Response(status, _HTML.format(code=status, reason=reason).encode(), "text/html")


def json_error(status, message, close=False):
    """Returns `{ "error": "<message>" }` (TF Serving's layout) as a Response.

    Args:
        status: int. HTTP status.
        message: str. The error text.
        close: bool. Close the connection after sending.
    """
    import json

    return Response(status, ('{ "error": ' + json.dumps(message) + " }").encode(), close=close)


class _Connection:
    def __init__(self, sock, now):
        self.sock = sock
        self.buffer = bytearray()
        self.reset(now)

    def reset(self, now):
        self.phase = "head"  # head | body | chunk-size | chunk-data | trailer | busy | drain
        self.started = now
        self.last_read = now
        self.head = None
        self.remaining = 0
        self.parts = []
        self.size = 0


class HttpServer:
    """Serves `handler(Request) -> Response` on a listening socket.

    Args:
        address: tuple. `(host, port)`; the port must be free.
        handler: callable. Runs on a pool thread for each complete request.
        max_body_bytes: int. Larger bodies (chunked ones too) get 413.
        header_timeout: float. Seconds a client has to send its headers, and the
            longest pause inside a body.
        max_workers: int. Threads that run handlers (requests in progress at once).
        max_connections: int. Open connections; more are closed at accept.
        idle_timeout: float. Seconds a kept-alive connection may wait for its next request.
    """

    def __init__(self, address, handler, max_body_bytes, header_timeout=10.0, max_workers=16,
                 max_connections=512, idle_timeout=300.0):
        self._listener = socket.create_server(address, backlog=128)
        self._listener.setblocking(False)
        self.server_address = self._listener.getsockname()
        self._handler = handler
        self.max_body_bytes = max_body_bytes
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._pool = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rest")
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._returned = collections.deque()  # connections handed back by workers
        self._connections = set()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._in_flight = 0
        self._accepting = True
        self._lock = threading.Lock()

    # -- loop ---------------------------------------------------------------

    def serve_forever(self):
        """Runs the event loop until `shutdown()`."""
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        try:
            while not self._stopping.is_set():
                for key, _ in self._selector.select(timeout=0.25):
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._read(key.data)
                self._take_returned()
                self._expire(time.monotonic())
                if not self._accepting and self._listener.fileno() >= 0:
                    self._selector.unregister(self._listener)
                    self._listener.close()
        finally:
            self._close_all()
            self._stopped.set()

    def shutdown(self, grace=30.0):
        """Stops accepting, lets requests in progress finish and be answered, then closes.

        Args:
            grace: float. Longest wait for requests in progress.
        """
        self._accepting = False
        self._wake()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._lock:
                if self._in_flight == 0:
                    break
            time.sleep(0.02)
        self._stopping.set()
        self._wake()
        self._stopped.wait(5)
        self._pool.shutdown(wait=False)

    def _wake(self):
        try:
            self._wake_write.send(b"x")
        except OSError:
            pass

    def _drain_wake(self):
        try:
            while self._wake_read.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _accept(self):
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(self._connections) >= self.max_connections:
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(sock, time.monotonic())
            self._connections.add(connection)
            self._selector.register(sock, selectors.EVENT_READ, connection)

    def _close(self, connection):
        if connection in self._connections:
            self._connections.discard(connection)
            try:
                self._selector.unregister(connection.sock)
            except (KeyError, ValueError):
                pass
        try:
            connection.sock.close()
        except OSError:
            pass

    def _close_all(self):
        self._take_returned()
        for connection in list(self._connections):
            if connection.phase != "busy":
                self._close(connection)
        if self._listener.fileno() >= 0:
            self._listener.close()
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()

    def _expire(self, now):
        for connection in list(self._connections):
            phase = connection.phase
            if phase == "busy":
                continue
            if phase == "head":
                limit = self.idle_timeout if not connection.buffer else self.header_timeout
                if now - connection.started > limit:
                    self._close(connection)
            elif phase == "drain":
                if now - connection.started > 5.0:
                    self._close(connection)
            elif now - connection.last_read > self.header_timeout:
                self._close(connection)

    def _read(self, connection):
        try:
            data = connection.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(connection)
            return
        now = time.monotonic()
        if connection.phase == "drain":
            return
        if connection.phase == "head" and not connection.buffer:
            connection.started = now  # the header deadline runs from the first byte
        connection.last_read = now
        connection.buffer += data
        self._advance(connection)

    def _advance(self, connection):
        """Parses what the buffer holds; dispatches a complete request or an error."""
        try:
            request = self._parse(connection)
        except HttpError as error:
            response = html_error(error.status) if error.html else json_error(error.status, error.message)
            response.close = True
            self._dispatch(connection, None, response)
            return
        if request is not None:
            self._dispatch(connection, request, None)

    def _dispatch(self, connection, request, response):
        connection.phase = "busy"
        try:
            self._selector.unregister(connection.sock)
        except (KeyError, ValueError):
            pass
        with self._lock:
            self._in_flight += 1
        self._pool.submit(self._serve, connection, request, response)

    def _take_returned(self):
        while self._returned:
            connection, action = self._returned.popleft()
            drain = action == "drain"
            now = time.monotonic()
            if self._stopping.is_set() or action == "close":
                self._close(connection)
                continue
            connection.reset(now)
            if drain:
                connection.phase = "drain"
            self._selector.register(connection.sock, selectors.EVENT_READ, connection)
            if connection.buffer and not drain:
                connection.started = now
                self._advance(connection)  # a pipelined request

    # -- parsing ------------------------------------------------------------

    def _parse(self, connection):
        buffer = connection.buffer
        if connection.phase == "head":
            while buffer.startswith(b"\r\n"):  # RFC 9112 2.2: ignore leading empty lines
                del buffer[:2]
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    raise HttpError(431, "Request header fields too large")
                return None
            if end > MAX_HEADER_BYTES:
                raise HttpError(431, "Request header fields too large")
            head = bytes(buffer[:end])
            del buffer[:end + 4]
            connection.head = self._parse_head(head)
            method, target, version, headers = connection.head
            length = self._body_length(version, headers)
            if length == "chunked":
                connection.phase = "chunk-size"
            else:
                if length > self.max_body_bytes:
                    raise_413(length, self.max_body_bytes)
                connection.remaining = length
                connection.phase = "body"
            if (headers.get("expect", "").lower() == "100-continue" and version == "HTTP/1.1"
                    and length and len(buffer) == 0):
                try:  # curl waits for this before sending a body over 1 KiB
                    connection.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                except OSError:
                    pass
        if connection.phase == "body":
            if len(buffer) < connection.remaining:
                return None
            body = bytes(buffer[:connection.remaining])
            del buffer[:connection.remaining]
            return Request(*connection.head[:3], connection.head[3], body)
        while True:
            if connection.phase == "chunk-size":
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > MAX_CHUNK_LINE_BYTES:
                        raise HttpError(400, "Malformed chunked body: chunk size line too long")
                    return None
                match = _CHUNK_SIZE.fullmatch(bytes(buffer[:end]))
                if match is None:
                    raise HttpError(400, f"Malformed chunked body: invalid chunk size "
                                         f"{bytes(buffer[:min(end, 40)]).decode('latin-1')!r}")
                del buffer[:end + 2]
                size = int(match.group(1), 16)
                if size == 0:
                    connection.phase = "trailer"
                    continue
                connection.size += size
                if connection.size > self.max_body_bytes:
                    raise_413(None, self.max_body_bytes)
                connection.remaining = size
                connection.phase = "chunk-data"
            elif connection.phase == "chunk-data":
                if len(buffer) < connection.remaining + 2:
                    return None
                if buffer[connection.remaining:connection.remaining + 2] != b"\r\n":
                    raise HttpError(400, "Malformed chunked body: chunk data not followed by CRLF")
                connection.parts.append(bytes(buffer[:connection.remaining]))
                del buffer[:connection.remaining + 2]
                connection.phase = "chunk-size"
            elif connection.phase == "trailer":
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEADER_BYTES:
                        raise HttpError(431, "Request trailer fields too large")
                    return None
                line = bytes(buffer[:end])
                del buffer[:end + 2]
                if not line:
                    return Request(*connection.head[:3], connection.head[3], b"".join(connection.parts))
                self._parse_field(line)
            else:
                return None

    @staticmethod
    def _parse_field(line):
        if line[:1] in (b" ", b"\t"):
            raise HttpError(400, "Malformed header: obsolete line folding")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HttpError(400, f"Malformed header line {line[:60].decode('latin-1')!r}")
        return name.decode("ascii").lower(), value.strip(b" \t").decode("latin-1")

    def _parse_head(self, head):
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
            raise HttpError(400, "Bad Request", html=True)
        method, target, version = parts
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise HttpError(505 if version.startswith(b"HTTP/") else 400, "Bad Request", html=True)
        if not _TARGET.fullmatch(target):
            raise HttpError(400, "Bad Request", html=True)  # evhttp_uri_parse rejects it
        method = method.decode("ascii")
        if method not in ALLOWED_METHODS:
            raise HttpError(501, "Not Implemented", html=True)
        headers = {}
        for line in lines[1:]:
            name, value = self._parse_field(line)
            if name in headers:
                headers[name] = headers[name] + ", " + value
            else:
                headers[name] = value
        return method, target.decode("ascii"), version.decode("ascii"), headers

    @staticmethod
    def _body_length(version, headers):
        encoding = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if encoding is not None:
            if length is not None:
                raise HttpError(400, "Both Transfer-Encoding and Content-Length are set")
            if version == "HTTP/1.0":
                raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
            if encoding.strip().lower() != "chunked":
                raise HttpError(501, f"Unsupported Transfer-Encoding: {encoding}")
            return "chunked"
        if length is None:
            return 0
        values = {value.strip().encode("latin-1") for value in length.split(",")}
        if len(values) != 1 or not _DIGITS.fullmatch(next(iter(values))):
            raise HttpError(400, f"Invalid Content-Length: {length}")
        return int(next(iter(values)))

    # -- answering ----------------------------------------------------------

    def _serve(self, connection, request, response):
        drain = False
        try:
            if response is None:
                try:
                    response = self._handler(request)
                except Exception as error:  # never let a request take the server down
                    logger.exception("internal error")
                    response = json_error(500, f"Internal error: {error}")
                if not request.keep_alive:
                    response.close = True
            if self._stopping.is_set():
                response.close = True
            drain = response.close and response.status == 413
            self._send(connection.sock, response, head_only=request is not None and request.method == "HEAD")
        except OSError:
            response = None
        finally:
            with self._lock:
                self._in_flight -= 1
        if response is None or (response.close and not drain):
            action = "close"
        elif drain:
            action = "drain"
            try:
                connection.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        else:
            action = "keep"
            connection.sock.setblocking(False)
        self._returned.append((connection, action))
        self._wake()

    @staticmethod
    def _send(sock, response, head_only=False):
        reason = HTTPStatus(response.status).phrase
        lines = [f"HTTP/1.1 {response.status} {reason}", "Server: keras-bert-serving"]
        if response.content_type:
            lines.append(f"Content-Type: {response.content_type}")
        lines.append(f"Content-Length: {len(response.body)}")
        if response.close:
            lines.append("Connection: close")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not head_only:
            payload += response.body
        sock.settimeout(60.0)
        sock.sendall(payload)


def raise_413(length, limit):
    """Raises the 413 answer for a body over `limit` bytes.

    Args:
        length: int or None. The announced length (None for chunked bodies).
        limit: int. `--max_body_bytes`.
    """
    size = f"of {length} bytes " if length is not None else ""
    raise HttpError(413, f"Request body {size}exceeds the limit of {limit} bytes (--max_body_bytes)")
