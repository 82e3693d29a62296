"""Development tools, not part of the deployed app: the local stack that `bin/run` and the tests start.

Outside `controlplane/` (the Django app) and `classifier/` (the worker side), so nothing deployed imports it.
"""
