"""Every code block of the docs and the README runs in the test suite.

One test per page (``tests/doc_snippets.py`` finds the blocks): its Python blocks run
in order in one namespace, as a reader goes down the page, so a later block may use
what an earlier one defined. See ``tests/doc_snippets.py`` for what each kind of block
must pass and for the ``<!-- snippet: ... -->`` markers.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import re
import shlex
import socket
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.cache import SessionStore
from django.db import transaction
from django.dispatch import Signal
from django.test import Client, RequestFactory, override_settings
from django.urls import clear_url_caches

from django_verifynow import signals as verifynow_signals
from django_verifynow.conf import DEFAULTS, verifynow_settings

from .doc_snippets import PAGES, ROOT, Snippet, all_snippets, snippets

pytestmark = pytest.mark.django_db


class Recorder:
    """Stands in for a reader's own function a page calls (``alert``, ``metrics``):
    records the calls, so a block runs without inventing what it does."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(args)

    def __getattr__(self, attr: str) -> Recorder:
        if attr.startswith("_"):
            raise AttributeError(attr)
        return Recorder(f"{self.name}.{attr}")


def _request() -> Any:
    """``request`` in a page: an anonymous browser request with a session."""
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.7")
    request.session = SessionStore()
    request.user = AnonymousUser()
    return request


def prelude() -> dict[str, Any]:
    """The only names a block may use without defining them: what a page leaves to
    the reader's own code."""
    return {
        "__name__": "docs_snippet",
        "request": _request(),
        "alert": Recorder("alert"),
        "notify_ops": Recorder("notify_ops"),
        "metrics": Recorder("metrics"),
    }


# -- checks ---------------------------------------------------------------------------


def validate_verifynow(value: object, where: str) -> None:
    """A ``VERIFYNOW`` dict shown in the docs: every key exists and every value is
    accepted by the setting's own validation."""
    assert isinstance(value, dict), f"{where}: VERIFYNOW is not a dict"
    unknown = sorted(set(value) - set(DEFAULTS))
    assert not unknown, f"{where}: VERIFYNOW keys that do not exist: {unknown}"
    with override_settings(VERIFYNOW=value):
        for key in value:
            getattr(verifynow_settings, key)  # raises VerifyNowConfigurationError


def _entries_are_settings(entries: dict[Any, Any]) -> bool:
    return all(isinstance(k, str) and k.isupper() for k in entries)


def _compile(snippet: Snippet) -> tuple[list[types.CodeType], bool]:
    """The block's code, and whether it is dict entries (a settings excerpt):
    compiled inside ``{}``, all together or, for alternatives shown one per line,
    line by line."""
    try:
        return [compile(snippet.code, snippet.id, "exec")], False
    except SyntaxError as exc:
        error = exc
    try:
        return [compile("{\n" + snippet.code + "}", snippet.id, "eval")], True
    except SyntaxError:
        pass
    lines = [line for line in snippet.code.splitlines() if line.strip()]
    try:
        codes = [compile("{" + line + "\n}", snippet.id, "eval") for line in lines]
        return codes, True
    except SyntaxError:
        raise error from None


def _environment(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A settings excerpt that reads os.environ["X"] gets a placeholder value for X.
    for name in re.findall(r"""os\.environ\[["'](\w+)["']\]""", code):
        monkeypatch.setenv(name, f"docs-{name.lower()}")


def _api_calls_without_json(code: str) -> list[int]:
    """Lines where a block POSTs (PUTs, PATCHes) to the API without a JSON body: the
    test client's default is multipart, which the API refuses with 415."""
    lines = []
    for node in ast.walk(ast.parse(code)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("post", "put", "patch")
            and node.args
        ):
            continue
        url = ast.unparse(node.args[0])
        if "/api/" not in url:
            continue
        kinds = {
            k.arg: ast.literal_eval(k.value)
            for k in node.keywords
            if k.arg == "content_type" and isinstance(k.value, ast.Constant)
        }
        if kinds.get("content_type") != "application/json":
            lines.append(node.lineno)
    return lines


@contextlib.contextmanager
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pages talk to the sandbox (in process, or its server on 127.0.0.1), never to
    a real host: any other connection fails the page."""
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"a docs snippet connected to {address!r}")
        return connect(sock, address)

    with monkeypatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded)
        yield


def _literal_verifynow(code: str) -> object | None:
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "VERIFYNOW" for t in node.targets
        ):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return None
    return None


# -- running test functions a page defines ------------------------------------------


def _fixture_function(value: Any) -> tuple[Callable[..., Any], bool] | None:
    marker = getattr(value, "_fixture_function_marker", None)
    if marker is None:
        return None
    # pytest 8.4+ keeps the function as _fixture_function, older ones in
    # __pytest_wrapped__.
    function = getattr(value, "_fixture_function", None)
    if function is None:
        function = value.__pytest_wrapped__.obj
    return function, bool(marker.autouse)


@contextlib.contextmanager
def _fixtures(
    function: Callable[..., Any], namespace: dict[str, Any], request: Any
) -> Iterator[dict[str, Any]]:
    """The arguments ``function`` names: fixtures the page defined (autouse ones
    always run), a fresh Django test ``client`` and ``verifynow_sandbox`` per call, or
    pytest's own."""
    fixtures = {
        name: found
        for name, value in namespace.items()
        if (found := _fixture_function(value)) is not None
    }
    values: dict[str, Any] = {}
    marks = getattr(function, "pytestmark", [])
    engine_kwargs = [m.kwargs for m in marks if m.name == "verifynow_sandbox"]
    with contextlib.ExitStack() as stack:

        def resolve(name: str) -> Any:
            if name in values:
                return values[name]
            if name in fixtures:
                function, _ = fixtures[name]
                args = {p: resolve(p) for p in inspect.signature(function).parameters}
                result = function(**args)
                if inspect.isgenerator(result):
                    generator = result
                    result = next(generator)
                    stack.callback(lambda: next(generator, None))
                values[name] = result
            elif name == "client":
                values[name] = Client()
            elif name == "verifynow_sandbox":
                # The plugin's fixture, fresh per call as pytest gives it per test:
                # request.getfixturevalue would hand both runs the same session.
                from django_verifynow.testing import sandbox_session

                session = sandbox_session(**(engine_kwargs or [{}])[0])
                values[name] = stack.enter_context(session)
            else:
                values[name] = request.getfixturevalue(name)
            return values[name]

        for name, (_, autouse) in fixtures.items():
            if autouse:
                resolve(name)
        yield {p: resolve(p) for p in inspect.signature(function).parameters}


def _run_tests(namespace: dict[str, Any], before: set[str], request: Any) -> list[str]:
    """Call each ``test_*`` function the block defined, twice in a row: limits and
    cooldowns stay in the cache between tests, so a test that only passes once would
    fail in a reader's suite as the second test on the same number."""
    ran = []
    for name, function in list(namespace.items()):
        if name in before or not name.startswith("test_") or not callable(function):
            continue
        for run in (1, 2):
            # Each run's rows are rolled back, as pytest-django does between tests;
            # the cache is not.
            with transaction.atomic(), _fixtures(function, namespace, request) as kw:
                try:
                    function(**kw)
                except Exception as exc:
                    failed = f"{name} failed on run {run}: {exc!r}"
                    raise AssertionError(failed) from exc
                transaction.set_rollback(True)
        ran.append(name)
    return ran


# -- the page runner -----------------------------------------------------------------


@contextlib.contextmanager
def _signal_receivers_restored() -> Iterator[None]:
    # Receivers a page connects (signals.md) must not outlive its test.
    found = [v for v in vars(verifynow_signals).values() if isinstance(v, Signal)]
    saved = [(s, list(s.receivers)) for s in found]
    try:
        yield
    finally:
        for signal, receivers in saved:
            with signal.lock:
                signal.receivers = receivers
                signal.sender_receivers_cache.clear()


def _install_urlconf(patterns: list[Any], stack: contextlib.ExitStack) -> None:
    """A page that defines ``urlpatterns`` is the site's URLconf for its later
    blocks (forms.md's signup view and its test)."""
    module = types.ModuleType("docs_snippet_urls")
    module.urlpatterns = list(patterns)  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    stack.callback(sys.modules.pop, module.__name__, None)
    stack.enter_context(override_settings(ROOT_URLCONF=module.__name__))
    clear_url_caches()
    stack.callback(clear_url_caches)


_FILE_COMMENT = re.compile(r"^#\s*(?P<path>\w+(?:/\w+)+)\.py\s*$")


def _register_module(
    snippet: Snippet, namespace: dict[str, Any], stack: contextlib.ExitStack
) -> None:
    """A block headed ``# mysite/views.py`` becomes the module ``mysite.views``, so a
    later block's ``from mysite.views import signup`` imports what the page defined."""
    found = _FILE_COMMENT.match(snippet.code.partition("\n")[0])
    if not found:
        return
    parts = found["path"].split("/")
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        if name in sys.modules and depth < len(parts):
            continue
        module = types.ModuleType(name)
        if depth < len(parts):
            module.__path__ = []  # a package
        else:
            vars(module).update(
                {k: v for k, v in namespace.items() if k != "__builtins__"}
            )
        sys.modules[name] = module
        stack.callback(sys.modules.pop, name, None)
        if depth > 1:
            setattr(sys.modules[".".join(parts[: depth - 1])], parts[depth - 1], module)


def run_python(
    snippet: Snippet,
    namespace: dict[str, Any],
    request: Any,
    monkeypatch: pytest.MonkeyPatch,
    stack: contextlib.ExitStack,
) -> None:
    """Check one Python block (see ``tests/doc_snippets.py``)."""
    assert snippet.marker != "skip", (
        f"{snippet.id}: Python blocks are run or compiled, never skipped"
    )
    if snippet.marker == "equals":
        module, _, attr = snippet.argument.rpartition(".")
        expected = getattr(importlib.import_module(module), attr)
        shown = eval(compile(snippet.code, snippet.id, "eval"), {})
        assert shown == expected, f"{snippet.id}: differs from {snippet.argument}"
        return
    codes, entries = _compile(snippet)
    _environment(snippet.code, monkeypatch)
    if entries:
        for part in codes:
            value = eval(part, dict(namespace))
            if _entries_are_settings(value):
                validate_verifynow(value, snippet.id)
        return
    (code,) = codes
    multipart = _api_calls_without_json(snippet.code)
    assert not multipart, (
        f"{snippet.id}: API calls without content_type='application/json' on lines "
        f"{multipart} of the block"
    )
    if snippet.marker == "compile":
        literal = _literal_verifynow(snippet.code)
        if literal is not None:
            validate_verifynow(literal, snippet.id)
        return
    before = set(namespace)
    patterns = namespace.get("urlpatterns")
    try:
        exec(code, namespace)
    except Exception as exc:
        raise AssertionError(f"{snippet.id} raised {exc!r}") from exc
    if "VERIFYNOW" in namespace and "VERIFYNOW" not in before | {""}:
        validate_verifynow(namespace["VERIFYNOW"], snippet.id)
    _register_module(snippet, namespace, stack)
    if namespace.get("urlpatterns") is not patterns or "urlpatterns" not in before:
        if isinstance(namespace.get("urlpatterns"), list):
            _install_urlconf(namespace["urlpatterns"], stack)
    _run_tests(namespace, before, request)
    namespace.pop("VERIFYNOW", None)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_snippets(
    page: Any, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each Python block of the page runs (or compiles, when marked) in order."""
    namespace = prelude()
    with (
        contextlib.ExitStack() as stack,
        _signal_receivers_restored(),
        _loopback_only(monkeypatch),
    ):
        for snippet in snippets(page):
            if snippet.language == "python":
                run_python(snippet, namespace, request, monkeypatch, stack)


def test_pages_have_python_blocks() -> None:
    """The collector finds blocks (a broken fence regex would pass every page)."""
    found = all_snippets(("python",))
    assert len(found) >= 20
    assert {s.path.name for s in found} >= {"README.md", "forms.md", "sandbox.md"}


def test_markers_are_parsed(tmp_path: Any) -> None:
    """A marker applies to the block right after it, and only to that one."""
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- snippet: compile -->\n```python\nA = 1\n```\n\n"
        "```python\nB = 2\n```\n\n<!-- snippet: compile -->\ntext\n\n```sh\nls\n```\n"
    )
    blocks = list(snippets(page))
    assert [(b.language, b.marker) for b in blocks] == [
        ("python", "compile"),
        ("python", None),
        ("sh", None),
    ]
    page.write_text("<!-- snippet: run-twice -->\n```python\nA = 1\n```\n")
    with pytest.raises(ValueError, match="unknown snippet marker"):
        list(snippets(page))


def test_a_failing_test_snippet_is_reported_on_its_second_run(
    tmp_path: Any, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner calls a page's test twice without clearing the cache, so a test
    that leaves a cooldown behind (the bug forms.md once had) fails."""
    page = tmp_path / "page.md"
    page.write_text(
        "```python\n"
        "from django_verifynow.testing import last_code\n\n"
        "def test_send(client):\n"
        '    r = client.post("/api/verify/", {"phone_number": "+919876543210"},\n'
        '                    content_type="application/json")\n'
        "    assert r.status_code == 201, r.json()\n"
        "```\n"
    )
    (snippet,) = snippets(page)
    with contextlib.ExitStack() as stack:
        with pytest.raises(AssertionError, match="test_send failed on run 2"):
            run_python(snippet, prelude(), request, monkeypatch, stack)


def test_an_api_call_with_a_multipart_body_fails(
    tmp_path: Any, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bug sandbox.md had: posting to the API without a JSON content type."""
    page = tmp_path / "page.md"
    page.write_text(
        "```python\n"
        "def test_send(client):\n"
        '    client.post("/api/verify/", {"phone_number": "+919876543210"})\n'
        "```\n"
    )
    (snippet,) = snippets(page)
    with contextlib.ExitStack() as stack:
        with pytest.raises(AssertionError, match="without content_type"):
            run_python(snippet, prelude(), request, monkeypatch, stack)


def test_a_wrong_settings_key_in_a_page_fails(
    tmp_path: Any, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A VERIFYNOW excerpt with a misspelt key or a refused value fails."""
    page = tmp_path / "page.md"
    page.write_text(
        '```python\n"SANDBOX": True,\n"OTP_LENGHT": 6,\n```\n\n'
        '<!-- snippet: compile -->\n```python\nVERIFYNOW = {"DEADLINE": 0}\n```\n'
    )
    misspelt, refused = snippets(page)
    with contextlib.ExitStack() as stack:
        with pytest.raises(AssertionError, match="OTP_LENGHT"):
            run_python(misspelt, prelude(), request, monkeypatch, stack)
        with pytest.raises(Exception, match="DEADLINE"):
            run_python(refused, prelude(), request, monkeypatch, stack)


def _parameters(signature: inspect.Signature) -> list[tuple[str, Any, Any]]:
    return [
        (p.name, p.kind, p.default)
        for p in signature.parameters.values()
        if p.name != "self"
    ]


def test_signatures_shown_match_the_code() -> None:
    """A signature a page shows as text (``SandboxEngine(*, clock=None, …)``) has the
    code's parameters, kinds and defaults."""
    shown_blocks = [s for s in all_snippets(("text",)) if s.marker == "signature"]
    assert len(shown_blocks) >= 2
    for snippet in shown_blocks:
        module, _, name = snippet.argument.rpartition(".")
        try:
            target = getattr(importlib.import_module(module), name)
        except ModuleNotFoundError:  # a method: module.Class.method
            module, _, owner = module.rpartition(".")
            target = getattr(getattr(importlib.import_module(module), owner), name)
        code = " ".join(snippet.code.split())
        namespace: dict[str, Any] = {}
        exec(f"def shown{code[code.index('(') :]}: pass", namespace)
        assert _parameters(inspect.signature(namespace["shown"])) == _parameters(
            inspect.signature(target)
        ), f"{snippet.id}: the signature differs from {snippet.argument}"


def _curl_to_client(command: str) -> tuple[str, str, dict[str, Any], bytes | None]:
    """``curl -X POST URL -H 'Content-Type: …' -d '{…}'`` as test-client arguments."""
    words = shlex.split(command)
    assert words[0] == "curl", command
    method, url, headers, data = "GET", "", {}, None
    i = 1
    while i < len(words):
        word = words[i]
        if word in ("-X", "--request"):
            method, i = words[i + 1], i + 2
        elif word in ("-H", "--header"):
            name, _, value = words[i + 1].partition(":")
            headers[name.strip()] = value.strip()
            i += 2
        elif word in ("-d", "--data", "--data-raw"):
            data, i = words[i + 1].encode(), i + 2
            method = "POST" if method == "GET" else method
        elif word.startswith("-"):
            i += 1  # -s, -i, -b/-c with a jar: handled by the client itself
            if word in ("-b", "-c", "--cookie", "--cookie-jar"):
                i += 1
        else:
            url, i = word, i + 1
    return method, url, headers, data


def _curl_commands(snippet: Snippet) -> list[tuple[str, int | None]]:
    """Each ``curl`` command of the block, with the status the comment line above it
    names (``# … (201 and the attempt)``), if any."""
    found: list[tuple[str, int | None]] = []
    expected: int | None = None
    for line in snippet.code.replace("\\\n", " ").splitlines():
        line = line.strip()
        if line.startswith("#"):
            status = re.search(r"\b([1-5]\d\d)\b", line)
            expected = int(status[1]) if status else None
        elif line.startswith("curl "):
            found.append((line, expected))
            expected = None
    return found


def test_curl_commands_run_against_the_api() -> None:
    """``curl`` calls in the pages' ``sh`` blocks: sandbox, JSON bodies, and an answer
    of the API's contract (never a 5xx, always JSON)."""
    commands = [
        (s, c)
        for s in all_snippets(("sh", "bash", "console"))
        if s.marker != "skip"
        for c in _curl_commands(s)
    ]
    assert len(commands) >= 2, "api.md shows the API with curl"
    client = Client(enforce_csrf_checks=False)
    for snippet, (command, expected) in commands:
        method, url, headers, data = _curl_to_client(command)
        path = re.sub(r"^https?://[^/]+", "", url)
        if data is not None:
            assert headers.get("Content-Type") == "application/json", (
                f"{snippet.id}: the API is called with JSON bodies"
            )
        response = client.generic(
            method,
            path,
            data or b"",
            content_type=headers.get("Content-Type", ""),
            headers={k: v for k, v in headers.items() if k != "Content-Type"},
        )
        assert response.status_code < 500, f"{snippet.id}: {command}"
        if expected is not None:
            assert response.status_code == expected, (
                f"{snippet.id}: {command} answered {response.status_code}: "
                f"{response.content[:200]!r}"
            )
        assert response["Content-Type"].startswith("application/json"), snippet.id
