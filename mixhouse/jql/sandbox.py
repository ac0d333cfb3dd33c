"""One script's JavaScript engine: a fresh V8 isolate (mini-racer) per run, with nothing in it but the
language, Underscore.js as `_`, `params` and JQL's globals.

V8 itself has no network, file system or module loader; what an embedder may add (mini-racer's
`setTimeout`) and what allocates outside the JavaScript heap, where the memory cap cannot see it
(ArrayBuffer and the typed arrays, SharedArrayBuffer, WebAssembly), is deleted before any script code
runs. The isolate's heap is capped (a script past it stops with an error), every call into it carries
what is left of the run's time, and the isolate is thrown away after the run.
"""

from __future__ import annotations

import re
import time
from importlib import resources
from types import TracebackType
from typing import Any, cast

import orjson
from py_mini_racer import (
    JSEvalException,
    JSOOMException,
    JSParseException,
    JSTimeoutException,
    MiniRacer,
)

from mixhouse.errors import BadRequest

SCRIPT_NAME = "jql-script.js"
COLLECT_SECONDS = 0.2
RUNTIME_NAME = "jql-runtime.js"

_REMOVED_GLOBALS = (
    "ArrayBuffer",
    "SharedArrayBuffer",
    "DataView",
    "Int8Array",
    "Uint8Array",
    "Uint8ClampedArray",
    "Int16Array",
    "Uint16Array",
    "Int32Array",
    "Uint32Array",
    "Float16Array",
    "Float32Array",
    "Float64Array",
    "BigInt64Array",
    "BigUint64Array",
    "Atomics",
    "WebAssembly",
    "setTimeout",
    "clearTimeout",
    "setInterval",
    "clearInterval",
    "queueMicrotask",
    "FinalizationRegistry",
    "WeakRef",
)

_HARDEN = (
    "(function (g) { var names = "
    + orjson.dumps(list(_REMOVED_GLOBALS)).decode()
    + "; for (var i = 0; i < names.length; i++) { try { delete g[names[i]]; } catch (e) {} } })(globalThis);"
    # mini-racer declares its timers with `var` and `class` (bindings that cannot be deleted): emptied.
    + "setTimeout = undefined; clearTimeout = undefined; __timer_manager = undefined; __TimerManager = undefined;"
)


def _asset(name: str) -> str:
    return resources.files("mixhouse.jql").joinpath(name).read_text(encoding="utf-8")


_UNDERSCORE = _asset("vendor/underscore-umd-min.js")
_RUNTIME = _asset("runtime.js")


class ScriptError(BadRequest):
    """The script failed: a syntax error, a thrown error, a limit. The message is JavaScript's, with the line."""

    code = "jql_script_error"


_LOCATION = re.compile(r"^(?P<file>[\w.-]+):(?P<line>\d+): (?P<message>.*)$")
_FRAME = re.compile(re.escape(SCRIPT_NAME) + r":(\d+):(\d+)")


def describe(exc: JSEvalException, script_lines: int) -> str:
    """`<Error>: <message> (line N)`, the script's line with V8's caret under the place, and the stack's
    frames in the script. An error raised inside the runtime (a misused builtin) points at the script's
    line that called it."""
    text = str(exc).rstrip()
    first, _, rest = text.partition("\n")
    match = _LOCATION.match(first)
    if match is None:
        return text
    message = match.group("message")
    lines = rest.split("\n")
    excerpt: list[str] = []
    if match.group("file") == SCRIPT_NAME and len(lines) >= 2 and "sourceURL=" not in lines[0]:
        excerpt = lines[:2]
    line: int | None = int(match.group("line")) if match.group("file") == SCRIPT_NAME else None
    if line is None:
        frame = _FRAME.search(rest)
        line = int(frame.group(1)) if frame else None
    if line is not None:
        line = min(line, script_lines)  # "unexpected end of input" is past the last line
    frames = [ln for ln in lines if ln.lstrip().startswith("at ") and SCRIPT_NAME in ln]
    where = f" (line {line})" if line is not None else ""
    return "\n".join([f"{message}{where}", *excerpt, *frames]).rstrip()


class Sandbox:
    """A context manager: `load(script, params)`, then `plan()`, `push_*()` and `finish()`."""

    def __init__(self, *, timeout_seconds: float, max_memory_mb: int, max_output_mb: int) -> None:
        self.timeout_seconds = timeout_seconds
        self.max_memory_mb = max_memory_mb
        self.max_output_bytes = max_output_mb * 1024 * 1024
        self.deadline = time.monotonic() + timeout_seconds
        self._mr = MiniRacer()
        self._mr.set_hard_memory_limit(max_memory_mb * 1024 * 1024)
        # Past half the cap V8 is told of memory pressure after each collection, and the host asks for a
        # full collection between calls (see _collect): garbage, not live data, is what fills a heap that
        # V8 would otherwise let grow toward its own, far larger, default limit.
        self._mr.set_soft_memory_limit(max_memory_mb * 1024 * 1024 // 2)
        self._last_collect = 0.0
        self._push_events: Any = None
        self._push_users: Any = None
        self._resume: Any = None
        self._output: list[str] = []
        self._output_bytes = 0
        self._script_lines = 1

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._mr.close()

    # -- running ------------------------------------------------------------------------------------

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._timed_out()
        return left

    def _timed_out(self) -> ScriptError:
        return ScriptError(f"the script ran past the JQL time limit of {self.timeout_seconds:g} s")

    def _guard(self, run: Any) -> Any:
        try:
            return run()
        except JSTimeoutException as exc:
            raise self._timed_out() from exc
        except JSOOMException as exc:
            raise ScriptError(f"the script used more than the JQL memory limit of {self.max_memory_mb} MB") from exc
        except JSParseException as exc:
            raise ScriptError(describe(exc, self._script_lines)) from exc
        except JSEvalException as exc:
            if self._mr.was_hard_memory_limit_reached():
                raise ScriptError(f"the script used more than the JQL memory limit of {self.max_memory_mb} MB") from exc
            raise ScriptError(describe(exc, self._script_lines)) from exc

    def _eval(self, code: str) -> Any:
        return self._guard(lambda: self._mr.eval(code, timeout_sec=self.remaining()))

    def load(self, script: str, params: Any) -> None:
        self._eval(_HARDEN)
        self._eval(_UNDERSCORE)
        self._eval(_RUNTIME + f"\n//# sourceURL={RUNTIME_NAME}")
        self._eval("var params = " + orjson.dumps(params).decode() + ";")
        self._script_lines = script.count("\n") + 1
        self._eval(script + f"\n//# sourceURL={SCRIPT_NAME}")
        self._push_events = self._mr.eval("__jql.pushEvents")
        self._push_users = self._mr.eval("__jql.pushUsers")
        self._resume = self._mr.eval("__jql.resume")

    def plan(self) -> dict[str, Any]:
        text = self._eval("__jql.plan()")
        return cast(dict[str, Any], orjson.loads(str(text)))

    def push_events(self, columns: str) -> None:
        self._pump(self._push_events, columns)

    def push_users(self, columns: str) -> None:
        self._pump(self._push_users, columns)

    def _pump(self, fn: Any, columns: str) -> None:
        """One batch through the pipeline: the runtime returns "1" while it has more of the batch to run
        (after handing over the answer made so far) and "0" when done."""
        resume = self._resume
        reply = str(self._guard(lambda: fn(columns, timeout_sec=self.remaining())))
        while True:
            self._take(reply[1:])
            self._collect()
            if reply[:1] != "1":
                return
            reply = str(self._guard(lambda: resume(timeout_sec=self.remaining())))

    def _take(self, text: str) -> None:
        """Part of the answer (JSON items joined by commas), kept outside the JavaScript heap."""
        if not text:
            return
        self._output.append(text)
        self._output_bytes += len(text) + 1
        if self._output_bytes > self.max_output_bytes:
            raise ScriptError(
                f"the script's result is larger than the JQL output limit of {self.max_output_bytes} bytes"
            )

    def _collect(self) -> None:
        """A full garbage collection when the heap is past half the cap, at most every COLLECT_SECONDS (a
        heap whose live data is that large would otherwise be collected after every batch)."""
        if not self._mr.was_soft_memory_limit_reached():
            return
        now = time.monotonic()
        if now - self._last_collect < COLLECT_SECONDS:
            return
        self._last_collect = now
        self._mr.low_memory_notification()

    def finish(self) -> bytes:
        self._take(str(self._eval("__jql.finish()")))
        data = ("[" + ",".join(self._output) + "]").encode()
        self._output = []
        if len(data) > self.max_output_bytes:
            raise ScriptError(
                f"the script's result is larger than the JQL output limit of {self.max_output_bytes} bytes"
            )
        return data
