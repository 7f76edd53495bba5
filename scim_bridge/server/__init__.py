"""The front door under gunicorn: what lets refusals wait without a thread, and whom to believe.

``hold`` is what the app calls; ``worker`` is the gunicorn worker class that honours it (and caps
what one address can hold); ``proxies`` decides whose ``X-Forwarded-*`` headers are believed.
"""
