"""HTTP load from `wrk` (Debian's package): a C load generator, so the client costs the machine's
two cores far less than Python threads would, and the server's rate is not bounded by its client.

`run(base_url, requests_, seconds, connections)` sends, on `connections` keep-alive connections,
requests picked at random from `requests_` (method, path, headers, JSON body), each with a fresh
`Idempotency-Key` when `fresh_key` is set (unique per run, wrk thread and request: a key sent twice
would be answered as a replay, 201 again with nothing done). Answers are counted by status in Lua and returned with
wrk's latency percentiles (statuses outside `known` in the script are not counted:
`Result.requests` minus the counted ones shows them).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

_LUA = r"""
local reqs = {REQUESTS}
local fresh_key = {FRESH_KEY}
local run_id = "{RUN_ID}"   -- one per wrk run: two runs never share a key
local counter = 0
local made = 0
local threads = {}

-- setup runs in the main Lua state; thread:set gives each thread's own state a GLOBAL `tid`
-- (a `local tid` here would shadow it: every thread would be 0 with the same random seed, and
-- two threads would send the same Idempotency-Keys, answered as replays)
function setup(thread)
  made = made + 1
  thread:set("tid", made)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + tid)
end

function request()
  local r = reqs[math.random(#reqs)]
  local headers = {}
  for k, v in pairs(r.headers) do headers[k] = v end
  if fresh_key then
    counter = counter + 1
    headers["Idempotency-Key"] = string.format("wrk-%s-%d-%d", run_id, tid, counter)
  end
  return wrk.format(r.method, r.path, headers, r.body)
end

local known = {200, 201, 202, 204, 400, 401, 402, 403, 404, 409, 422, 423, 429, 500, 502, 503}

function response(status, headers, body)
  -- one global number per status: thread:get copies numbers, not tables
  local name = "st_" .. status
  _G[name] = (_G[name] or 0) + 1
end

function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    for _, code in ipairs(known) do
      local v = t:get("st_" .. code)
      if v then all[tostring(code)] = (all[tostring(code)] or 0) + v end
    end
  end
  local parts = {}
  for k, v in pairs(all) do table.insert(parts, string.format('"%s": %d', k, v)) end
  io.write(string.format('WRKRESULT {"requests": %d, "seconds": %f, "errors": %d, "p50": %f, "p99": %f, "statuses": {%s}}\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, table.concat(parts, ", ")))
end
"""


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: dict | None = None


@dataclass
class Result:
    requests: int
    seconds: float
    socket_errors: int
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def count(self, *codes: int) -> int:
        return sum(self.statuses.get(c, 0) for c in codes)


def _lua_string(s: str) -> str:
    return json.dumps(s)   # a JSON string is a valid Lua string literal for ASCII text


def _lua_request(r: Request) -> str:
    headers = {**r.headers}
    body = "nil"
    if r.body is not None:
        headers.setdefault("Content-Type", "application/json")
        body = _lua_string(json.dumps(r.body, separators=(",", ":")))
    hs = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
    return f"{{method = {_lua_string(r.method)}, path = {_lua_string(r.path)}, headers = {{{hs}}}, body = {body}}}"


def run(base_url: str, requests_: list[Request], seconds: float, connections: int = 16,
        threads: int = 2, fresh_key: bool = True) -> Result:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    lua = (_LUA.replace("{REQUESTS}", "{" + ",\n".join(_lua_request(r) for r in requests_) + "}")
           .replace("{FRESH_KEY}", "true" if fresh_key else "false").replace("{RUN_ID}", uuid.uuid4().hex))
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(lua)
        run_ = subprocess.run([wrk, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
                               "--timeout", "30s", "-s", str(script), base_url],
                              capture_output=True, text=True)
    line = next((ln for ln in run_.stdout.splitlines() if ln.startswith("WRKRESULT ")), None)
    if run_.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({run_.returncode}): {run_.stdout[-1500:]} {run_.stderr[-1500:]}")
    data = json.loads(line.removeprefix("WRKRESULT "))
    return Result(data["requests"], data["seconds"], data["errors"], data["p50"], data["p99"],
                  {int(k): v for k, v in data["statuses"].items()})
