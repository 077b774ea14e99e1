"""The HTTP service: API, web console, Twilio receipts, CAP feed and metrics (``broadcaster serve``).

Build it with :func:`broadcaster.service.app.make_app`. This package init stays
empty so that the CLI can use the audit and user tables without loading aiohttp.
"""
