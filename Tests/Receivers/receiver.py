#!/usr/bin/env python3
"""A log receiver on 127.0.0.1 for pgnode's shipping tests.

It answers like the API named by --mode (ndjson, loki, elasticsearch, otlp), decodes gzip
request bodies (Content-Encoding: gzip) as a real receiver does, and appends one JSON line per
request to --log: {"t": epoch seconds, "method", "path", "headers" (lowercased), "gzip": bool,
"body": the decoded body as text, "status": what it answered}. Faults on demand:

  --fail-first N --fail-status S [--retry-after V]  answer S (e.g. 500, 429) to the first N requests
  --hang-first N --hang-seconds S                   hold the first N requests S seconds, then 200
  --reject-status S                                 answer S (e.g. 400) to every request
  --retry-after-date S                              Retry-After as an HTTP date S seconds ahead
  --extra-headers N [--long-header-bytes B]         add N filler header fields (and one of B bytes) to every answer
  --body-bytes N                                    answer a success with a body of N bytes
  --es-reject-id ID                                 (elasticsearch) refuse that _id with a mapping error
  --es-busy-id ID                                   (elasticsearch) answer 429 for that item, once
  --tls-cert C --tls-key K [--tls-client-ca CA]     HTTPS (and require a client certificate)

OTLP mode parses every body strictly into ExportLogsServiceRequest (opentelemetry-proto) and
answers 400 to one that does not parse. Elasticsearch mode keeps the ids it stored and answers 409 for a `create` of an existing id, as
Elasticsearch does. It binds 127.0.0.1 only and writes its port to --port-file when listening.
"""
import argparse
import gzip
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--port-file", required=True)
parser.add_argument("--log", required=True)
parser.add_argument("--mode", default="ndjson", choices=["ndjson", "loki", "elasticsearch", "otlp"])
parser.add_argument("--fail-first", type=int, default=0)
parser.add_argument("--fail-status", type=int, default=500)
parser.add_argument("--retry-after", default=None)
parser.add_argument("--retry-after-date", type=float, default=None,
                    help="send Retry-After as an HTTP date this many seconds ahead")
parser.add_argument("--extra-headers", type=int, default=0, help="add this many filler header fields to every answer")
parser.add_argument("--long-header-bytes", type=int, default=0, help="add one header field this long to every answer")
parser.add_argument("--body-bytes", type=int, default=0, help="answer a success with a body this long")
parser.add_argument("--hang-first", type=int, default=0)
parser.add_argument("--hang-seconds", type=float, default=5)
parser.add_argument("--reject-status", type=int, default=0)
parser.add_argument("--es-reject-id", default=None)
parser.add_argument("--es-busy-id", default=None, help="answer 429 for that _id the first time it comes")
parser.add_argument("--tls-cert", default=None, help="serve HTTPS with this PEM certificate")
parser.add_argument("--tls-key", default=None)
parser.add_argument("--tls-client-ca", default=None, help="require a client certificate signed by this CA")
args = parser.parse_args()

# A process started from a thread that blocks signals (e.g. a libdispatch worker) inherits the mask.
signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())
signal.signal(signal.SIGTERM, signal.SIG_DFL)

lock = threading.Lock()
state = {"requests": 0, "es_ids": set()}


def record(entry):
    with lock:
        with open(args.log, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()


def es_bulk(text):
    lines = [l for l in text.split("\n") if l]
    items = []
    errors = False
    for i in range(0, len(lines) - 1, 2):
        action = json.loads(lines[i])
        json.loads(lines[i + 1])  # the source must be JSON
        op, meta = next(iter(action.items()))
        doc_id = meta.get("_id")
        item = {"_index": meta.get("_index"), "_id": doc_id}
        with lock:
            if doc_id == args.es_busy_id and not state.get("busy_done"):
                state["busy_done"] = True
                item.update(status=429, error={"type": "es_rejected_execution_exception", "reason": "queue full"})
                errors = True
            elif doc_id == args.es_reject_id:
                item.update(status=400, error={"type": "mapper_parsing_exception", "reason": "failed to parse field [evidence]"})
                errors = True
            elif doc_id in state["es_ids"]:
                item.update(status=409, error={"type": "version_conflict_engine_exception",
                                               "reason": "[%s]: version conflict, document already exists" % doc_id})
                errors = True
            else:
                state["es_ids"].add(doc_id)
                item.update(status=201, result="created")
        items.append({op: item})
    return {"took": 1, "errors": errors, "items": items}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body=b"", content_type="application/json", extra=None):
        if args.body_bytes and 200 <= status < 300:
            body = b"x" * args.body_bytes
        self.send_response(status)
        if args.long_header_bytes:
            self.send_header("X-Long", "y" * args.long_header_bytes)
        for i in range(args.extra_headers):
            self.send_header("X-Filler-%d" % i, "filler")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        gz = self.headers.get("Content-Encoding", "") == "gzip"
        body = gzip.decompress(raw) if gz else raw
        with lock:
            state["requests"] += 1
            n = state["requests"]
        peer = None
        if hasattr(self.connection, "getpeercert"):
            cert = self.connection.getpeercert()
            if cert:
                peer = dict(x[0] for x in cert.get("subject", ())).get("commonName")
        entry = {"t": time.time(), "method": "POST", "path": self.path, "client_cn": peer,
                 "headers": {k.lower(): v for k, v in self.headers.items()},
                 "gzip": gz, "body": body.decode("utf-8")}
        if n <= args.hang_first:
            entry["status"] = "hang"
            record(entry)
            time.sleep(args.hang_seconds)
            try:
                self.answer(200, b"{}")
            except Exception:
                pass
            return
        if n <= args.fail_first:
            entry["status"] = args.fail_status
            record(entry)
            extra = {"Retry-After": args.retry_after} if args.retry_after else {}
            if args.retry_after_date is not None:
                import email.utils
                extra = {"Retry-After": email.utils.formatdate(time.time() + args.retry_after_date, usegmt=True)}
            self.answer(args.fail_status, b'{"error":"injected failure"}', extra=extra)
            return
        if args.reject_status:
            entry["status"] = args.reject_status
            record(entry)
            self.answer(args.reject_status, b'{"error":"entry too large for this tenant"}')
            return
        if args.mode == "elasticsearch":
            result = es_bulk(body.decode("utf-8"))
            entry["status"] = 200
            entry["es_result"] = result
            record(entry)
            self.answer(200, json.dumps(result).encode())
        elif args.mode == "loki":
            entry["status"] = 204
            record(entry)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif args.mode == "otlp":
            # Parsed as a collector does, with the official definitions, strictly: an unknown
            # field or a value of the wrong type is a 400, as the collector answers it.
            try:
                json_format.Parse(body.decode("utf-8"), ExportLogsServiceRequest(), ignore_unknown_fields=False)
            except (json_format.ParseError, UnicodeDecodeError) as error:
                entry["status"] = 400
                entry["otlp_error"] = str(error)
                record(entry)
                self.answer(400, json.dumps({"code": 3, "message": str(error)}).encode())
                return
            entry["status"] = 200
            record(entry)
            self.answer(200, b'{"partialSuccess":{}}')
        else:
            entry["status"] = 200
            record(entry)
            self.answer(200, b"ok", content_type="text/plain")


if args.mode == "otlp":
    # opentelemetry-proto from PyPI (scripts/setup installs it).
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
server.daemon_threads = True
if args.tls_cert:
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    if args.tls_client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(args.tls_client_ca)
    server.socket = context.wrap_socket(server.socket, server_side=True)
tmp = args.port_file + ".tmp"
with open(tmp, "w") as f:
    f.write(str(server.server_address[1]))
os.rename(tmp, args.port_file)
server.serve_forever()
