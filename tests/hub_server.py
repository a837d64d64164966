"""A small loopback server speaking the parts of the Hugging Face Hub HTTP
API that huggingface_hub uses to create repos, commit files and download
them. Tests point ``HF_ENDPOINT`` at it, so the real huggingface_hub client
code path is exercised end to end without the network.

Only 127.0.0.1 is bound; requests are bounded by the tests themselves.

``HubState.mode`` makes the server misbehave the way a broken mirror or a
bad network does, so the client's error handling is tested against real
HTTP rather than a mocked library:

- ``"ok"``: a well-behaved Hub;
- ``"malformed_json"``: the JSON API (``/api/...``) answers 200 with a
  truncated body;
- ``"redirect_loop"``: every request redirects to itself;
- ``"drop"``: every connection is closed without an answer;
- ``"stall"``: every request is read and never answered (until the server
  stops or ``stall_s`` passes).

Tests can fill a repo directly with ``state.commit(repo_id, files)`` and
switch the mode between requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from typing_extensions import Self


class HubState:
    """In-memory repositories: repo_id -> list of commits (sha, files)."""

    def __init__(self) -> None:
        self.repos: dict[str, list[tuple[str, dict[str, bytes]]]] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.mode = "ok"
        self.stall_s = 60.0
        self.released = threading.Event()  # wakes stalled handlers at shutdown

    def head(self, repo_id: str, rev: str | None) -> tuple[str, dict[str, bytes]] | None:
        commits = self.repos.get(repo_id)
        if not commits:
            return None
        if rev in (None, "main"):
            return commits[-1]
        for sha, files in commits:
            if sha == rev:
                return sha, files
        return None

    def commit(self, repo_id: str, new_files: dict[str, bytes]) -> str:
        with self.lock:
            commits = self.repos.setdefault(repo_id, [])
            files = dict(commits[-1][1]) if commits else {}
            files.update(new_files)
            digest = hashlib.sha1(
                json.dumps(
                    sorted((k, hashlib.sha1(v).hexdigest()) for k, v in files.items())
                ).encode()
            )
            digest.update(str(len(commits)).encode())
            sha = digest.hexdigest()
            commits.append((sha, files))
            return sha


def _make_handler(state: HubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output clean
            return

        def _send(
            self,
            code: int,
            body: bytes = b"",
            headers: dict[str, str] | None = None,
            head: bool = False,
        ) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, code: int, obj: object) -> None:
            self._send(code, json.dumps(obj).encode(), {"Content-Type": "application/json"})

        def _not_found(self, what: str, head: bool = False) -> None:
            self._send(
                404,
                json.dumps({"error": what}).encode(),
                {"Content-Type": "application/json", "X-Error-Code": "RepoNotFound"},
                head=head,
            )

        def _base(self) -> str:
            return f"http://{self.headers.get('Host')}"

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        # misbehaviour ----------------------------------------------------
        def _misbehave(self, head: bool) -> bool:
            """Answer as ``state.mode`` says; True when the request is done."""
            mode = state.mode
            if mode == "redirect_loop":
                self._send(302, b"", {"Location": self.path}, head=head)
                return True
            if mode == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return True
            if mode == "stall":
                state.released.wait(state.stall_s)
                self.close_connection = True
                return True
            if mode == "malformed_json" and urlparse(self.path).path.startswith("/api/"):
                self._send(200, b'{"id": "org/x", "sha": "01', {"Content-Type": "application/json"})
                return True
            return False

        # downloads -------------------------------------------------------
        def _resolve(self, head: bool) -> None:
            parts = unquote(urlparse(self.path).path).strip("/").split("/")
            # org/repo/resolve/rev/filename...
            if len(parts) < 5 or parts[2] != "resolve":
                return self._not_found("bad path", head)
            repo_id, rev, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            found = state.head(repo_id, rev)
            if found is None:
                return self._not_found("repo", head)
            sha, files = found
            if filename not in files:
                return self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, head=head)
            data = files[filename]
            etag = '"' + hashlib.sha1(data).hexdigest() + '"'
            self._send(
                200,
                data,
                {"X-Repo-Commit": sha, "ETag": etag, "Content-Type": "application/octet-stream"},
                head=head,
            )

        def do_HEAD(self) -> None:
            state.requests.append(f"HEAD {self.path}")
            if not self._misbehave(head=True):
                self._resolve(head=True)

        def do_GET(self) -> None:
            state.requests.append(f"GET {self.path}")
            if self._misbehave(head=False):
                return None
            path = unquote(urlparse(self.path).path).strip("/")
            parts = path.split("/")
            if (
                parts[:2] == ["api", "models"]
                and len(parts) >= 6
                and parts[4] in ("revision", "tree")
            ):
                repo_id, kind, rev = "/".join(parts[2:4]), parts[4], parts[5]
                found = state.head(repo_id, rev)
                if found is None:
                    return self._not_found("repo")
                sha, files = found
                if kind == "revision":
                    return self._json(
                        200,
                        {
                            "id": repo_id,
                            "modelId": repo_id,
                            "sha": sha,
                            "private": False,
                            "siblings": [{"rfilename": f} for f in sorted(files)],
                        },
                    )
                return self._json(
                    200,
                    [
                        {
                            "type": "file",
                            "path": f,
                            "size": len(files[f]),
                            "oid": hashlib.sha1(files[f]).hexdigest(),
                        }
                        for f in sorted(files)
                    ],
                )
            return self._resolve(head=False)

        # uploads ---------------------------------------------------------
        def do_POST(self) -> None:
            state.requests.append(f"POST {self.path}")
            body = self._body()
            if self._misbehave(head=False):
                return None
            path = unquote(urlparse(self.path).path).strip("/")
            parts = path.split("/")
            if path == "api/validate-yaml":  # model-card metadata check before commits
                return self._json(200, {"errors": [], "warnings": []})
            if path == "api/repos/create":
                req = json.loads(body or b"{}")
                repo_id = (
                    f"{req.get('organization') or 'user'}/{req['name']}"
                    if "/" not in req.get("name", "")
                    else req["name"]
                )
                state.repos.setdefault(repo_id, [])
                return self._json(200, {"url": f"{self._base()}/{repo_id}", "name": repo_id})
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "preupload":
                req = json.loads(body or b"{}")
                return self._json(
                    200,
                    {
                        "files": [
                            {
                                "path": f["path"],
                                "uploadMode": "regular",
                                "shouldIgnore": False,
                                "oid": None,
                            }
                            for f in req.get("files", [])
                        ]
                    },
                )
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "commit":
                repo_id = "/".join(parts[2:4])
                new_files: dict[str, bytes] = {}
                for line in body.decode().splitlines():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    if item.get("key") == "file":
                        value = item["value"]
                        new_files[value["path"]] = base64.b64decode(value["content"])
                sha = state.commit(repo_id, new_files)
                return self._json(
                    200,
                    {
                        "commitUrl": f"{self._base()}/{repo_id}/commit/{sha}",
                        "commitOid": sha,
                        "success": True,
                        "pullRequestUrl": None,
                    },
                )
            return self._not_found("unsupported")

    return Handler


class LoopbackHub:
    """Context manager: a Hub-like server on 127.0.0.1 with a random port."""

    def __init__(self) -> None:
        self.state = HubState()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self.state))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.released.set()
        self.server.shutdown()
        self.server.server_close()
