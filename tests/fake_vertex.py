"""A local HTTP endpoint that speaks the subset of the Vertex AI REST API the SDK calls for model registration
(upload, operations, get by version or alias, mergeVersionAliases), as captured in
shared/reference/offline-testing.md. A wire-level test double: the real google-cloud-aiplatform SDK talks to it."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class FakeVertex:
    """`pending_polls`: how many times an upload's long-running operation answers `done: false` before it
    completes (the SDK polls it). `fail_uploads`: how many coming uploads fail with HTTP 503 (a remote error).
    `fail_operations`: how many coming operations complete with an error instead of a model."""

    def __init__(self, pending_polls: int = 0) -> None:
        self.models: dict[str, dict] = {}  # id -> {"versions": {vid: resource}}
        self.calls: list[tuple[str, str, dict]] = []
        self.operations: dict[str, dict] = {}
        self.pending_polls = pending_polls
        self.fail_uploads = 0
        self.fail_operations = 0
        self._next = 1000
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802
                path = unquote(urlsplit(self.path).path)
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                fake.calls.append(("POST", path, body))
                m = re.fullmatch(r"/v1/projects/([^/]+)/locations/([^/]+)/models:upload", path)
                if m:
                    if fake.fail_uploads > 0:
                        fake.fail_uploads -= 1
                        return self._reply(503, {"error": {"code": 503, "message": "the service is unavailable",
                                                           "status": "UNAVAILABLE"}})
                    return self._reply(200, fake.upload(m.group(1), m.group(2), body))
                m = re.fullmatch(r"/v1/(projects/[^/]+/locations/[^/]+/models/[^@/]+)@([^:]+):mergeVersionAliases",
                                 path)
                if m:
                    return self._reply(200, fake.merge_aliases(m.group(1), m.group(2), body["versionAliases"]))
                self._reply(404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})

            def do_GET(self):  # noqa: N802
                path = unquote(urlsplit(self.path).path)
                fake.calls.append(("GET", path, {}))
                m = re.fullmatch(r"/(?:v1|ui)/(projects/[^/]+/locations/[^/]+/operations/\d+)", path)
                if m:
                    return self._reply(200, fake.poll(m.group(1)))
                m = re.fullmatch(r"/v1/(projects/[^/]+/locations/[^/]+/models/[^@/]+)@(.+)", path)
                if m:
                    resource = fake.get(m.group(1), m.group(2))
                    if resource is None:
                        return self._reply(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})
                    return self._reply(200, resource)
                self._reply(404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def upload(self, project, location, body):
        spec = body["model"]
        parent = body.get("parentModel")
        if parent:
            model_name = parent
            mid = parent.rsplit("/", 1)[1]
        else:
            self._next += 1
            mid = str(self._next)
            model_name = f"projects/{project}/locations/{location}/models/{mid}"
            self.models[mid] = {"versions": {}}
        versions = self.models[mid]["versions"]
        vid = str(len(versions) + 1)
        aliases = list(spec.get("versionAliases", []))
        if not versions:
            aliases.append("default")  # the first version of a model is always the default
        versions[vid] = {"name": model_name, "versionId": vid, "displayName": spec.get("displayName"),
                         "artifactUri": spec.get("artifactUri"), "labels": spec.get("labels", {}),
                         "versionAliases": aliases, "versionDescription": spec.get("versionDescription", ""),
                         "containerSpec": spec.get("containerSpec", {})}
        self._next += 1
        name = f"projects/{project}/locations/{location}/operations/{self._next}"
        if self.fail_operations > 0:  # the operation will end in an error; nothing was created
            self.fail_operations -= 1
            del versions[vid]
            final = {"name": name, "done": True, "error": {"code": 13, "message": "internal error while importing"}}
        else:
            final = {"name": name, "done": True,
                     "response": {"@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse",
                                  "model": model_name, "modelVersionId": vid}}
        self.operations[name] = {"polls_left": self.pending_polls, "final": final}
        return self.poll(name, count=False)

    def poll(self, name, count=True):
        op = self.operations.get(name)
        if op is None:
            return {"name": name, "done": True}
        if op["polls_left"] > 0:
            if count:
                op["polls_left"] -= 1
            meta = "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelOperationMetadata"
            return {"name": name, "done": False, "metadata": {"@type": meta}}
        return op["final"]

    def _version(self, model_name, ref):
        versions = self.models.get(model_name.rsplit("/", 1)[1], {}).get("versions", {})
        if ref in versions:
            return versions[ref]
        return next((v for v in versions.values() if ref in v["versionAliases"]), None)

    def get(self, model_name, ref):
        return self._version(model_name, ref)

    def merge_aliases(self, model_name, ref, aliases):
        target = self._version(model_name, ref)
        for alias in aliases:
            if alias.startswith("-"):
                if alias[1:] in target["versionAliases"]:
                    target["versionAliases"].remove(alias[1:])
                continue
            for v in self.models[model_name.rsplit("/", 1)[1]]["versions"].values():  # an alias moves
                if alias in v["versionAliases"]:
                    v["versionAliases"].remove(alias)
            target["versionAliases"].append(alias)
        return target

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
