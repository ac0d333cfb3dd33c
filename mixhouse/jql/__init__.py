"""JQL, Mixpanel's JavaScript Query Language (https://docs.mixpanel.com/docs/reports/apps/jql), on an
embedded V8.

    api.py       the Query API handler (`script`, `params`, `format=csv`)
    runner.py    one run: a worker slot, a sandbox, the engine's scans fed in batches
    sandbox.py   the V8 isolate (mini-racer): hardened globals, Underscore.js, limits, error text
    source.py    selectors -> the engine's scan filter; Arrow batches -> the runtime's column JSON
    pushdown.py  the common aggregate shapes as one engine query, answered as the runtime would
    runtime.js   Events/People/join, the transformations and the mixpanel.* builtins
    settings.py  the limits (environment settings)

Rules and every choice where Mixpanel's documentation is silent: docs/jql.md.
"""
