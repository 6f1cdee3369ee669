"""An OTLP receiver nobody on this project wrote the decoding of: the official OpenTelemetry
protobuf definitions (Debian's python3-opentelemetry-proto, fetched by scripts/fetch-otlp-proto.sh)
with Debian's python3-protobuf and python3-grpcio. Decodes strictly:

  - http/protobuf: Export*ServiceRequest.FromString, and no field unknown to the definitions;
  - http/json: json_format.Parse(ignore_unknown_fields=False) (the OTLP JSON mapping);
  - grpc: a grpcio server with the generated MetricsService / LogsService servicers.

Each request decoded (or refused) is one JSON line on stdout:
  {"protocol": ..., "signal": "metrics"|"logs", "request": <MessageToDict>} or {"error": ...}.
The first line is {"ready": true, "http_port": N, "grpc_port": M}. Ports are on 127.0.0.1.
A request whose decoding fails is answered 400 (http) / INVALID_ARGUMENT (grpc).

Run with /usr/bin/python3 and PYTHONPATH=<.cache/otlp-proto>/usr/lib/python3/dist-packages.
"""

import gzip
import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

REQUESTS = {
    "/v1/metrics": ("metrics", metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse),
    "/v1/logs": ("logs", logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
}

out_lock = threading.Lock()


def emit(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def unknown_fields(message, path="request"):
    """Paths of fields the definitions do not know, anywhere in the message."""
    found = []
    if len(message.UnknownFields()) > 0:
        found.append(path)
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.label == field.LABEL_REPEATED:
            if field.message_type.GetOptions().map_entry:
                continue
            for i, item in enumerate(value):
                found.extend(unknown_fields(item, f"{path}.{field.name}[{i}]"))
        else:
            found.extend(unknown_fields(value, f"{path}.{field.name}"))
    return found


def record(protocol, signal, request):
    emit({"protocol": protocol, "signal": signal, "request": json_format.MessageToDict(request, preserving_proto_field_name=True)})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        return body

    def answer(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.read_body()
        entry = REQUESTS.get(self.path)
        if entry is None:
            emit({"error": f"unknown path {self.path}"})
            self.answer(404, b"", "text/plain")
            return
        signal, request_type, response_type = entry
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            if content_type == "application/json":
                protocol = "http/json"
                request = json_format.Parse(body.decode("utf-8"), request_type(), ignore_unknown_fields=False)
            elif content_type == "application/x-protobuf":
                protocol = "http/protobuf"
                request = request_type.FromString(body)
                unknown = unknown_fields(request)
                if unknown:
                    raise ValueError(f"fields unknown to the definitions at {', '.join(unknown)}")
            else:
                raise ValueError(f"unexpected Content-Type {content_type!r}")
        except Exception as exc:  # any decoding failure is the finding
            emit({"error": f"{type(exc).__name__}: {exc}", "path": self.path, "content_type": content_type})
            self.answer(400, str(exc).encode(), "text/plain")
            return
        record(protocol, signal, request)
        if protocol == "http/json":
            self.answer(200, json_format.MessageToJson(response_type()).encode(), "application/json")
        else:
            self.answer(200, response_type().SerializeToString(), "application/x-protobuf")


def strict(signal, request, context, response):
    unknown = unknown_fields(request)
    if unknown:
        emit({"error": f"fields unknown to the definitions at {', '.join(unknown)}", "protocol": "grpc", "signal": signal})
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown fields")
    record("grpc", signal, request)
    return response


class MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request, context):
        return strict("metrics", request, context, metrics_service_pb2.ExportMetricsServiceResponse())


class LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def Export(self, request, context):
        return strict("logs", request, context, logs_service_pb2.ExportLogsServiceResponse())


def main():
    http_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsService(), grpc_server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(LogsService(), grpc_server)
    grpc_port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    emit({"ready": True, "http_port": http_server.server_address[1], "grpc_port": grpc_port})
    # Ends when the test closes stdin.
    sys.stdin.read()
    grpc_server.stop(0)
    http_server.shutdown()


if __name__ == "__main__":
    main()
