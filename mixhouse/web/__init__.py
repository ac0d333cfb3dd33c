"""The web app: people who log in (users, roles per project, sessions), dashboards of saved reports, and
the static single-page app that draws reports from the server's own public Query and App APIs.

    accounts.py     users (argon2id passwords, roles per project) and sessions, in the catalog database
    session_auth.py a session cookie + CSRF header as credentials for the Query and App APIs
    throttle.py     failed logins per email and client address
    dashboards.py   dashboards of saved reports (bookmarks, funnels): store and App API handlers
    routes.py       the HTTP side: the page, its static files, login, logout, the session
    assets.py       the static files: read and compressed once, cached by the browser by content hash
    cli.py          `mixhouse users create`
    static/         the app (no build step; the charting library vendored under static/vendor/)
"""
