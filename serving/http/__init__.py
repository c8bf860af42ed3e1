"""The HTTP server: the app factory, settings, auth, the request guard, the runtime and its
batcher, metrics and logs, and one router per resource."""
