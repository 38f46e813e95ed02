#!/usr/bin/env python3
"""Everyday redis-py 8 usage, against any Redis address: a redis-server or the cfgserver proxy.

    python3 redis_py_scenarios.py HOST PORT [--protocol 2|3]

Without --protocol the client keeps redis-py's default (RESP3 since redis-py 8, so it opens
every connection with HELLO 3). Prints one JSON line per scenario,
{"scenario", "ok", "error"}, and exits 1 if any failed. A failed scenario does not stop the
others: the caller wants the whole list of what works and what does not.

The keys of one command always share a hash tag, so that the proxy can route them; every key
carries a random run id, so that runs against the same servers do not see each other's keys.
"""

import argparse
import hashlib
import json
import os
import sys
import threading
import time
import traceback

import redis

RUN = os.urandom(4).hex()

# redis-py's defaults, except these bounds: a proxy that never answers must make a scenario
# fail, not hang the run. 10 s is far above anything a scenario waits for.
SOCKET_TIMEOUT = 10
CONNECT_TIMEOUT = 5


def key(tag, name):
    return f"{{rp-{RUN}-{tag}}}:{name}"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def eq(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def scenario_connect(r, new):
    eq(r.ping(), True, "PING")


def scenario_strings(r, new):
    k = key("str", "a")
    eq(r.set(k, "v1"), True, "SET")
    eq(r.get(k), b"v1", "GET")
    c = key("str", "counter")
    eq(r.incr(c), 1, "INCR")
    eq(r.incr(c, 41), 42, "INCRBY")
    eq(r.expire(k, 100), True, "EXPIRE")
    ttl = r.ttl(k)
    check(0 < ttl <= 100, f"TTL in (0, 100], got {ttl!r}")
    eq(r.ttl(c), -1, "TTL of a key without expiry")
    eq(r.get(key("str", "missing")), None, "GET of a missing key")


def scenario_hashes(r, new):
    h = key("hash", "h")
    eq(r.hset(h, mapping={"name": "ada", "lang": "py", "n": 3}), 3, "HSET mapping")
    eq(r.hgetall(h), {b"name": b"ada", b"lang": b"py", b"n": b"3"}, "HGETALL")
    eq(r.hget(h, "name"), b"ada", "HGET")
    eq(r.hincrby(h, "n", 2), 5, "HINCRBY")
    eq(r.hdel(h, "lang"), 1, "HDEL")
    eq(sorted(r.hkeys(h)), [b"n", b"name"], "HKEYS")


def scenario_lists(r, new):
    l = key("list", "l")
    eq(r.rpush(l, "b", "c"), 2, "RPUSH")
    eq(r.lpush(l, "a"), 3, "LPUSH")
    eq(r.lrange(l, 0, -1), [b"a", b"b", b"c"], "LRANGE")
    eq(r.llen(l), 3, "LLEN")
    eq(r.lpop(l), b"a", "LPOP")
    eq(r.rpop(l), b"c", "RPOP")
    eq(r.lrange(l, 0, -1), [b"b"], "LRANGE after pops")


def scenario_sets(r, new):
    s, t = key("set", "s"), key("set", "t")
    eq(r.sadd(s, "x", "y", "z", "x"), 3, "SADD")
    eq(r.smembers(s), {b"x", b"y", b"z"}, "SMEMBERS")
    eq(bool(r.sismember(s, "y")), True, "SISMEMBER")
    eq(r.scard(s), 3, "SCARD")
    eq(r.srem(s, "y"), 1, "SREM")
    r.sadd(t, "z", "w")
    eq(r.sinter(s, t), {b"z"}, "SINTER (same hash tag)")


def scenario_sorted_sets(r, new):
    z = key("zset", "z")
    eq(r.zadd(z, {"a": 1, "b": 2.5, "c": 3}), 3, "ZADD")
    got = [(m, float(s)) for m, s in r.zrange(z, 0, -1, withscores=True)]
    eq(got, [(b"a", 1.0), (b"b", 2.5), (b"c", 3.0)], "ZRANGE WITHSCORES")
    eq(float(r.zincrby(z, 10, "a")), 11.0, "ZINCRBY")
    eq(float(r.zscore(z, "b")), 2.5, "ZSCORE")
    eq(r.zrange(z, 0, 0, desc=True), [b"a"], "ZRANGE REV")
    eq(r.zcard(z), 3, "ZCARD")


def scenario_pipeline(r, new):
    # Keys with different tags: a pipeline that spans shards behind the proxy.
    n = 50
    with r.pipeline(transaction=False) as pipe:
        for i in range(n):
            pipe.set(key(f"pipe{i}", "k"), str(i))
            pipe.incr(key(f"pipe{i}", "c"))
            pipe.get(key(f"pipe{i}", "k"))
        results = pipe.execute()
    eq(len(results), 3 * n, "pipeline result count")
    for i in range(n):
        eq(results[3 * i : 3 * i + 3], [True, 1, str(i).encode()], f"pipeline results {i}")


def scenario_watch_transaction(r, new):
    k = key("watch-ok", "balance")
    r.set(k, 100)
    with r.pipeline() as pipe:
        pipe.watch(k)
        current = int(pipe.get(k))
        pipe.multi()
        pipe.set(k, current - 30)
        pipe.get(k)
        eq(pipe.execute(), [True, b"70"], "EXEC results")
    eq(r.get(k), b"70", "value after EXEC")


def scenario_watch_conflict(r, new):
    k = key("watch-conflict", "balance")
    r.set(k, 100)
    other = new()
    try:
        with r.pipeline() as pipe:
            pipe.watch(k)
            current = int(pipe.get(k))
            other.set(k, 1)  # another client changes the key between WATCH and EXEC
            pipe.multi()
            pipe.set(k, current - 30)
            try:
                pipe.execute()
            except redis.WatchError:
                pass
            else:
                raise AssertionError("EXEC succeeded although the watched key changed")
    finally:
        other.close()
    eq(r.get(k), b"1", "value after the aborted EXEC")


def scenario_scan_iter(r, new):
    n = 300
    tag_prefix = f"rp-{RUN}-scan"
    # Different tags, so the keys spread over every shard behind the proxy.
    names = {f"{{{tag_prefix}{i}}}:k".encode() for i in range(n)}
    with r.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.set(name, "x")
        pipe.execute()
    seen = []
    for name in r.scan_iter(match=f"{{{tag_prefix}*", count=37):
        seen.append(name)
        # A cursor that never comes back to 0 must not loop forever.
        check(len(seen) <= 10 * n, "SCAN returned far more keys than exist: it does not end")
    eq(len(seen), len(set(seen)), "keys returned more than once")
    eq(set(seen), names, "keys found by SCAN")


def wait_message(pubsub, wanted_type, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        m = pubsub.get_message(timeout=0.2)
        if m is not None and m["type"] == wanted_type:
            return m
    raise AssertionError(f"no {wanted_type} message within {seconds} s")


def scenario_pubsub(r, new):
    channel = f"rp-{RUN}-news"
    publisher = new()
    pubsub = r.pubsub()
    try:
        pubsub.subscribe(channel)
        wait_message(pubsub, "subscribe", 5)
        eq(publisher.publish(channel, "hello"), 1, "PUBLISH receivers")
        m = wait_message(pubsub, "message", 5)
        eq((m["channel"], m["data"]), (channel.encode(), b"hello"), "message")
        pubsub.unsubscribe(channel)
        wait_message(pubsub, "unsubscribe", 5)
    finally:
        pubsub.close()
        publisher.close()


def scenario_pattern_pubsub(r, new):
    pattern = f"rp-{RUN}-events.*"
    channel = f"rp-{RUN}-events.login"
    publisher = new()
    pubsub = r.pubsub()
    try:
        pubsub.psubscribe(pattern)
        wait_message(pubsub, "psubscribe", 5)
        eq(publisher.publish(channel, "alice"), 1, "PUBLISH receivers")
        m = wait_message(pubsub, "pmessage", 5)
        eq((m["pattern"], m["channel"], m["data"]), (pattern.encode(), channel.encode(), b"alice"), "pmessage")
    finally:
        pubsub.close()
        publisher.close()


def scenario_blocking_pop(r, new):
    q = key("queue", "jobs")
    result = {}

    def pop():
        try:
            result["value"] = r.blpop([q], timeout=5)
        except Exception as e:  # reported by the main thread
            result["error"] = e

    waiter = threading.Thread(target=pop, daemon=True)
    started = time.monotonic()
    waiter.start()
    time.sleep(0.3)  # let BLPOP block before the push, so it is woken, not served at once
    pusher = new()
    try:
        pusher.rpush(q, "job-1")
    finally:
        pusher.close()
    waiter.join(timeout=8)
    check(not waiter.is_alive(), "BLPOP still blocked 8 s after RPUSH")
    if "error" in result:
        raise result["error"]
    value = result.get("value")
    eq(tuple(value) if value is not None else None, (q.encode(), b"job-1"), "BLPOP result")
    check(time.monotonic() - started < 4, "BLPOP returned by timeout, not woken by RPUSH")


def scenario_lua(r, new):
    a, b = key("lua", "a"), key("lua", "b")
    script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCRBY', KEYS[2], ARGV[1])"
    eq(r.eval(script, 2, a, b, 7), 7, "EVAL")
    eq(r.eval(script, 2, a, b, 7), 14, "EVAL again")
    eq(r.get(a), b"7", "key set by the script")
    # EVAL cached the script on the server that owns these keys; EVALSHA with the same keys
    # finds it there (SCRIPT LOAD, which has no key, is not an everyday call through a proxy).
    sha = hashlib.sha1(script.encode()).hexdigest()
    eq(r.evalsha(sha, 2, a, b, 1), 15, "EVALSHA")


SCENARIOS = [
    ("connect", scenario_connect),
    ("strings", scenario_strings),
    ("hashes", scenario_hashes),
    ("lists", scenario_lists),
    ("sets", scenario_sets),
    ("sorted_sets", scenario_sorted_sets),
    ("pipeline", scenario_pipeline),
    ("watch_transaction", scenario_watch_transaction),
    ("watch_conflict", scenario_watch_conflict),
    ("scan_iter", scenario_scan_iter),
    ("pubsub", scenario_pubsub),
    ("pattern_pubsub", scenario_pattern_pubsub),
    ("blocking_pop", scenario_blocking_pop),
    ("lua", scenario_lua),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--protocol", type=int, choices=[2, 3], help="default: redis-py's own")
    args = parser.parse_args()

    def new():
        kwargs = {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT}
        if args.protocol is not None:
            kwargs["protocol"] = args.protocol
        return redis.Redis(args.host, args.port, **kwargs)

    failed = 0
    for name, run in SCENARIOS:
        # A client per scenario: one scenario's broken connection state must not fail the next.
        r = new()
        try:
            run(r, new)
            line = {"scenario": name, "ok": True}
        except Exception as e:
            failed += 1
            line = {"scenario": name, "ok": False, "error": f"{type(e).__name__}: {e}"}
            if os.environ.get("REDIS_PY_SCENARIOS_TRACE"):
                traceback.print_exc(file=sys.stderr)
        finally:
            r.close()
        print(json.dumps(line), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
