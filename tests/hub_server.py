"""A small Hugging Face Hub-compatible HTTP server for tests: push and load over real HTTP on 127.0.0.1.

Standard library only, and not part of the installed package. It speaks the subset of the Hub API that
`huggingface_hub` 2.x sends for `create_repo`, `upload_folder` / `create_commit` (preupload, Git LFS batch + PUT,
NDJSON commit), `push_to_hub`, `Trainer.push_to_hub` and `from_pretrained` (HEAD/GET resolve, model info, tree):
see docs/sharing.md. Clients must run with `HF_HUB_DISABLE_XET=1`, since files that go through LFS
would otherwise be sent to a xet backend, which this server does not have.

Like the Hub, every commit is an immutable snapshot (a manifest from path to content-addressed blob) with a
40-hex oid, so `revision=<commit>` loads old files; a new repo starts with the Hub's default `.gitattributes`,
which (as on the Hub) decides which files travel through LFS; `.gitignore` rules mark files `shouldIgnore`.

Safety: it binds to the loopback interface only, and refuses (400) any URL or committed path with a `..`
segment, so nothing outside its data folder is ever read or written.

Run it by hand with `python tests/hub_server.py --data /tmp/hub`, then `HF_ENDPOINT=<printed url>`.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import json
import re
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote

LOOPBACK = "127.0.0.1"
LFS_THRESHOLD = 10 * 1024 * 1024  # like the Hub: larger files must go through LFS whatever .gitattributes says
# The `.gitattributes` the Hub puts in the first commit of every new model repo.
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz "
        "*.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar "
        "*.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*"
    ).split()
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


class HubError(Exception):
    """An HTTP error answer; `code` goes into `X-Error-Code`, which picks the client's exception type."""

    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.commit = status, message, code, commit


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob: sha1 of `blob <size>\\0<content>` (the Hub's ETag of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The Git LFS pointer file that git stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def safe_repo_path(path: str) -> str:
    """Validate a path inside a repo: relative, `/`-separated, no empty, `.` or `..` segments."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or "\0" in path or any(p in ("", ".", "..") for p in parts):
        raise HubError(400, f"Invalid path in repo: {path!r} (must be relative, without '.' or '..' segments).")
    return path


def _glob_match(pattern: str, path: str) -> bool:
    """Git-style match: a pattern without `/` matches the file name at any depth, else the path from the root."""
    pattern = pattern.lstrip("/")
    if "/" not in pattern:
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    return fnmatch.fnmatchcase(path, pattern.replace("**/", "*"))


def _gitignored(gitignore: str, path: str) -> bool:
    ignored = False
    for line in gitignore.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!")
        if pattern.endswith("/"):  # a folder: everything under it
            hit = any(
                _glob_match(pattern.rstrip("/"), "/".join(path.split("/")[: i + 1])) for i in range(path.count("/"))
            )
        else:
            hit = _glob_match(pattern, path)
        if hit:
            ignored = not negate
    return ignored


def _lfs_tracked(gitattributes: str, path: str) -> bool:
    tracked = False
    for line in gitattributes.splitlines():
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#") and _glob_match(fields[0], path):
            if "filter=lfs" in fields[1:]:
                tracked = True
            elif "-filter" in fields[1:] or "!filter" in fields[1:]:
                tracked = False
    return tracked


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubStore:
    """Repos, commits and blobs on disk under `root`; every method is called with the lock held.

    root/blobs/<sha256>                     file contents, content-addressed (regular and LFS alike)
    root/repos/<ns>/<name>/refs.json        {"branches": {"main": <commit oid>}, "created": <date>}
    root/repos/<ns>/<name>/commits/<oid>.json   {"parent", "title", "message", "date", "files": {path: entry}}
    where entry = {"sha256", "size", "lfs"}.
    """

    def __init__(self, root: Path):
        self.root = root.resolve()
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(exist_ok=True)
        self.lock = threading.RLock()
        self._counter = 0

    # -- paths: everything on disk goes through these two, which refuse to leave the data folder
    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise HubError(400, "Path outside the server's data folder refused.")
        return resolved

    def repo_dir(self, namespace: str, name: str) -> Path:
        for part in (namespace, name):
            if not _NAME.fullmatch(part) or ".." in part or part.endswith(".git"):
                raise HubError(400, f"Invalid repo id {namespace}/{name!r}.")
        return self._inside(self.root / "repos" / namespace / name)

    def blob_path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise HubError(400, f"Invalid sha256 {sha256!r}.")
        return self._inside(self.root / "blobs" / sha256)

    # -- blobs
    def put_blob(self, content: bytes) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        path = self.blob_path(sha256)
        if not path.exists():
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(content)
            tmp.replace(path)
        return sha256

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).exists()

    def read_blob(self, sha256: str) -> bytes:
        return self.blob_path(sha256).read_bytes()

    # -- repos and commits
    def repo_exists(self, namespace: str, name: str) -> bool:
        return (self.repo_dir(namespace, name) / "refs.json").exists()

    def _refs(self, namespace: str, name: str) -> dict:
        if not self.repo_exists(namespace, name):
            raise HubError(404, f"Repository {namespace}/{name} not found.", "RepoNotFound")
        return json.loads((self.repo_dir(namespace, name) / "refs.json").read_text())

    def _write_refs(self, namespace: str, name: str, refs: dict) -> None:
        path = self.repo_dir(namespace, name) / "refs.json"
        path.write_text(json.dumps(refs, indent=1))

    def branches(self, namespace: str, name: str) -> dict[str, str]:
        return self._refs(namespace, name)["branches"]

    def created(self, namespace: str, name: str) -> str:
        return self._refs(namespace, name)["created"]

    def commit(self, namespace: str, name: str, oid: str) -> dict:
        path = self.repo_dir(namespace, name) / "commits" / f"{oid}.json"
        if not _COMMIT.fullmatch(oid) or not path.exists():
            raise HubError(404, f"Revision {oid} not found in {namespace}/{name}.", "RevisionNotFound")
        return json.loads(path.read_text())

    def resolve(self, namespace: str, name: str, revision: str) -> str:
        """A branch name or a full commit oid -> commit oid (404 RevisionNotFound otherwise)."""
        branches = self.branches(namespace, name)
        if revision in branches:
            return branches[revision]
        self.commit(namespace, name, revision)  # raises RevisionNotFound
        return revision

    def create_repo(self, namespace: str, name: str, author: str) -> None:
        directory = self.repo_dir(namespace, name)
        (directory / "commits").mkdir(parents=True, exist_ok=True)
        self._write_refs(namespace, name, {"branches": {}, "created": _now()})
        files = {".gitattributes": self._entry(DEFAULT_GITATTRIBUTES.encode(), lfs=False)}
        oid = self._write_commit(namespace, name, None, files, "initial commit", "", author)
        self._set_branch(namespace, name, "main", oid)

    def _entry(self, content: bytes, lfs: bool) -> dict:
        return {"sha256": self.put_blob(content), "size": len(content), "lfs": lfs}

    def _set_branch(self, namespace: str, name: str, branch: str, oid: str) -> None:
        refs = self._refs(namespace, name)
        refs["branches"][branch] = oid
        self._write_refs(namespace, name, refs)

    def _write_commit(
        self, namespace: str, name: str, parent: str | None, files: dict, title: str, message: str, author: str
    ) -> str:
        self._counter += 1
        record = {"parent": parent, "title": title, "message": message, "author": author, "date": _now()}
        seed = json.dumps({**record, "files": files, "n": self._counter, "t": time.time_ns()}, sort_keys=True)
        oid = hashlib.sha1(seed.encode()).hexdigest()  # 40 hex, unique per commit, like a git commit id
        path = self.repo_dir(namespace, name) / "commits" / f"{oid}.json"
        path.write_text(json.dumps({**record, "files": files}, indent=1))
        return oid

    def files(self, namespace: str, name: str, revision: str = "main") -> dict[str, dict]:
        return self.commit(namespace, name, self.resolve(namespace, name, revision))["files"]

    def text_at(self, namespace: str, name: str, revision: str, path: str) -> str | None:
        entry = self.files(namespace, name, revision).get(path)
        return None if entry is None else self.read_blob(entry["sha256"]).decode("utf-8", "replace")

    def apply_commit(
        self, namespace: str, name: str, branch: str, operations: list[dict], header: dict, author: str
    ) -> str:
        """Apply NDJSON operations on top of `branch`'s head as one new snapshot; return its oid."""
        if branch not in self.branches(namespace, name):
            raise HubError(404, f"Branch {branch!r} not found in {namespace}/{name}.", "RevisionNotFound")
        head = self.branches(namespace, name)[branch]
        parent = header.get("parentCommit")
        if parent is not None and parent != head:
            raise HubError(412, f"parentCommit {parent} is not the head of {branch} ({head}).")
        files = dict(self.commit(namespace, name, head)["files"])
        for op in operations:
            key, value = op.get("key"), op.get("value") or {}
            path = safe_repo_path(
                str(value.get("path", "")).strip("/") if key == "deletedFolder" else value.get("path", "")
            )
            if key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r} for {path}.")
                try:
                    content = base64.b64decode(str(value["content"]), validate=True)
                except (KeyError, ValueError):
                    raise HubError(400, f"The content of {path} is missing or not base64.") from None
                files[path] = self._entry(content, lfs=False)
            elif key == "lfsFile":
                oid = str(value.get("oid", ""))
                if value.get("algo", "sha256") != "sha256" or not self.has_blob(oid):
                    raise HubError(422, f"LFS object {oid} for {path} was never uploaded (or not with sha256).")
                files[path] = {"sha256": oid, "size": self.blob_path(oid).stat().st_size, "lfs": True}
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, f"Cannot delete {path}: no such file.", "EntryNotFound")
            elif key == "deletedFolder":
                files = {p: e for p, e in files.items() if not p.startswith(path + "/")}
            else:
                raise HubError(400, f"Unknown commit operation {key!r}.")
        oid = self._write_commit(
            namespace, name, head, files, str(header.get("summary") or "Commit"), header.get("description", ""), author
        )
        self._set_branch(namespace, name, branch, oid)
        return oid


class HubServer:
    """The test Hub: `with HubServer(tmp_path) as hub: ...` serves on `hub.url` from a daemon thread.

    `hub.store` gives direct access to what was pushed; `hub.requests` logs (method, path, status) of every request.
    """

    def __init__(self, data_dir: str | Path, user: str = "me", token: str | None = None, host: str = LOOPBACK):
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"HubServer binds to the loopback interface only, not {host!r}.")
        self.store = HubStore(Path(data_dir))
        self.user = user
        self.token = token  # if set, writes need `Authorization: Bearer <token>`
        self.requests: list[tuple[str, str, int]] = []
        self.server_errors: list[str] = []  # unexpected exceptions while answering (a test should find none)
        self._httpd = ThreadingHTTPServer((host, 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="hub-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def file_list(self, repo_id: str, revision: str = "main") -> set[str]:
        """Paths in the snapshot of `revision` (a branch or a commit oid)."""
        namespace, name = repo_id.split("/")
        with self.store.lock:
            return set(self.store.files(namespace, name, revision))

    def read(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        namespace, name = repo_id.split("/")
        with self.store.lock:
            return self.store.read_blob(self.store.files(namespace, name, revision)[path]["sha256"])

    def branch_head(self, repo_id: str, branch: str = "main") -> str:
        namespace, name = repo_id.split("/")
        with self.store.lock:
            return self.store.branches(namespace, name)[branch]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TestHub/1.0"
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args) -> None:
        pass  # quiet: tests read `hub.requests` instead

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    # -- plumbing
    def _body(self) -> bytes:
        if self._read_body is not None:
            return self._read_body
        self._read_body = self._read_request_body()
        return self._read_body

    def _read_request_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json_body(self) -> dict:
        try:
            payload = json.loads(self._body() or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise HubError(400, f"Invalid JSON body: {error}") from None
        if not isinstance(payload, dict):
            raise HubError(400, "The JSON body must be an object.")
        return payload

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type: str = "") -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.hub.requests.append((self.command, self.path, status))

    def _send_json(self, payload: object, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode(), content_type="application/json")

    def _require_token(self) -> None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or (self.hub.token is not None and auth != f"Bearer {self.hub.token}"):
            raise HubError(401, "Invalid credentials in Authorization header")

    def _dispatch(self) -> None:
        self._read_body: bytes | None = None
        try:
            raw_path, _, query = self.path.partition("?")
            segments = [unquote(s) for s in raw_path.split("/")[1:]]
            if any(p in ("..", ".") or "\\" in p or "\0" in p for s in segments for p in s.split("/")):
                raise HubError(400, "Path traversal refused: '..' or '.' segments are not allowed.")
            self._route(segments, parse_qs(query))
        except Exception as caught:  # a bad request, or a bug here: answer it and keep serving
            error = caught if isinstance(caught, HubError) else HubError(500, f"{type(caught).__name__}: {caught}")
            if error.status >= 500 or not isinstance(caught, HubError):
                self.hub.server_errors.append(f"{self.command} {self.path}: {error.message}")
            headers = {"X-Error-Message": error.message.encode("ascii", "backslashreplace").decode()}
            if error.code:
                headers["X-Error-Code"] = error.code
            if error.commit:
                headers["X-Repo-Commit"] = error.commit
            body = json.dumps({"error": error.message}).encode()
            has_body = "Content-Length" in self.headers or "Transfer-Encoding" in self.headers
            if has_body and self._read_body is None:
                self.close_connection = True  # the unread body would otherwise be parsed as the next request
            self._send(error.status, body, headers, "application/json")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch  # noqa: N815 - names http.server looks up

    def _route(self, s: list[str], query: dict) -> None:
        method, store = self.command, self.hub.store
        if s[:2] == ["api", "whoami-v2"] and method == "GET":
            self._require_token()
            user = self.hub.user
            return self._send_json(
                {
                    "type": "user",
                    "id": "0" * 24,
                    "name": user,
                    "fullname": user,
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
                }
            )
        if s[:2] == ["api", "validate-yaml"] and method == "POST":
            self._body()
            return self._send_json({"errors": [], "warnings": []})
        if s[:3] == ["api", "repos", "create"] and method == "POST":
            return self._create_repo()
        if len(s) >= 4 and s[0] == "api" and s[1] in ("models", "datasets", "spaces"):
            if s[1] != "models":
                self._body()
                raise HubError(404, f"This test Hub serves model repos only, not {s[1]}.", "RepoNotFound")
            namespace, name, rest = s[2], s[3], s[4:]
            with store.lock:
                return self._repo_api(namespace, name, rest, query)
        if len(s) >= 5 and s[2] == "resolve" and method in ("GET", "HEAD"):
            with store.lock:
                return self._resolve(s[0], s[1], s[3], "/".join(s[4:]))
        if len(s) == 6 and s[1].endswith(".git") and s[2:] == ["info", "lfs", "objects", "batch"] and method == "POST":
            return self._lfs_batch(s[0], s[1][: -len(".git")])
        if len(s) == 2 and s[0] == "lfs-upload" and method == "PUT":
            return self._lfs_put(s[1])
        self._body()
        raise HubError(404, f"{method} {self.path} is not served by this test Hub.")

    # -- endpoints
    def _create_repo(self) -> None:
        self._require_token()
        payload = self._json_body()
        if payload.get("type") not in (None, "model"):
            raise HubError(400, "This test Hub creates model repos only.")
        namespace, name = payload.get("organization") or self.hub.user, str(payload.get("name", ""))
        url = f"{self.hub.url}/{namespace}/{name}"
        with self.hub.store.lock:
            if self.hub.store.repo_exists(namespace, name):
                return self._send_json({"error": "You already created this model repo", "url": url}, 409)
            self.hub.store.create_repo(namespace, name, self.hub.user)
        self._send_json({"url": url, "name": f"{namespace}/{name}", "id": "0" * 24})

    def _repo_api(self, namespace: str, name: str, rest: list[str], query: dict) -> None:
        store, method = self.hub.store, self.command
        payload = self._json_body() if method == "POST" and rest and rest[0] in ("branch", "preupload") else {}
        body = self._body() if method in ("POST", "PUT") else b""
        branches = store.branches(namespace, name)  # 404 RepoNotFound first, as the Hub does
        if not rest or (rest[0] == "revision" and len(rest) == 2):
            oid = store.resolve(namespace, name, rest[1] if rest else "main")
            return self._send_json(self._model_info(namespace, name, oid))
        if rest[0] == "tree" and len(rest) >= 2 and method == "GET":
            oid = store.resolve(namespace, name, rest[1])
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            return self._send_json(
                self._tree(store.commit(namespace, name, oid)["files"], "/".join(rest[2:]), recursive)
            )
        if rest == ["refs"] and method == "GET":
            return self._send_json(
                {
                    "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": o} for b, o in branches.items()],
                    "converts": [],
                    "tags": [],
                }
            )
        if rest[0] == "commits" and len(rest) == 2 and method == "GET":
            history, oid = [], store.resolve(namespace, name, rest[1])
            while oid is not None:
                record = store.commit(namespace, name, oid)
                history.append(
                    {
                        "id": oid,
                        "title": record["title"],
                        "message": record["message"],
                        "date": record["date"],
                        "authors": [{"user": record["author"]}],
                    }
                )
                oid = record["parent"]
            return self._send_json(history)
        if rest[0] == "branch" and len(rest) == 2 and method == "POST":
            self._require_token()
            start = payload.get("startingPoint") or "main"
            if rest[1] in branches:
                raise HubError(409, f"Branch {rest[1]} already exists.")
            store._set_branch(namespace, name, rest[1], store.resolve(namespace, name, start))
            return self._send_json({})
        if rest[0] == "preupload" and len(rest) == 2 and method == "POST":
            self._require_token()
            return self._send_json(self._preupload(namespace, name, rest[1], payload))
        if rest[0] == "commit" and len(rest) == 2 and method == "POST":
            self._require_token()
            if query.get("create_pr"):
                raise HubError(400, "This test Hub does not support pull requests (create_pr).")
            return self._commit(namespace, name, rest[1], body)
        raise HubError(404, f"{method} {self.path} is not served by this test Hub.")

    def _model_info(self, namespace: str, name: str, oid: str) -> dict:
        files = self.hub.store.commit(namespace, name, oid)["files"]
        return {
            "_id": oid[:24],
            "id": f"{namespace}/{name}",
            "modelId": f"{namespace}/{name}",
            "author": namespace,
            "sha": oid,
            "lastModified": self.hub.store.commit(namespace, name, oid)["date"],
            "createdAt": self.hub.store.created(namespace, name),
            "private": False,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [
                {"rfilename": path, **self._file_meta(path, entry, "siblings")} for path, entry in sorted(files.items())
            ],
        }

    def _file_meta(self, path: str, entry: dict, style: str) -> dict:
        store = self.hub.store
        if entry["lfs"]:
            pointer = lfs_pointer(entry["sha256"], entry["size"])
            oid, lfs = (
                git_blob_oid(pointer),
                {"oid": entry["sha256"], "size": entry["size"], "pointerSize": len(pointer)},
            )
        else:
            oid, lfs = git_blob_oid(store.read_blob(entry["sha256"])), None
        if style == "siblings":
            meta = {"size": entry["size"], "blobId": oid}
            return (
                {**meta, "lfs": {"sha256": lfs["oid"], "size": lfs["size"], "pointerSize": lfs["pointerSize"]}}
                if lfs
                else meta
            )
        meta = {"type": "file", "oid": oid, "size": entry["size"], "path": path}
        return {**meta, "lfs": lfs} if lfs else meta

    def _tree(self, files: dict, folder: str, recursive: bool) -> list[dict]:
        prefix = f"{folder}/" if folder else ""
        if folder and folder not in files and not any(p.startswith(prefix) for p in files):
            raise HubError(404, f"{folder} not found.", "EntryNotFound")
        entries, folders = [], set()
        for path, entry in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                if recursive or depth == 1:
                    folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append(self._file_meta(path, entry, "tree"))
        dirs = [
            {"type": "directory", "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0, "path": p}
            for p in sorted(folders)
        ]
        return dirs + entries

    def _preupload(self, namespace: str, name: str, revision: str, payload: dict) -> dict:
        store = self.hub.store
        oid = store.resolve(namespace, name, revision)
        current = store.commit(namespace, name, oid)["files"]
        gitattributes = store.text_at(namespace, name, oid, ".gitattributes") or ""
        gitignore = payload.get("gitIgnore")
        if gitignore is None:
            gitignore = store.text_at(namespace, name, oid, ".gitignore") or ""
        answers = []
        for item in payload.get("files", []):
            if not (isinstance(item, dict) and isinstance(item.get("path"), str) and isinstance(item.get("size"), int)):
                raise HubError(400, f"Each preupload file needs a path and a size, not {item!r}.")
            path = safe_repo_path(item["path"])
            sample = base64.b64decode(str(item.get("sample", "")))
            lfs = _lfs_tracked(gitattributes, path) or item["size"] >= LFS_THRESHOLD or b"\0" in sample
            remote = current.get(path)
            remote_oid = None
            if remote is not None:  # lets the client skip unchanged files, as the Hub does
                remote_oid = remote["sha256"] if lfs else git_blob_oid(store.read_blob(remote["sha256"]))
            answers.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": _gitignored(gitignore, path),
                    "oid": remote_oid,
                }
            )
        return {"files": answers, "commitOid": oid}

    def _commit(self, namespace: str, name: str, branch: str, body: bytes) -> None:
        try:
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise HubError(400, f"Invalid NDJSON commit payload: {error}") from None
        if not lines or not all(isinstance(line, dict) for line in lines) or lines[0].get("key") != "header":
            raise HubError(400, "The commit payload must start with a header line.")
        oid = self.hub.store.apply_commit(namespace, name, branch, lines[1:], lines[0]["value"], self.hub.user)
        self._send_json(
            {"commitOid": oid, "commitUrl": f"{self.hub.url}/{namespace}/{name}/commit/{oid}", "pullRequestUrl": None}
        )

    def _resolve(self, namespace: str, name: str, revision: str, path: str) -> None:
        store = self.hub.store
        oid = store.resolve(namespace, name, revision)
        entry = store.commit(namespace, name, oid)["files"].get(safe_repo_path(path))
        if entry is None:
            raise HubError(404, f"{path} not found at {namespace}/{name}@{revision}.", "EntryNotFound", commit=oid)
        content = store.read_blob(entry["sha256"])
        headers = {"X-Repo-Commit": oid, "Accept-Ranges": "bytes"}
        if entry["lfs"]:
            headers.update(
                {
                    "ETag": f'"{entry["sha256"]}"',
                    "X-Linked-Etag": f'"{entry["sha256"]}"',
                    "X-Linked-Size": str(entry["size"]),
                }
            )
        else:
            headers["ETag"] = f'"{git_blob_oid(content)}"'
        status, match = 200, re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and self.command == "GET" and 0 < int(match.group(1)) < len(content):
            start = int(match.group(1))
            headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
            status, content = 206, content[start:]
        self._send(status, content, headers, "application/octet-stream")

    def _lfs_batch(self, namespace: str, name: str) -> None:
        self._require_token()
        payload = self._json_body()
        with self.hub.store.lock:
            self.hub.store.branches(namespace, name)  # RepoNotFound
            if payload.get("operation") != "upload":
                raise HubError(400, "This test Hub only accepts LFS uploads; files download through /resolve.")
            objects = []
            for obj in payload.get("objects", []):
                if not (isinstance(obj, dict) and isinstance(obj.get("oid"), str) and isinstance(obj.get("size"), int)):
                    raise HubError(400, f"Each LFS object needs an oid and a size, not {obj!r}.")
                self.hub.store.blob_path(obj["oid"])  # a sha256, or 400
                answer = {"oid": obj["oid"], "size": obj["size"]}
                if not self.hub.store.has_blob(obj["oid"]):  # a stored object needs no upload action
                    answer["actions"] = {"upload": {"href": f"{self.hub.url}/lfs-upload/{obj['oid']}"}}
                objects.append(answer)
        self._send_json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_put(self, sha256: str) -> None:
        self.hub.store.blob_path(sha256)  # validates before reading anything
        content = self._body()
        if hashlib.sha256(content).hexdigest() != sha256:
            raise HubError(400, f"Uploaded content does not match its sha256 {sha256}.")
        with self.hub.store.lock:
            self.hub.store.put_blob(content)
        self._send(200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder that holds the repos")
    parser.add_argument("--user", default="me", help="the user name whoami returns and new repos default to")
    args = parser.parse_args()
    with HubServer(args.data, user=args.user) as hub:
        print(f"Test Hub on {hub.url} (data in {hub.store.root}); Ctrl-C stops it.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
